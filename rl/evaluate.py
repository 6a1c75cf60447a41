"""``python -m rl eval``: pass@k per gym on held-out tasks, for a checkpoint.

For every gym of the config, its ``eval`` split (never trained on) is sampled ``n`` times
per task with the checkpoint, at the config's final temperature; the gym's own verifier
scores each sample through the same gate as training (a degenerate completion scores 0
unverified, :func:`rl.gyms.base.gated_scores`) and a sample passes when it reaches the
gym's ``pass_threshold``.
pass@k is the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)``,
averaged over tasks. Tool-use tasks are played in their executable environment with the
same tools TRL renders, up to ``grpo.max_tool_calling_iterations`` rounds.

Not here: generation with vLLM (evaluation runs the checkpoint with transformers).
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from llm import parse_tool_calls
from llm.progress import DEFAULT_EVERY_S, StageProgress
from rl.config import TrainConfig
from rl.environments import environment_class
from rl.estimators import pass_at_k
from rl.gyms import Gym, Sample, Task
from rl.gyms.base import PLAIN_ENVIRONMENT, gated_scores
from rl.trainer import Services, build_gyms, load_policy

log = logging.getLogger(__name__)


def load_checkpoint(path: str | Path) -> Any:
    """A full model directory, or a LoRA adapter directory (``adapter_config.json``)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such checkpoint directory")
    if (path / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(path))
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(path))
    return model.eval()


class Sampler:
    """Samples completions (and plays tool calls) with one model and tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, config: TrainConfig) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.temperature = config.temperature.end
        self.max_tokens = config.grpo.max_completion_length
        self.rounds = config.grpo.max_tool_calling_iterations or 4

    def generate(
        self, messages: list[dict[str, Any]], n: int, tools: list[Any] | None
    ) -> list[str]:
        ids = self.tokenizer.apply_chat_template(
            messages,
            tools=tools or None,
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        with torch.no_grad():
            out = self.model.generate(
                **ids,
                do_sample=True,
                temperature=self.temperature,
                max_new_tokens=self.max_tokens,
                num_return_sequences=n,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        width = ids["input_ids"].shape[1]
        return [self.tokenizer.decode(row[width:], skip_special_tokens=True) for row in out]

    def play(self, task: Task, environment: Any) -> tuple[list[dict[str, Any]], Any]:
        """One multi-turn roll-out in ``environment``; returns the completion messages."""
        environment.reset(task=json.dumps(task.payload))
        tools = [
            getattr(environment, name)
            for name, _ in inspect.getmembers(type(environment), inspect.isfunction)
            if not name.startswith("_") and name != "reset"
        ]
        messages, completion = list(task.prompt), []
        for _ in range(self.rounds + 1):
            text = self.generate(messages, 1, tools)[0]
            parsed = parse_tool_calls(text)
            reply: dict[str, Any] = {"role": "assistant", "content": parsed.content or ""}
            if not parsed.calls:
                completion.append(reply)
                break
            reply["tool_calls"] = [c.model_dump() for c in parsed.calls]
            completion.append(reply)
            for call in parsed.calls:
                arguments = json.loads(call.function.arguments or "{}")
                by_name = {t.__name__: t for t in tools}
                method = by_name.get(call.function.name)
                result = method(**arguments) if method else f"error: no tool {call.function.name}"
                completion.append(
                    {"role": "tool", "name": call.function.name, "content": str(result)}
                )
            messages = [*task.prompt, *completion]
        return completion, environment


def evaluate_gym(
    gym: Gym, sampler: Sampler, n: int, ks: list[int], progress: StageProgress | None = None
) -> dict[str, Any]:
    tasks = gym.load("eval")
    bar = progress.add_task(f"eval {gym.name}", total=len(tasks)) if progress else None
    per_task: list[int] = []
    scores: list[float] = []
    for task in tasks:
        if task.environment == PLAIN_ENVIRONMENT:
            texts = sampler.generate(task.prompt, n, None)
            samples = [
                Sample(task.prompt, [{"role": "assistant", "content": t}], task.payload)
                for t in texts
            ]
        else:
            samples = []
            for _ in range(n):
                completion, env = sampler.play(task, environment_class(task.environment)())
                samples.append(Sample(task.prompt, completion, task.payload, environment=env))
        results, _ = gated_scores(gym, samples)
        per_task.append(sum(gym.passed(r) for r in results))
        scores += [r for r in results if r is not None]
        if progress is not None and bar is not None:
            progress.advance(bar)
    report: dict[str, Any] = {"tasks": len(tasks), "samples": n}
    for k in ks:
        values = [pass_at_k(n, c, k) for c in per_task]
        report[f"pass@{k}"] = sum(values) / len(values) if values else None
    report["mean_score"] = sum(scores) / len(scores) if scores else None
    return report


def evaluate(
    config: TrainConfig,
    checkpoint: str | Path,
    ks: list[int],
    n: int | None = None,
    *,
    console: Console | None = None,
    progress_every_s: float = DEFAULT_EVERY_S,
) -> dict[str, Any]:
    """``{gym: {"pass@k": ..., "tasks": ..., "samples": ..., "mean_score": ...}}``, with a
    progress bar per gym on ``console`` (stderr by default; a line every
    ``progress_every_s`` seconds where it is not a terminal)."""
    n = n or max(ks)
    if n < max(ks):
        raise ValueError(f"--samples {n} is fewer than the largest k ({max(ks)})")
    model = load_checkpoint(checkpoint)
    sampler = Sampler(model, load_policy(config).tokenizer, config)
    torch.manual_seed(config.seed)
    progress = StageProgress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        every_s=progress_every_s,
    )
    with Services(config) as services, progress:
        gyms = build_gyms(config, services.resources)
        return {gym.name: evaluate_gym(gym, sampler, n, ks, progress) for gym in gyms}
