"""A hardened Docker sandbox for running untrusted code and its tests.

What it covers: no network, memory / CPU / process-count limits, a read-only root with a
size-limited tmpfs work directory, a non-root user with every capability dropped, a
wall-clock timeout enforced twice (``timeout -s KILL`` inside, a host-side deadline that
kills the container), output capped by the tmpfs and read back truncated, and a warm pool
of containers reset between uses (work directory wiped, the user's stray processes
killed; a container that cannot be reset is replaced). What it does not cover: kernel
exploits (it is a container, not a VM), GPU access, or languages other than those in the
image (Python 3 in the default image).

The image is built offline where no registry is reachable: ``debootstrap`` a minimal
Debian with python3, add the sandbox user, ``docker import`` the tree
(``python -m sandboxes build-image``); where a registry is reachable a Dockerfile build
gives the same image. This is the only module that imports ``docker``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import queue
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound

from sandboxes.base import SandboxError

log = logging.getLogger(__name__)

IMAGE = "summit-sandbox:latest"
USER = "1000:1000"
WORKDIR = "/work"


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 256
    cpus: float = 1.0
    pids: int = 64
    workdir_mb: int = 64
    timeout_s: float = 10.0
    output_bytes: int = 64 * 1024


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    oom_killed: bool
    duration_s: float
    truncated: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def engine() -> docker.DockerClient:
    """The Docker engine, or a SandboxError saying why there is none."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except DockerException as exc:
        raise SandboxError(f"no Docker engine: {exc}") from exc


def image_exists(tag: str = IMAGE) -> bool:
    try:
        engine().images.get(tag)
        return True
    except ImageNotFound:
        return False


def ensure_image(tag: str = IMAGE, *, announce: Callable[[str], None] | None = None) -> str:
    """``tag``, built first when missing (``announce`` is told before the minute it takes).
    Raises :class:`SandboxError` when no engine answers or the build fails."""
    if not image_exists(tag):
        if announce is not None:
            announce(f"building the sandbox image {tag} (about a minute, once) ...")
        build_image(tag)
    return tag


def build_image(tag: str = IMAGE, *, suite: str = "bookworm") -> str:
    """Build the sandbox image offline (debootstrap + docker import); returns the tag."""
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap is not installed (apt-get install -y debootstrap)")
    with tempfile.TemporaryDirectory(prefix="summit-rootfs-") as tmp:
        root = Path(tmp) / "root"
        command = ["debootstrap", "--variant=minbase", "--include=python3", suite, str(root)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SandboxError(f"debootstrap failed: {done.stderr.strip()[-500:]}")
        with open(root / "etc/passwd", "a") as passwd:
            passwd.write("sandbox:x:1000:1000:sandbox:/work:/bin/sh\n")
        with open(root / "etc/group", "a") as group:
            group.write("sandbox:x:1000:\n")
        (root / "work").mkdir(exist_ok=True)
        archive = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True)
        repository, _, version = tag.partition(":")
        engine().api.import_image(src=str(archive), repository=repository, tag=version or "latest")
    return tag


_RUNNER = r"""
import base64, json, os, sys
files = json.loads(base64.b64decode(sys.argv[1]))
for name, text in files.items():
    path = os.path.join("/work", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
"""


# PID 1 of every container: it only reaps. Processes a run leaves behind are killed when
# it ends; those whose parent died first are reparented to PID 1, and a PID 1 that does not
# wait (``sleep infinity``) would keep them as zombies for the container's lifetime. As
# PID 1 it is also out of reach of the run's ``kill -9 -1``.
_REAPER = r"""
import os, signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    signal.sigwait({signal.SIGCHLD})
"""


