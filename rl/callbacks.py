"""Trainer callbacks: K2's temperature decay and a progress display (bars on a terminal,
a line every few seconds in a log).

:class:`TemperatureDecay` changes the sampling temperature before each step. TRL reads the
temperature in three places — the generation config (or the vLLM sampler), and the fused
LM head that computes the log-probabilities of the sampled tokens (which must use the same
temperature as sampling, or the policy gradient is taken for another distribution) — so
the callback updates all three. It needs the trainer, which callbacks are not given:
``bind(trainer)`` after the trainer is built.

Not here: learning-rate schedules (TRL's ``lr_scheduler_type``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from transformers import TrainerCallback

from llm.progress import DEFAULT_EVERY_S, StageProgress
from rl.config import TemperatureConfig

log = logging.getLogger(__name__)


def temperature_at(config: TemperatureConfig, step: int, total_steps: int) -> float:
    """The scheduled temperature at ``step`` (clamped to ``end`` after the decay)."""
    steps = config.decay_steps or total_steps
    progress = min(1.0, step / steps) if steps else 1.0
    start, end = config.start, config.end
    if config.schedule == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))
    if config.schedule == "exponential":
        return start * (end / start) ** progress
    return start + (end - start) * progress


class TemperatureDecay(TrainerCallback):
    def __init__(self, config: TemperatureConfig, total_steps: int) -> None:
        self.config = config
        self.total_steps = total_steps
        self.trainer: Any = None
        self.current: float | None = None

    def bind(self, trainer: Any) -> TemperatureDecay:
        self.trainer = trainer
        self.current = float(trainer.temperature)
        return self

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.trainer is None:
            return
        value = temperature_at(self.config, state.global_step, self.total_steps)
        if self.current is None or abs(value - self.current) > 1e-6:
            set_temperature(self.trainer, value)
            self.current = value
        # TRL's metric seam (the one reward functions get): averaged into the step's logs.
        from rl import trl_seam

        trl_seam.log_metric(self.trainer, "temperature", value)


def set_temperature(trainer: Any, value: float) -> None:
    """Sample and score at ``value`` from the next generation on."""
    from accelerate.utils import is_peft_model

    from rl import trl_seam

    trainer.temperature = value
    if getattr(trainer, "generation_config", None) is not None:
        trainer.generation_config.temperature = value
    if isinstance(getattr(trainer, "generation_kwargs", None), dict):
        trainer.generation_kwargs["temperature"] = value
    if getattr(trainer, "vllm_generation", None) is not None:
        trainer.vllm_generation.temperature = value
    policy = trainer.model.get_base_model() if is_peft_model(trainer.model) else trainer.model
    cast = trainer.args.cast_lm_head_to_fp32
    for model, outputs in ((policy, ("log_probs", "entropy")), (trainer.ref_model, None)):
        if model is None:
            continue
        trl_seam.set_head_temperature(model, value, cast, outputs)
    log.debug("sampling temperature now %.3f", value)


class RichProgress(TrainerCallback):
    """One progress bar with the step, mean reward, step time and temperature; where
    output is not a terminal, a line with the same every ``every_s`` seconds."""

    def __init__(self, console: Console | None = None, every_s: float = DEFAULT_EVERY_S) -> None:
        self.console = console or Console(stderr=True)
        self.every_s = every_s
        self.progress: StageProgress | None = None
        self.task: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.progress = StageProgress(
            TextColumn("[bold]GRPO"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            every_s=self.every_s,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "GRPO steps", total=state.max_steps, completed=state.global_step, info=""
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if self.progress is None or not logs:
            return
        parts = [
            f"{key.split('/')[-1] if key.startswith('reward') else key} {logs[key]:.3f}"
            for key in ("reward", "step_time", "temperature")
            if isinstance(logs.get(key), int | float)
        ]
        self.progress.update(self.task, info="  ".join(parts))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the display (its last line printed); also when training was interrupted."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def train_to_end(trainer: Any, checkpoint: Any = None) -> Any:
    """``trainer.train()`` (from ``checkpoint`` when given), its progress display closed
    however training ends (done, failed, interrupted); TRL's ``TrainOutput``."""
    try:
        return trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, RichProgress):
                callback.close()
