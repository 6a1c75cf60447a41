#!/usr/bin/env bash
# System parts the test suite uses beyond Python: a Docker engine (the code sandbox),
# debootstrap (builds the sandbox image without a registry) and Chromium (renders the synthesis
# report in a test). Installs what is missing with apt-get (as root or through sudo)
# and starts dockerd when no engine answers. Where it cannot, it says so and goes on:
# the tests that need a missing part skip with the reason (and fail under CI=true).
set -uo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
fi

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null; then
    echo "system: missing ${missing[*]} and cannot install them here (needs apt-get as root)"
  else
    echo "system: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q && $SUDO apt-get install -y -q "${missing[@]}" \
      || echo "system: apt-get install failed"
  fi
fi

if command -v docker >/dev/null && ! docker info >/dev/null 2>&1; then
  if [ "$SUDO" = "none" ] || ! command -v dockerd >/dev/null; then
    echo "system: no Docker engine answers and dockerd cannot be started here"
  else
    echo "system: starting dockerd"
    ($SUDO dockerd --iptables=false >/tmp/summit-dockerd.log 2>&1 &)
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    if docker info >/dev/null 2>&1; then
      echo "system: docker engine up"
    else
      echo "system: warning: dockerd did not start (see /tmp/summit-dockerd.log)"
    fi
  fi
fi
exit 0
