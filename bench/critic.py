"""Benchmark the pairwise critic's pairing strategies with a simulated critic.

A simulated critic with known behaviour: each response has a latent quality q ~ N(0, 1);
comparing A (shown first) with B, A wins with probability sigmoid((q_A - q_B) / noise +
bias), where ``bias`` is a position bias towards the first-shown response. For K in 4, 8
and 16 this measures ranking accuracy (Kendall tau of the Bradley-Terry scores against
the latent order) against the number of critic calls, for every pairing strategy, with
and without judging both orders. The strategies and aggregation are the ones `rank`
uses; only the comparator is simulated.

    python bench/critic.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rubrics.aggregate import kendall_tau
from rubrics.critic import Preference, rank

NOISE, BIAS = 0.7, 0.8
# Share of pairs a critic of this noise orders correctly (no bias), for q ~ N(0, 1).
ACCURACY = {0.1: 0.961, 0.3: 0.888, 0.7: 0.78}


class SimulatedCritic:
    def __init__(self, quality: dict[str, float], rng: random.Random, noise: float) -> None:
        self.quality, self.rng, self.noise = quality, rng, noise

    async def __call__(self, prompt: str, first: str, second: str) -> tuple[Preference, str]:
        margin = (self.quality[first] - self.quality[second]) / self.noise + BIAS
        won = self.rng.random() < 1 / (1 + math.exp(-margin))
        return ("first" if won else "second"), "simulated"


def configurations(k: int) -> list[tuple[str, str, int | None, bool]]:
    """(label, strategy, budget in pairs, both orders)."""
    out = []
    for both in (True, False):
        per_pair = 2 if both else 1
        out += [
            ("all pairs", "all_pairs", None, both),
            (f"random, {2 * k} calls", "random", max(1, 2 * k // per_pair), both),
            ("swiss", "swiss", None, both),
            (f"adaptive, {2 * k} calls", "adaptive", max(1, 2 * k // per_pair), both),
            ("knockout", "knockout", None, both),
            ("merge sort", "mergesort", None, both),
        ]
    return out


def measure(k: int, trials: int, noise: float = NOISE) -> list[dict[str, Any]]:
    rows = []
    for label, name, budget, both in configurations(k):
        taus, calls = [], []
        for trial in range(trials):
            rng = random.Random(trial)
            latent = [rng.gauss(0, 1) for _ in range(k)]
            responses = [f"r{i}" for i in range(k)]
            critic = SimulatedCritic(dict(zip(responses, latent, strict=True)), rng, noise)
            ranking = asyncio.run(
                rank(
                    "p",
                    responses,
                    critic,
                    pairing=name,
                    budget=budget,
                    both_orders=both,
                    seed=trial,
                )
            )
            taus.append(kendall_tau(ranking.scores, latent))
            calls.append(ranking.calls)
        rows.append(
            {
                "k": k,
                "noise": noise,
                "strategy": label,
                "both_orders": both,
                "calls": statistics.mean(calls),
                "tau": statistics.mean(taus),
            }
        )
    return rows


def noise_sweep(rows: list[dict[str, Any]], trials: int) -> dict[str, float]:
    """K=8: all pairs in both orders against the best strategy with <= 2K calls, by noise."""
    sweep = Table(title="K=8, by critic noise: all pairs (both orders) vs best with <= 16 calls")
    for column in ("noise", "pairwise accuracy", "tau all pairs", "best <= 16 calls", "tau", "gap"):
        sweep.add_column(column, justify="right")
    gaps = {}
    for noise in (0.1, 0.3, NOISE):
        found = rows if noise == NOISE else measure(8, trials, noise)
        k8 = [r for r in found if r["k"] == 8]
        full = next(r for r in k8 if r["strategy"] == "all pairs" and r["both_orders"])
        cheap = max((r for r in k8 if r["calls"] <= 16), key=lambda r: r["tau"])
        gap = full["tau"] - cheap["tau"]
        gaps[str(noise)] = round(gap, 4)
        order = "both orders" if cheap["both_orders"] else "one order"
        sweep.add_row(
            f"{noise}",
            f"{ACCURACY[noise]:.2f}",
            f"{full['tau']:.3f}",
            f"{cheap['strategy']}, {order}, {cheap['calls']:.0f} calls",
            f"{cheap['tau']:.3f}",
            f"{gap:.3f}",
        )
    Console(width=120).print(sweep)
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer trials (under a minute)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    args = parser.parse_args()
    trials = 40 if args.quick else 200
    rows = [row for k in (4, 8, 16) for row in measure(k, trials)]
    table = Table(
        title=f"pairing strategies, simulated critic (noise {NOISE}, position bias "
        f"{BIAS}, {trials} trials)"
    )
    for column in ("K", "strategy", "both orders", "critic calls", "Kendall tau"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            str(r["k"]),
            str(r["strategy"]),
            "yes" if r["both_orders"] else "no",
            f"{r['calls']:.1f}",
            f"{r['tau']:.3f}",
        )
    Console(width=120).print(table)
    gaps = noise_sweep(rows, trials)
    k8 = [r for r in rows if r["k"] == 8]
    all_pairs = next(r for r in k8 if r["strategy"] == "all pairs" and r["both_orders"])
    budgeted = [r for r in k8 if float(r["calls"]) <= 16 and r["strategy"] != "all pairs"]  # type: ignore[arg-type]
    best = max(budgeted, key=lambda r: float(r["tau"]))  # type: ignore[arg-type]
    one_order = next(r for r in k8 if r["strategy"] == "all pairs" and not r["both_orders"])
    if args.json:
        print(
            json.dumps(
                {
                    "tau_all_pairs_k8": round(float(all_pairs["tau"]), 4),  # type: ignore[arg-type]
                    "tau_best_budget_k8": round(float(best["tau"]), 4),  # type: ignore[arg-type]
                    "calls_best_budget_k8": best["calls"],
                    "best_budget_strategy_k8": best["strategy"],
                    "best_budget_both_orders_k8": best["both_orders"],
                    "budget_gap_by_noise_k8": gaps,
                    "position_bias_tau_gain_k8": round(
                        float(all_pairs["tau"]) - float(one_order["tau"]), 4
                    ),  # type: ignore[arg-type]
                }
            )
        )


if __name__ == "__main__":
    main()
