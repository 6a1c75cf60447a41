"""Fixtures for the synthesis tests: a scripted world on loopback (one that can hold the
job mid-stage), small configs, and ``python -m synth run`` as a watched subprocess."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm.testing import Reply, Responder, ScriptedEndpoint
from synth.config import SynthConfig
from synth.store import RunStore
from synth.testing import ScriptedWorld

SOLUTIONS = {
    "is_palindrome": "def is_palindrome(text):\n"
    "    s = [c.lower() for c in text if c.isalpha()]\n    return s == s[::-1]",
}


@pytest.fixture
def world() -> ScriptedWorld:
    return ScriptedWorld(solutions=SOLUTIONS)


@pytest.fixture
def scripted(world: ScriptedWorld) -> Iterator[ScriptedEndpoint]:
    with ScriptedEndpoint(world) as server:
        yield server


def endpoints_for(server: ScriptedEndpoint) -> dict[str, object]:
    endpoint = server.endpoint(max_retries=1, backoff_base_s=0.01)
    return {r: endpoint for r in ("generator", "agent", "user", "tool_simulator", "judge")}


def small_config(tmp_path: Path, **changes: object) -> SynthConfig:
    data: dict[str, object] = {
        "output_dir": str(tmp_path / "out"),
        "agents": {"count": 4},
        "tasks": {"per_agent": 2},
        "environment_mix": {"simulated": 0.5, "executable": 0.5, "docker": 0.0},
        "shard_size": 3,
    }
    data.update(changes)
    return SynthConfig.model_validate(data)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    from synth.pipeline import start_local_ray

    start_local_ray(num_cpus=2)
    yield
    ray.shutdown()


def scripted_config(tmp_path: Path, server: ScriptedEndpoint, **changes: object) -> SynthConfig:
    role = {"preset": "openai-compatible", "base_url": server.url, "max_concurrency": 8}
    endpoints = {r: role for r in ("generator", "agent", "user", "tool_simulator", "judge")}
    return small_config(tmp_path, endpoints=endpoints, **changes)


@pytest.fixture
def api_env(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "scripted")


def job_config(out: Path, url: str, **changes: object) -> dict[str, object]:
    role = {"preset": "vllm", "base_url": url, "max_concurrency": 8}
    config: dict[str, object] = {
        "output_dir": str(out),
        "endpoints": {r: role for r in ("generator", "agent", "user", "tool_simulator", "judge")},
        "agents": {"count": 4},
        "tasks": {"per_agent": 4},
        "environment_mix": {"simulated": 0.5, "executable": 0.5, "docker": 0.0},
        "ray": {"actors": 2, "tasks_per_actor": 2},
        "shard_size": 2,
    }
    config.update(changes)
    return config


def assert_exact(out: Path, tasks: int) -> None:
    ids = [row["id"] for row in RunStore(out).rows(["id"])]
    assert len(ids) == len(set(ids)) == tasks
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reconciled"] and manifest["duplicates"] == 0
    counts = manifest["counts"]
    assert counts["trajectories"] == counts["accepted"] + counts["rejected"] == tasks


SAFETY_S = 300.0
"""How long a held world waits at most (only so a failed test cannot hang the suite)."""


def held_after(world: ScriptedWorld, judged: int, gate: threading.Event) -> Responder:
    """``world``, except that once the judge has answered ``judged`` times every request
    waits for ``gate``: the job stands still, mid-stage, until the test lets it go."""

    def respond(request: dict[str, Any]) -> Reply:
        if world.roles["judge"] >= judged:
            gate.wait(SAFETY_S)
        return world(request)

    return respond


@pytest.fixture
def synth_jobs(watched: Callable[..., Any], tmp_path: Path) -> Callable[..., Any]:
    """``start(config, *args)``: ``python -m synth run`` of ``config`` (a dict) as a
    watched subprocess (see ``watched``)."""
    count = iter(range(1_000))

    def start(config: dict[str, object], *args: str) -> Any:
        path = tmp_path / f"job-{next(count)}.yaml"
        path.write_text(yaml.safe_dump(config))
        return watched("synth", "run", str(path), *args)

    return start
