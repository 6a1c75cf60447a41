"""Which pairs of candidates the critic compares, round by round.

A strategy is an object with one method, ``next_round(k, results) -> list of (i, j)``;
an empty list ends the ranking. ``results`` holds the outcomes so far, so adaptive
strategies (Swiss, knockout) can pair on the current standings. Each pair costs one
critic call, or two when both orders are judged.

* ``AllPairs`` — every pair once: K(K-1)/2 pairs, the most accurate, the most calls.
* ``RandomPairs(budget)`` — a random round-robin of at most ``budget`` pairs.
* ``Swiss(rounds)`` — each round pairs neighbours in the current standings.
* ``Knockout`` — a bracket; winners advance, K-1 pairs in all.
* ``Adaptive(budget)`` — pairs neighbours in the current Bradley-Terry order.
* ``MergeSort`` — a merge sort driven by the critic, about K log2 K pairs.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Protocol

from rubrics.aggregate import Outcome, bradley_terry


class PairingStrategy(Protocol):
    def next_round(self, k: int, results: list[Outcome]) -> list[tuple[int, int]]: ...


class AllPairs:
    def next_round(self, k: int, results: list[Outcome]) -> list[tuple[int, int]]:
        return [] if results else list(itertools.combinations(range(k), 2))


@dataclass
class RandomPairs:
    budget: int
    """Pairs to compare at most."""
    seed: int = 0

    def next_round(self, k: int, results: list[Outcome]) -> list[tuple[int, int]]:
        if results:
            return []
        pairs = list(itertools.combinations(range(k), 2))
        rng = random.Random(self.seed)
        rng.shuffle(pairs)
        # Cover every candidate before spending budget on repeats of the same ones.
        chosen: list[tuple[int, int]] = []
        seen: set[int] = set()
        for i, j in pairs:
            if i not in seen or j not in seen:
                chosen.append((i, j))
                seen.update((i, j))
        chosen += [p for p in pairs if p not in chosen]
        return chosen[: self.budget]


@dataclass
class Swiss:
    rounds: int = 0
    """Rounds to play; 0 means ceil(log2 K) + 1."""
    seed: int = 0
    _played: int = field(default=0, init=False)

    def next_round(self, k: int, results: list[Outcome]) -> list[tuple[int, int]]:
        total = self.rounds or math.ceil(math.log2(max(k, 2))) + 1
        if self._played >= total:
            return []
        self._played += 1
        points = [0.0] * k
        met = set()
        for o in results:
            points[o.i] += o.score
            points[o.j] += 1 - o.score
            met.add(frozenset((o.i, o.j)))
        rng = random.Random(self.seed + self._played)
        order = sorted(range(k), key=lambda c: (-points[c], rng.random()))
        return _fresh_pairing(order, met) or [
            (order[n], order[n + 1]) for n in range(0, len(order) - 1, 2)
        ]


def _fresh_pairing(order: list[int], met: set[frozenset[int]]) -> list[tuple[int, int]] | None:
    """Pair neighbours in ``order`` with no rematch, backtracking when greed would force one."""
    if len(order) < 2:
        return []
    first, rest = order[0], order[1:]
    for partner in rest:
        if frozenset((first, partner)) in met:
            continue
        tail = _fresh_pairing([c for c in rest if c != partner], met)
        if tail is not None:
            return [(first, partner), *tail]
    return None


@dataclass
class Adaptive:
    """Spend a budget where the ranking is least settled.

    A first round pairs everyone at random; each later round fits Bradley-Terry to the
    outcomes so far and pairs neighbours in that order (no rematches), because adjacent
    candidates are the ones whose order is still in doubt. Stops at ``budget`` pairs.
    """

    budget: int
    seed: int = 0

    def next_round(self, k: int, results: list[Outcome]) -> list[tuple[int, int]]:

        left = self.budget - len(results)
        if left <= 0:
            return []
        rng = random.Random(self.seed + len(results))
        if not results:
            order = list(range(k))
            rng.shuffle(order)
        else:
            scores = bradley_terry(k, results)
            order = sorted(range(k), key=lambda c: (-scores[c], rng.random()))
        met = {frozenset((o.i, o.j)) for o in results}
        pairs = _fresh_pairing(order, met)
        if not pairs:  # neighbours all met: any unmet pairs, closest in the order first
            position = {c: n for n, c in enumerate(order)}
            unmet = [p for p in itertools.combinations(range(k), 2) if frozenset(p) not in met]
            pairs = sorted(unmet, key=lambda p: abs(position[p[0]] - position[p[1]]))
        return pairs[:left]


class MergeSort:
    """A merge sort whose comparisons are critic calls: about K log2 K pairs in all.

    Every merge of the current level advances by one comparison per round (the heads of
    its two runs), so a round holds as many pairs as there are merges in progress. The
    cheapest way to a full order when the critic is reliable; a wrong call is never
    revisited, so a noisy critic does better with more redundant strategies.
    """

    def __init__(self) -> None:
        self._runs: list[list[int]] | None = None
        self._merges: list[tuple[list[int], list[int], list[int]]] = []
        self._asked: list[tuple[int, int]] = []

    def next_round(self, k: int, results: list[Outcome]) -> list[tuple[int, int]]:
        if self._runs is None:
            self._runs = [[c] for c in range(k)]
        answers = {(o.i, o.j): o.score for o in results}
        for (i, j), merge in zip(self._asked, self._merges, strict=False):
            left, right, out = merge
            out.append(left.pop(0) if answers.get((i, j), 0.5) >= 0.5 else right.pop(0))
        if self._merges:
            still = []
            for left, right, out in self._merges:
                if left and right:
                    still.append((left, right, out))
                else:
                    self._runs.append(out + left + right)
            self._merges = still
        if not self._merges:
            if len(self._runs) <= 1:
                return []
            runs, self._runs = self._runs, []
            for n in range(0, len(runs) - 1, 2):
                self._merges.append((list(runs[n]), list(runs[n + 1]), []))
            if len(runs) % 2:
                self._runs.append(runs[-1])
        self._asked = [(left[0], right[0]) for left, right, _ in self._merges]
        return list(self._asked)


class Knockout:
    """Single elimination; byes go to the earliest-seeded candidates."""

    def next_round(self, k: int, results: list[Outcome]) -> list[tuple[int, int]]:
        alive = list(range(k))
        for o in results:
            loser = o.j if o.score >= 0.5 else o.i
            if loser in alive:
                alive.remove(loser)
        if len(alive) < 2:
            return []
        return [(alive[n], alive[n + 1]) for n in range(0, len(alive) - 1, 2)]


def strategy(name: str, k: int, budget: int | None = None, seed: int = 0) -> PairingStrategy:
    """A strategy by name: all_pairs, random, swiss, knockout, adaptive or mergesort."""
    if name == "all_pairs":
        return AllPairs()
    if name == "random":
        return RandomPairs(budget=budget or k, seed=seed)
    if name == "swiss":
        return Swiss(seed=seed)
    if name == "knockout":
        return Knockout()
    if name == "mergesort":
        return MergeSort()
    if name == "adaptive":
        return Adaptive(budget=budget or k, seed=seed)
    raise ValueError(
        f"unknown pairing strategy {name!r}: "
        "all_pairs, random, swiss, knockout, adaptive or mergesort"
    )
