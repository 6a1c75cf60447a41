"""A short run with the embedded model in every role, on a local Ray cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth.config import SynthConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_short_embedded_run_ends_reconciled(tmp_path: Path, embedded_server, local_ray) -> None:
    from datasets import load_dataset

    from synth.pipeline import run

    role = {"preset": "embedded", "base_url": embedded_server.url}
    config = SynthConfig.model_validate(
        {
            "output_dir": str(tmp_path / "out"),
            "endpoints": {
                r: role for r in ("generator", "agent", "user", "tool_simulator", "judge")
            },
            "environment_mix": {"simulated": 1, "executable": 1, "docker": 0},
            "agents": {"count": 2, "tools_min": 2, "tools_max": 2},
            "tasks": {"per_agent": 1},
            "rollout": {
                "max_turns": 1,
                "max_tool_calls": 2,
                "max_tokens": 96,
                "first_tool_choice": "required",
            },
            "judge": {"rubrics": [], "max_tokens": 400, "reasoning_chars": 300},
            "ray": {"actors": 2, "tasks_per_actor": 2},
        }
    )
    manifest = run(config)
    counts = manifest.counts.model_dump()
    assert counts["agents"] == 2 and counts["trajectories"] == counts["tasks"] >= 1
    assert manifest.reconciled and manifest.duplicates == 0
    assert manifest.models["agent"]["model"] == "smollm2-135m-instruct"
    assert manifest.usage["agent"]["completion_tokens"] > 0
    rows = load_dataset("parquet", data_dir=str(tmp_path / "out" / "data"), split="train")
    assert len(rows) == counts["trajectories"]
    for row in rows:
        assert row["outcome"] in ("accepted", "rejected") and (
            row["outcome"] == "accepted"
        ) != bool(row["reason"])
        assert row["messages"][0]["role"] == "system" and len(row["messages"]) >= 3
