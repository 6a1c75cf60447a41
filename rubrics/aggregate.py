"""Turn pairwise outcomes into scores: win rate and Bradley-Terry.

Bradley-Terry strengths are fitted with the minorisation-maximisation updates (Hunter,
2004), ties counted as half a win for each side, and a weak prior (one virtual tie
against an average opponent) so that unbeaten or winless candidates stay finite.
Scores are log-strengths centred on zero. Pure functions; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """One resolved pair: ``score`` is 1 if ``i`` won, 0 if ``j`` won, 0.5 for a tie."""

    i: int
    j: int
    score: float


def win_rates(k: int, outcomes: list[Outcome]) -> list[float]:
    """Share of comparisons won (ties half); 0.5 for a candidate never compared."""
    won, played = [0.0] * k, [0] * k
    for o in outcomes:
        won[o.i] += o.score
        won[o.j] += 1 - o.score
        played[o.i] += 1
        played[o.j] += 1
    return [won[c] / played[c] if played[c] else 0.5 for c in range(k)]


def bradley_terry(
    k: int, outcomes: list[Outcome], iterations: int = 200, prior: float = 1.0
) -> list[float]:
    """Centred log-strengths; higher is better."""
    wins = [prior / 2] * k
    games: dict[tuple[int, int], float] = {}
    for o in outcomes:
        wins[o.i] += o.score
        wins[o.j] += 1 - o.score
        key = (min(o.i, o.j), max(o.i, o.j))
        games[key] = games.get(key, 0.0) + 1
    strength = [1.0] * k
    for _ in range(iterations):
        updated = []
        for c in range(k):
            denom = prior / (strength[c] + 1.0)  # the virtual average opponent
            for (a, b), n in games.items():
                if c in (a, b):
                    other = b if c == a else a
                    denom += n / (strength[c] + strength[other])
            updated.append(wins[c] / denom)
        mean = math.exp(sum(math.log(s) for s in updated) / k)
        strength = [s / mean for s in updated]
    return [math.log(s) for s in strength]


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b between two score lists (ties in either count as neither)."""
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denom if denom else 0.0
