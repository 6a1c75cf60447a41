"""Training progress where output is not a terminal: a line with the step and the latest
reward at a steady interval (``--progress-every``)."""

from __future__ import annotations

import io
import time

from rich.console import Console
from transformers import TrainerControl, TrainerState

from rl.callbacks import RichProgress


def test_training_off_a_terminal_prints_its_step_and_reward_at_every_interval() -> None:
    buffer = io.StringIO()
    progress = RichProgress(Console(file=buffer, force_terminal=False), every_s=0.01)
    state, control = TrainerState(max_steps=4, global_step=0), TrainerControl()
    progress.on_train_begin(None, state, control)
    state.global_step = 1
    progress.on_step_end(None, state, control)
    progress.on_log(None, state, control, logs={"reward": 0.5, "step_time": 1.25})
    deadline = time.monotonic() + 60  # only so a broken display cannot hang the suite

    def lines() -> list[str]:
        return [line for line in buffer.getvalue().splitlines() if "reward 0.500" in line]

    while len(lines()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    progress.close()
    assert len(lines()) >= 2
    assert all("GRPO steps  1/4  25%" in line and "step_time 1.250" in line for line in lines())
