"""Benchmark the overhead of `python -m rl train` over raw TRL, per optimizer step.

Side by side in one run, on the same embedded SmolLM2 policy, the same math prompts, the
same GRPO settings and seed: (a) Summit's trainer as the CLI builds it (`rl.trainer.build`:
gym reward function with budget and per-gym metrics, temperature callback, progress
display) and (b) a raw `trl.GRPOTrainer` with a plain reward function calling the same
math-verify check. Every completion is forced to the same 32 tokens (``min_new_tokens``),
so both arms generate the same work and the ratio measures Summit's own. Each arm runs
twice, in the order A B B A, to cancel drift; the figure is the median of TRL's own
`step_time` over the steps after the first (warm-up).

    python bench/grpo.py [--quick] [--json] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl.config import TrainConfig

SMALL_MATH = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}


def summit_config(out: str, steps: int) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "name": "bench",
            "output_dir": out,
            "gyms": [{"gym": "math", "options": {"count": 64, "dataset_config": SMALL_MATH}}],
            "grpo": {
                "max_steps": steps,
                "per_device_train_batch_size": 8,
                "num_generations": 4,
                "max_completion_length": 32,
                # every completion exactly 32 tokens: step times then follow Summit's own
                # work, not how long the sampled answers happened to be
                "extra": {"generation_kwargs": {"min_new_tokens": 32}},
                "save_steps": 10_000,
                "learning_rate": 1e-6,
            },
            "logging": {"progress": True, "report_to": []},
        }
    )


def step_times(trainer: Any) -> list[float]:
    return [e["step_time"] for e in trainer.state.log_history if "step_time" in e][1:]


def run_summit(steps: int) -> list[float]:
    from rl.trainer import Services, build

    with tempfile.TemporaryDirectory() as out, Services(summit_config(out, steps)) as services:
        trainer = build(summit_config(out, steps), services)
        trainer.train()
        return step_times(trainer)


def run_trl(steps: int) -> list[float]:
    from trl import GRPOTrainer

    from llm.embedded.model import ensure_converted, load_tokenizer
    from rl.data import mixture
    from rl.gyms import build_gym
    from rl.gyms.math import score_answer
    from rl.trainer import grpo_args

    def math_reward(prompts: list[Any], completions: list[Any], **kw: Any) -> list[float]:
        answers = [json.loads(t)["answer"] for t in kw["task"]]
        return [
            score_answer(c[-1]["content"], a) for c, a in zip(completions, answers, strict=True)
        ]

    with tempfile.TemporaryDirectory() as out:
        config = summit_config(out, steps)
        gym = build_gym("math", config.gyms[0].options)
        args = grpo_args(config)
        args.disable_tqdm = False
        path = ensure_converted()
        trainer = GRPOTrainer(
            model=str(path),
            reward_funcs=[math_reward],
            args=args,
            train_dataset=mixture([gym], [1.0], None, config.seed),
            processing_class=load_tokenizer(path),
        )
        trainer.train()
        return step_times(trainer)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 steps per run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 6)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    steps = args.steps or (3 if args.quick else 6)
    summit: list[float] = []
    trl: list[float] = []
    for arm in ("summit", "trl", "trl", "summit"):
        (summit if arm == "summit" else trl).extend(
            run_summit(steps) if arm == "summit" else run_trl(steps)
        )
    figures = {
        "step_s_summit": round(statistics.median(summit), 3),
        "step_s_trl": round(statistics.median(trl), 3),
        "steps_measured_each": len(summit),
    }
    figures["overhead_ratio"] = round(figures["step_s_summit"] / figures["step_s_trl"], 3)
    table = Table(title="GRPO step time: python -m rl train vs raw TRL GRPOTrainer")
    for column in ("trainer", "median step (s)", "steps measured", "ratio", "target"):
        table.add_column(column, justify="left" if column == "trainer" else "right")
    table.add_row("raw TRL GRPOTrainer", f"{figures['step_s_trl']:.3f}", str(len(trl)), "1.000", "")
    table.add_row(
        "summit (rl.trainer)",
        f"{figures['step_s_summit']:.3f}",
        str(len(summit)),
        f"{figures['overhead_ratio']:.3f}",
        "<= 1.05",
    )
    Console().print(table)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