class DockerSandbox:
    """A warm pool of hardened containers. Use as a context manager; thread-safe."""

    def __init__(
        self, image: str = IMAGE, *, pool_size: int = 2, limits: Limits = Limits()
    ) -> None:
        self.image, self.limits, self.pool_size = image, limits, pool_size
        self.client = engine()
        try:
            self.client.images.get(image)
        except ImageNotFound as exc:
            raise SandboxError(
                f"sandbox image {image} is missing: run `python -m sandboxes build-image`"
            ) from exc
        self._idle: queue.Queue[Any] = queue.Queue()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        for _ in range(pool_size):
            self._idle.put(self._start())

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            containers, self._all = self._all, []
        for container in containers:
            with contextlib.suppress(DockerException):
                container.remove(force=True)

    def _start(self) -> Any:
        lim = self.limits
        container = self.client.containers.run(
            self.image,
            command=["python3", "-c", _REAPER],
            detach=True,
            network_disabled=True,
            network_mode="none",
            mem_limit=f"{lim.memory_mb}m",
            memswap_limit=f"{lim.memory_mb}m",
            nano_cpus=int(lim.cpus * 1e9),
            pids_limit=lim.pids,
            read_only=True,
            tmpfs={
                WORKDIR: f"rw,exec,size={lim.workdir_mb}m,uid=1000,gid=1000",
                "/tmp": "rw,size=16m,uid=1000,gid=1000",
            },
            user=USER,
            working_dir=WORKDIR,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            labels={"summit": "sandbox"},
        )
        with self._lock:
            self._all.append(container)
        return container

    def _replace(self, container: Any) -> Any:
        with self._lock:
            if container in self._all:
                self._all.remove(container)
        with contextlib.suppress(DockerException):
            container.remove(force=True)
        return self._start()

    def run(self, files: dict[str, str], command: list[str] | str) -> RunResult:
        """Write ``files`` under /work and run ``command`` there, within the limits."""
        container = self._idle.get()
        try:
            result, healthy = self._run_in(container, files, command)
            if not healthy:
                container = self._replace(container)
            return result
        except DockerException as exc:
            container = self._replace(container)
            raise SandboxError(f"sandbox container failed: {exc}") from exc
        finally:
            self._idle.put(container)

    def run_fresh(self, files: dict[str, str], command: list[str] | str) -> RunResult:
        """Like :meth:`run` but in a new container, removed afterwards (no pool)."""
        container = self._start()
        try:
            result, _ = self._run_in(container, files, command)
            return result
        except DockerException as exc:
            raise SandboxError(f"sandbox container failed: {exc}") from exc
        finally:
            with self._lock:
                if container in self._all:
                    self._all.remove(container)
            with contextlib.suppress(DockerException):
                container.remove(force=True)

    def _run_in(
        self, container: Any, files: dict[str, str], command: list[str] | str
    ) -> tuple[RunResult, bool]:
        """One ``exec`` does it all: check the container is clean, wipe the work dirs, write
        the files, run under ``timeout``, print the capped outputs between markers, and
        finally kill every process of the sandbox user (so nothing outlives the run)."""
        lim = self.limits
        payload = base64.b64encode(json.dumps(files).encode()).decode()
        shell = command if isinstance(command, str) else " ".join(_quote(c) for c in command)
        marker = f"@@summit-{secrets.token_hex(8)}@@"
        cap = lim.output_bytes + 1
        script = (
            # Count this container's processes with a glob (no fork: PID 1 and this shell
            # when clean). The last run's strays were SIGKILLed as it ended and PID 1 reaps
            # them, but not instantly: give them up to 2 s to be gone before counting.
            "i=0; while set -- /proc/[0-9]*; [ $# -gt 2 ] && [ $i -lt 100 ]; do "
            "sleep 0.02; i=$((i+1)); done; n=$#; "
            "rm -rf /work/* /work/.[!.]* /tmp/* /tmp/.[!.]* 2>/dev/null; "
            f"python3 -c {_quote(_RUNNER)} {payload} || exit 99; "
            f"timeout -s KILL {lim.timeout_s:g} sh -c {_quote(shell)} >/tmp/.out 2>/tmp/.err; "
            "rc=$?; "
            f'echo "{marker} $rc $n"; head -c {cap} /tmp/.out; echo "{marker}"; '
            f"head -c {cap} /tmp/.err; kill -9 -1 2>/dev/null"
        )
        started = time.monotonic()
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["exec"] = container.exec_run(["sh", "-c", script], user=USER)
            except DockerException as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        worker.join(lim.timeout_s + 5)
        duration = time.monotonic() - started
        if worker.is_alive():  # the in-container timeout did not fire: kill the container
            with contextlib.suppress(DockerException):
                container.kill()
            return RunResult(137, "", "", True, False, duration, False), False
        if "error" in outcome:
            raise outcome["error"]
        output = outcome["exec"].output.decode(errors="replace")
        head, sep, rest = output.partition(marker + " ")
        if not sep:  # nothing came back: the program left no room to report (a fork bomb)
            timed_out = duration >= lim.timeout_s - 0.5
            note = "sandbox: the program exhausted the container; no output could be read"
            return RunResult(137, "", note, timed_out, False, duration, False), False
        status, _, rest = rest.partition("\n")
        code_text, _, procs = status.partition(" ")
        if code_text.strip() == "99":
            raise SandboxError(f"could not write files: {head[-300:]}")
        stdout, _, stderr = rest.partition(marker + "\n")
        exit_code = int(code_text) if code_text.lstrip("-").isdigit() else 137
        truncated = (
            len(stdout.encode()) > lim.output_bytes or len(stderr.encode()) > lim.output_bytes
        )
        stdout, stderr = _cap(stdout, lim.output_bytes), _cap(stderr, lim.output_bytes)
        timed_out = exit_code == 137 and duration >= lim.timeout_s - 0.5
        oom = False
        if exit_code == 137 and not timed_out:
            container.reload()
            oom = True
        clean_before = procs.strip().isdigit() and int(procs) <= 2  # the reaper, this shell
        return RunResult(
            exit_code, stdout, stderr, timed_out, oom, duration, truncated
        ), clean_before


def _cap(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
