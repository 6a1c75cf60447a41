"""Closed-loop refinement of a trainable critic: held-out agreement before and after.

The embedded SmolLM2-135M is the critic (``rl.critique.local.LocalCritic``: log-odds of
"A" vs "B"). Comparisons are generated one-digit additions: a correct answer and an
incorrect one (off by 1 to 3) to the same problem — the verifier's verdict is exact. Each
round takes fresh training pairs, keeps the ones the critic gets wrong (all of them when it
gets none wrong), and runs one TRL DPO round on them; agreement is measured on a fixed
held-out set, each pair judged in both orders, with a Wilson 95% interval over judgments.

    python bench/critic_refine.py [--quick] [--json] [--plot PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl.config import RefinementConfig
from rl.critique.agreement import VerifiedPair, pair_agreement
from rl.critique.local import LocalCritic


def problems(n: int, rng: random.Random) -> list[VerifiedPair]:
    out = []
    for _ in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        wrong = a + b + rng.choice([-3, -2, -1, 1, 2, 3])
        out.append(VerifiedPair(f"What is {a}+{b}?", f"{a}+{b} = {a + b}", f"{a}+{b} = {wrong}"))
    return out


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def agreement(critic: LocalCritic, pairs: list[VerifiedPair]) -> tuple[float, float, float]:
    async def run() -> float | None:
        async with critic.connect() as comparator_for:
            return await pair_agreement(comparator_for("math", []), pairs)

    value = asyncio.run(run()) or 0.0
    low, high = wilson(value * 2 * len(pairs), 2 * len(pairs))
    return value, low, high


def wrong_ones(critic: LocalCritic, pairs: list[VerifiedPair]) -> list[VerifiedPair]:
    def right(p: VerifiedPair) -> bool:
        return (
            critic.margin(p.prompt, p.better, p.worse, []) > 0
            and critic.margin(p.prompt, p.worse, p.better, []) < 0
        )

    wrong = [p for p in pairs if not right(p)]
    return wrong or pairs


def measure(rounds: int, train_per_round: int, held_out: int, steps: int) -> dict[str, Any]:
    rng = random.Random(0)
    held = problems(held_out, rng)
    refinement = RefinementConfig(method="dpo", steps=steps, learning_rate=5e-5, beta=0.1)
    critic = LocalCritic.load("embedded", refinement, rubrics=[])
    curve = [agreement(critic, held)]
    used = []
    for _ in range(rounds):
        batch = wrong_ones(critic, problems(train_per_round, rng))
        used.append(len(batch))
        critic.refine(batch)
        curve.append(agreement(critic, held))
    return {
        "agreement_before": curve[0][0],
        "ci_low_before": curve[0][1],
        "agreement_after": curve[-1][0],
        "ci_low_after": curve[-1][1],
        "ci_high_after": curve[-1][2],
        "rounds": rounds,
        "held_out_pairs": held_out,
        "pairs_per_round": used,
        "curve": [c[0] for c in curve],
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(len(result["curve"])), result["curve"], marker="o", label="held-out agreement")
    ax.axhline(0.5, color="grey", linestyle="--", label="chance")
    ax.set_xlabel("DPO refinement rounds")
    ax.set_ylabel("agreement with verifier")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer pairs and rounds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument("--plot", type=Path, default=Path("runs/bench/critic_refine.png"))
    args = parser.parse_args()
    if args.quick:
        result = measure(rounds=2, train_per_round=2, held_out=8, steps=1)
    else:
        result = measure(rounds=5, train_per_round=16, held_out=40, steps=4)
    plot(result, args.plot)
    table = Table(title="Critic refinement (SmolLM2-135M, DPO on verified math pairs)")
    for column in ("round", "held-out agreement"):
        table.add_column(column)
    for n, value in enumerate(result["curve"]):
        table.add_row(str(n), f"{value:.3f}")
    table.caption = (
        f"after: {result['agreement_after']:.3f} "
        f"(Wilson 95% low {result['ci_low_after']:.3f}); plot {args.plot}"
    )
    Console(width=100).print(table)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
