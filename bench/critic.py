"""Benchmark the pairwise critic's pairing strategies with a simulated critic.

A simulated critic with known behaviour: each response has a latent quality q ~ N(0, 1);
comparing A (shown first) with B, A wins with probability sigmoid((q_A - q_B) / noise +
bias), where ``bias`` is a position bias towards the first-shown response. For K in 4, 8
and 16 this measures ranking accuracy (Kendall tau of the Bradley-Terry scores against
the latent order) against the number of critic calls, for every pairing strategy, with
and without judging both orders. The strategies and aggregation are the ones `rank`
uses; only the comparator is simulated.

A second table asks, at K = 8 and three noise levels, how close a budget of 2K calls
comes to all pairs, the fewest calls that come within 0.05 tau of all pairs (16 when the
best 2K-call strategy does, else adaptive pairing with 24, 32, ... 56 calls), and what a
critic that reported its whole internal margin (not just a winner) would reach with 16
calls and with all 56: the limit that a finer verdict scale could approach.

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

import numpy as np
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


def trial_means(
    k: int, trials: int, noise: float, pairing: str, budget: int | None, both: bool
) -> tuple[float, float]:
    """Mean Kendall tau and mean critic calls of ``rank`` over seeded trials."""
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
                pairing=pairing,
                budget=budget,
                both_orders=both,
                seed=trial,
            )
        )
        taus.append(kendall_tau(ranking.scores, latent))
        calls.append(ranking.calls)
    return statistics.mean(taus), statistics.mean(calls)


def measure(k: int, trials: int, noise: float = NOISE) -> list[dict[str, Any]]:
    rows = []
    for label, name, budget, both in configurations(k):
        tau, calls = trial_means(k, trials, noise, name, budget, both)
        row = {"k": k, "noise": noise, "strategy": label, "both_orders": both}
        rows.append(row | {"calls": calls, "tau": tau})
    return rows


def calls_within(noise: float, target: float, trials: int) -> int | None:
    """Fewest calls (24 to 56, in steps of 8) with which adaptive pairing reaches ``target``
    tau at K=8, judging one order while every pair can still be met once, else both."""
    for calls in range(24, 57, 8):
        plans = [(calls // 2, True)] + ([(calls, False)] if calls <= 28 else [])
        for pairs, both in plans:
            if trial_means(8, trials, noise, "adaptive", pairs, both)[0] >= target:
                return calls
    return None


def margin_critic(noise: float, calls: int | None, trials: int) -> float:
    """Mean tau at K=8 for a critic that reports its whole margin, not just the winner.

    The margin is the simulated critic's own latent z = (q_A - q_B) / noise + bias + e,
    e ~ Logistic(0, 1), whose sign is the binary verdict. Scores and the position bias are
    fitted by ridge least squares. ``calls`` random pairs in a random order, or (None) all
    pairs in both orders.
    """
    taus = []
    for trial in range(trials):
        rng = np.random.default_rng(trial)
        latent = rng.normal(size=8)
        pairs = [(i, j) for i in range(8) for j in range(8) if i != j]
        if calls is not None:
            pairs = [pairs[n] for n in rng.permutation(len(pairs))[:calls]]
        rows = np.zeros((len(pairs), 9))
        for n, (i, j) in enumerate(pairs):
            rows[n, i], rows[n, j], rows[n, 8] = 1.0, -1.0, 1.0
        margins = rows[:, :8] @ latent / noise + BIAS + rng.logistic(size=len(pairs))
        ridge = np.diag([0.3] * 8 + [0.01])
        fitted = np.linalg.solve(rows.T @ rows + ridge, rows.T @ margins)[:8]
        taus.append(kendall_tau(fitted.tolist(), latent.tolist()))
    return statistics.mean(taus)


def noise_sweep(rows: list[dict[str, Any]], trials: int) -> dict[str, dict[str, Any]]:
    """K=8, by noise: all pairs in both orders against budgets of calls and a margin critic."""
    sweep = Table(title="K=8, by critic noise: all pairs (both orders, 56 calls) vs fewer calls")
    for column in (
        "noise",
        "pairwise accuracy",
        "tau all pairs",
        "best <= 16 calls",
        "tau",
        "gap",
        "fewest calls to within 0.05",
        "margin critic: 16 / 56 calls",
    ):
        sweep.add_column(column, justify="right")
    gaps, needed, margin_gaps = {}, {}, {}
    for noise in (0.1, 0.3, NOISE):
        found = rows if noise == NOISE else measure(8, trials, noise)
        k8 = [r for r in found if r["k"] == 8]
        full = next(r for r in k8 if r["strategy"] == "all pairs" and r["both_orders"])
        cheap = max((r for r in k8 if r["calls"] <= 16), key=lambda r: r["tau"])
        gap = full["tau"] - cheap["tau"]
        gaps[str(noise)] = round(gap, 4)
        target = full["tau"] - 0.05
        needed[str(noise)] = 16 if gap <= 0.05 else calls_within(noise, target, trials)
        few, every = margin_critic(noise, 16, trials), margin_critic(noise, None, trials)
        margin_gaps[str(noise)] = round(every - few, 4)
        order = "both orders" if cheap["both_orders"] else "one order"
        sweep.add_row(
            f"{noise}",
            f"{ACCURACY[noise]:.2f}",
            f"{full['tau']:.3f}",
            f"{cheap['strategy'].split(',')[0]}, {order}, {cheap['calls']:.0f} calls",
            f"{cheap['tau']:.3f}",
            f"{gap:.3f}",
            str(needed[str(noise)] or "> 56"),
            f"{few:.3f} / {every:.3f}",
        )
    Console(width=160).print(sweep)
    return {"gap": gaps, "calls_within_005": needed, "margin_critic_gap": margin_gaps}


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
    sweep = noise_sweep(rows, trials)
    k8 = [r for r in rows if r["k"] == 8]
    all_pairs = next(r for r in k8 if r["strategy"] == "all pairs" and r["both_orders"])
    budgeted = [r for r in k8 if r["calls"] <= 16 and r["strategy"] != "all pairs"]
    best = max(budgeted, key=lambda r: r["tau"])
    one_order = next(r for r in k8 if r["strategy"] == "all pairs" and not r["both_orders"])
    if args.json:
        print(
            json.dumps(
                {
                    "tau_all_pairs_k8": round(all_pairs["tau"], 4),
                    "tau_best_budget_k8": round(best["tau"], 4),
                    "calls_best_budget_k8": best["calls"],
                    "best_budget_strategy_k8": best["strategy"],
                    "best_budget_both_orders_k8": best["both_orders"],
                    "budget_gap_by_noise_k8": sweep["gap"],
                    "calls_within_005_by_noise_k8": sweep["calls_within_005"],
                    "margin_critic_gap_16_calls_by_noise_k8": sweep["margin_critic_gap"],
                    "position_bias_tau_gain_k8": round(all_pairs["tau"] - one_order["tau"], 4),
                }
            )
        )


if __name__ == "__main__":
    main()
