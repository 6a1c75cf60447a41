"""Ctrl-C and SIGTERM stop ``python -m rl train`` and ``eval`` cleanly: one line, the
shell's exit status for the signal, no process left behind, and a stopped training run
continues from its newest complete checkpoint. Real processes, the embedded policy."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rl.trainer import latest_checkpoint

MATH = {"dataset_config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}


def write_config(tmp_path: Path, **grpo: Any) -> Path:
    config = {
        "name": "stops",
        "output_dir": str(tmp_path / "run"),
        "gyms": [{"gym": "math", "options": {"count": 16, "eval_count": 64, **MATH}}],
        "grpo": {
            "max_steps": 50,  # far more than the test lets it run
            "per_device_train_batch_size": 4,
            "num_generations": 2,
            "max_completion_length": 16,
            "save_steps": 1,
            "learning_rate": 1e-4,
            **grpo,
        },
    }
    path = tmp_path / "grpo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def steps_at_least(n: int) -> Callable[[Any], bool]:
    return lambda match: int(match[1]) >= n


@pytest.mark.integration
@pytest.mark.slow
def test_a_stopped_training_run_exits_cleanly_and_continues_from_its_last_checkpoint(
    tmp_path: Path, watched: Callable[..., Any]
) -> None:
    path = write_config(tmp_path)
    run = watched("rl", "train", str(path), "--progress-every", "0.2")
    run.wait_for(r"GRPO steps\s+(\d+)/50", until=steps_at_least(2))
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 128 + signal.SIGTERM, run.stderr[-4000:]
    assert run.last_line().startswith("stopped by SIGTERM: complete checkpoints are kept")
    assert "Traceback" not in run.stderr
    assert not run.leftovers()
    kept = latest_checkpoint(tmp_path / "run")
    assert kept is not None
    step = int(kept.name.removeprefix("checkpoint-"))
    more = f"grpo.max_steps={step + 1}"
    resumed = watched("rl", "train", str(path), "--resume", "latest", "--set", more)
    assert resumed.finish() == 0, resumed.stderr[-4000:]
    state = json.loads(
        (tmp_path / "run" / f"checkpoint-{step + 1}" / "trainer_state.json").read_text()
    )
    assert [e["step"] for e in state["log_history"] if "loss" in e] == list(range(1, step + 2))


@pytest.mark.integration
@pytest.mark.slow
def test_a_stopped_evaluation_exits_cleanly(tmp_path: Path, watched: Callable[..., Any]) -> None:
    from llm.embedded.model import ensure_converted

    path = write_config(tmp_path)
    args = ("--checkpoint", str(ensure_converted()), "--k", "1", "--progress-every", "0.2")
    run = watched("rl", "eval", str(path), *args)
    run.wait_for(r"eval math\s+(\d+)/\d+", until=steps_at_least(1))
    os.killpg(run.proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    assert run.finish() == 128 + signal.SIGINT, run.stderr[-4000:]
    assert run.last_line() == "stopped by SIGINT: nothing was written"
    assert "Traceback" not in run.stderr
    assert not run.leftovers()


def test_resuming_skips_a_checkpoint_left_half_written(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-1" / "trainer_state.json").write_text('{"global_step": 1}')
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text('{"global_st')  # cut short
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
