"""Fixtures for the synthesis tests: a scripted world on loopback and a small config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llm.testing import ScriptedEndpoint
from synth.config import SynthConfig
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
