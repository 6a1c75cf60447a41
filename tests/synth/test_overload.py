"""A synthesis job on a busy machine degrades instead of collapsing.

Real Ray on 127.0.0.1, the scripted world behind an endpoint that answers two requests at
a time (the rest queue), CPU hogs on every core, and request timeouts short enough that
the first burst times out: the clients must back off and lower what they keep in flight,
the server must see the timed-out requests go, and every task must still be played.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from llm.testing import ScriptedEndpoint
from synth.testing import ScriptedWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _spin() -> None:
    while True:
        pass


@pytest.fixture
def cpu_hogs() -> Iterator[int]:
    """One busy loop per core for the duration of the test."""
    spawn = multiprocessing.get_context("spawn")
    hogs = [spawn.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    for hog in hogs:
        hog.start()
    try:
        yield len(hogs)
    finally:
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            hog.join()


def test_a_job_beside_cpu_hogs_plays_every_task_despite_timeouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpu_hogs: int
) -> None:
    import ray

    from synth.config import SynthConfig
    from synth.pipeline import run, start_local_ray

    world = ScriptedWorld()
    with ScriptedEndpoint(world, latency_s=0.4, capacity=2, over_capacity="wait") as server:
        presets = tmp_path / "endpoints.yaml"
        preset = {
            "base_url": server.url,
            "api_key_required": False,
            "model": "scripted",
            "max_concurrency": 8,
            "timeout_s": 1.0,  # eight requests queued two at a time wait 1.6 s: timeouts
            "deadline_s": 600,
            "max_retries": 50,
            "backoff_base_s": 0.05,
            "backoff_max_s": 1.0,
        }
        presets.write_text(yaml.safe_dump({"busy": preset}))
        monkeypatch.setenv("SUMMIT_ENDPOINTS", str(presets))
        role = {"preset": "busy"}
        config = SynthConfig.model_validate(
            {
                "output_dir": str(tmp_path / "out"),
                "endpoints": {
                    r: role for r in ("generator", "agent", "user", "tool_simulator", "judge")
                },
                "agents": {"count": 3},
                "tasks": {"per_agent": 2},
                "environment_mix": {"simulated": 0.5, "executable": 0.5, "docker": 0.0},
                "ray": {"actors": 2, "tasks_per_actor": 4},
            }
        )
        start_local_ray(num_cpus=2)
        try:
            manifest = run(config)
        finally:
            ray.shutdown()
    counts = manifest.counts.model_dump()
    assert manifest.reconciled and counts["trajectories"] == 6
    assert "worker_error" not in manifest.rejected_by_reason
    timeouts = sum(u.get("timeouts", 0) for u in manifest.usage.values())
    assert timeouts >= 1  # the job really was overloaded
    # each timed-out request was dropped by the server, not answered into the void
    assert server.outcomes.get("abandoned", 0) >= 1
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"] == counts
