"""Agreement between the critic and a verifier, and the verified comparisons it yields.

On a group whose completions also have verifier scores (math, code, instruction
following, tool-use state), every pair the verifier distinguishes is a *verified pair*:
the higher-scored completion is the better one. Agreement is the share of those pairs the
critic orders the same way (a critic tie counts half). Pairs the critic got wrong are the
refinement data; a fixed held-out set of verified pairs measures the critic before and
after each refinement.

Not here: how the critic is refined (``rl.critique.exemplars``, ``rl.critique.local``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from rubrics.critic import Comparator

TIE = 1e-9


@dataclass(frozen=True)
class VerifiedPair:
    """A comparison whose answer a verifier settled: ``better`` beats ``worse``."""

    prompt: str
    better: str
    worse: str
    domain: str = "default"


@dataclass
class GroupAgreement:
    """One group's verifier-distinguished pairs and how the critic ordered them."""

    agreed: float = 0.0
    """Sum over pairs of 1 (same order), 0.5 (critic tie) or 0 (opposite order)."""
    pairs: int = 0
    disagreements: list[VerifiedPair] = field(default_factory=list)
    verified: list[VerifiedPair] = field(default_factory=list)


def group_agreement(
    prompt: str,
    texts: list[str],
    critic_scores: list[float],
    verifier_scores: list[float | None],
    domain: str = "default",
) -> GroupAgreement:
    """Compare the critic's scores with the verifier's over every distinguished pair.

    >>> group_agreement("q", ["a", "b"], [1.0, 0.0], [0.0, 1.0]).agreed
    0.0
    """
    out = GroupAgreement()
    n = len(texts)
    for i in range(n):
        for j in range(i + 1, n):
            vi, vj = verifier_scores[i], verifier_scores[j]
            if vi is None or vj is None or abs(vi - vj) <= TIE:
                continue
            better, worse = (i, j) if vi > vj else (j, i)
            pair = VerifiedPair(prompt, texts[better], texts[worse], domain)
            margin = critic_scores[better] - critic_scores[worse]
            credit = 1.0 if margin > TIE else 0.5 if margin >= -TIE else 0.0
            out.pairs += 1
            out.agreed += credit
            out.verified.append(pair)
            if credit < 1.0:
                out.disagreements.append(pair)
    return out


class AgreementLog:
    """Running agreement per domain (and over all), reset by :meth:`take`."""

    def __init__(self) -> None:
        self._agreed: dict[str, float] = defaultdict(float)
        self._pairs: dict[str, int] = defaultdict(int)

    def add(self, domain: str, result: GroupAgreement) -> None:
        self._agreed[domain] += result.agreed
        self._pairs[domain] += result.pairs

    def take(self) -> dict[str, float]:
        """``{domain: agreement}`` plus ``all``, for domains with at least one pair."""
        out = {d: self._agreed[d] / n for d, n in self._pairs.items() if n}
        total = sum(self._pairs.values())
        if total:
            out["all"] = sum(self._agreed.values()) / total
        self._agreed.clear()
        self._pairs.clear()
        return out


async def pair_agreement(critic: Comparator, pairs: list[VerifiedPair]) -> float | None:
    """Share of ``pairs`` the critic gets right, each judged in both orders (ties half).

    Failed calls are left out; ``None`` when every call failed or there are no pairs.
    """
    from rubrics.judge import JudgeError

    async def credit(first: str, second: str, prompt: str, better_first: bool) -> float | None:
        try:
            preference, _ = await critic(prompt, first, second)
        except JudgeError:
            return None
        if preference == "tie":
            return 0.5
        return 1.0 if (preference == "first") == better_first else 0.0

    calls = [credit(p.better, p.worse, p.prompt, True) for p in pairs]
    calls += [credit(p.worse, p.better, p.prompt, False) for p in pairs]
    scores = [s for s in await asyncio.gather(*calls) if s is not None]
    return sum(scores) / len(scores) if scores else None
