"""Does GRPO learn? The embedded SmolLM2 policy on a one-digit arithmetic gym.

`python -m rl`'s trainer (`rl.trainer.build`) trains the embedded policy on single-digit
two-term sums and differences from the math gym (math-verify reward) for about 30 steps;
the mean reward of each step is recorded and plotted (PNG), and the mean of the first five
steps is compared with the mean of the last five. A 135M model proves the plumbing, not
quality: the question is only whether the reward moves.

    python bench/grpo_learns.py [--quick] [--json] [--steps N] [--plot PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl.config import TrainConfig

ARITHMETIC = {
    "min_terms": 2,
    "max_terms": 2,
    "min_digits": 1,
    "max_digits": 1,
    "operators": ["+", "-"],
}


def config(out: str, steps: int) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "name": "grpo-learns",
            "output_dir": out,
            "gyms": [{"gym": "math", "options": {"count": 512, "dataset_config": ARITHMETIC}}],
            "grpo": {
                "max_steps": steps,
                "per_device_train_batch_size": 16,
                "num_generations": 8,
                "max_completion_length": 32,
                "learning_rate": 2e-5,
                "save_steps": 10_000,
            },
            "temperature": {"start": 1.0, "end": 1.0},
            "logging": {"progress": True, "report_to": []},
        }
    )


def rewards_per_step(steps: int) -> list[float]:
    from rl.trainer import Services, build

    with tempfile.TemporaryDirectory() as out:
        cfg = config(out, steps)
        with Services(cfg) as services:
            trainer = build(cfg, services)
            trainer.train()
        return [e["reward"] for e in trainer.state.log_history if "reward" in e]


def plot(
    rewards: list[float],
    path: Path,
    *,
    ylabel: str = "mean reward (math-verify)",
    title: str = "embedded SmolLM2-135M on one-digit arithmetic",
    ylim: tuple[float, float] | None = None,
) -> None:
    """Mean reward per GRPO step as a PNG (bench/agentic_rl.py draws its curve with it too)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(rewards) + 1), rewards, marker="o", markersize=3)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10 steps instead of 30")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--plot", type=Path, default=Path("runs/bench/grpo_learns.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    steps = args.steps or (10 if args.quick else 30)
    rewards = rewards_per_step(steps)
    plot(rewards, args.plot)
    first, last = rewards[:5], rewards[-5:]
    figures = {
        "steps": len(rewards),
        "reward_first5": round(sum(first) / len(first), 4),
        "reward_last5": round(sum(last) / len(last), 4),
        "rewards": [round(r, 4) for r in rewards],
        "plot": str(args.plot),
    }
    figures["gain"] = round(figures["reward_last5"] - figures["reward_first5"], 4)
    # the claim (reward rises with GRPO steps) needs its first and last five steps apart:
    # with 10 steps (--quick) they are adjacent and their difference is step-to-step noise
    figures["measures_claim"] = len(rewards) >= 20
    if not figures["measures_claim"]:
        figures["why_not"] = (
            f"{len(rewards)} steps: the first and last five steps sit side by side, so their "
            "difference is not a trend; run without --quick (30 steps)"
        )
    table = Table(title="GRPO on one-digit arithmetic (embedded policy)")
    for column in ("steps", "reward, first 5", "reward, last 5", "gain", "plot"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(rewards)),
        f"{figures['reward_first5']:.3f}",
        f"{figures['reward_last5']:.3f}",
        f"{figures['gain']:+.3f}",
        str(args.plot),
    )
    Console().print(table)
    if not figures["measures_claim"]:
        Console().print(f"[yellow]not a measurement of the claim:[/] {figures['why_not']}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
