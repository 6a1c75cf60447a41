"""Unbiased estimators of pass@k and pass^k from ``n`` trials of a task, ``c`` of them passing.

pass@k (Chen et al., 2021) is the probability that at least one of ``k`` trials drawn
without replacement from the ``n`` passes: ``1 - C(n-c, k) / C(n, k)``. pass^k (τ-bench,
Yao et al., 2024) is the probability that all ``k`` pass: ``C(c, k) / C(n, k)``. pass@k
rewards a model that sometimes succeeds; pass^k one that succeeds every time, which is
what a user who asks the same thing twice sees. Both equal the pass rate at ``k = 1``.
Averaged over tasks they are the benchmark's score: :func:`summarize` averages them over
the tasks of a list of :class:`Outcome` records, overall, per environment kind and per
difficulty (a pure function: ``rl.agentic_eval`` and the rejection sampler's manifest
call it on what their trials wrote).

Example::

    pass_at_k(4, 2, 2)   # 1 - C(2,2)/C(4,2) = 5/6
    pass_hat_k(4, 2, 2)  # C(2,2)/C(4,2)     = 1/6
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import comb
from typing import Any


def _check(n: int, c: int, k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"{c} passing of {n} samples is impossible")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` of the ``n`` samples (``c`` correct) passes."""
    _check(n, c, k)
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Probability that all ``k`` of ``k`` samples drawn from the ``n`` (``c`` correct) pass."""
    _check(n, c, k)
    return comb(c, k) / comb(n, k)


@dataclass(frozen=True)
class Outcome:
    """One finished trial: which task (and its kind and difficulty), and whether it passed."""

    task_id: str
    environment: str
    difficulty: str
    passed: bool


def summarize(outcomes: Iterable[Outcome], ks: Sequence[int]) -> dict[str, Any]:
    """pass@k and pass^k for each ``k``, overall, per environment kind and per difficulty.

    Each group row holds ``tasks``, ``trials``, ``passed`` and, per ``k``, ``pass@k`` and
    ``pass^k``: the estimators averaged over the group's tasks (``None`` for no task).
    Tasks may have different numbers of trials; a task with fewer than ``k`` is a
    ``ValueError`` naming it. Example::

        summarize([Outcome("t1", "executable", "single", True),
                   Outcome("t1", "executable", "single", False)], [1, 2])
        # {"overall": {"tasks": 1, "trials": 2, "passed": 1, "pass@1": 0.5, "pass^1": 0.5,
        #              "pass@2": 1.0, "pass^2": 0.0}, "by_environment": {...}, ...}
    """
    tasks: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        tasks.setdefault(outcome.task_id, []).append(outcome)
    for task_id, trials in tasks.items():
        if max(ks, default=0) > len(trials):
            raise ValueError(
                f"task {task_id}: pass@{max(ks)} needs {max(ks)} trials, it has {len(trials)}"
            )

    def group(ids: list[str]) -> dict[str, Any]:
        counts = [(len(tasks[i]), sum(o.passed for o in tasks[i])) for i in ids]
        row: dict[str, Any] = {
            "tasks": len(ids),
            "trials": sum(n for n, _ in counts),
            "passed": sum(c for _, c in counts),
        }
        for k in ks:
            for name, estimator in ((f"pass@{k}", pass_at_k), (f"pass^{k}", pass_hat_k)):
                values = [estimator(n, c, k) for n, c in counts]
                row[name] = sum(values) / len(values) if values else None
        return row

    def by(attribute: str) -> dict[str, dict[str, Any]]:
        keys: dict[str, list[str]] = {}
        for task_id, trials in tasks.items():
            keys.setdefault(getattr(trials[0], attribute), []).append(task_id)
        return {key: group(ids) for key, ids in sorted(keys.items())}

    return {
        "overall": group(list(tasks)),
        "by_environment": by("environment"),
        "by_difficulty": by("difficulty"),
    }
