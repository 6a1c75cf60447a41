"""Rank a group of responses by pairwise comparison: ``rank(...) -> Ranking``.

A *comparator* says which of two responses is better; :class:`LLMCritic` asks a model with
the critic prompt and rubrics, and a benchmark can plug in a simulated one. ``rank`` asks
a pairing strategy for pairs round by round, judges each pair (in both orders by default,
which cancels a critic's position bias), runs a round's calls concurrently, and
aggregates by Bradley-Terry and by win rate. A failed comparison is recorded and
skipped: fewer comparisons, never a crash.

Example::

    critic = LLMCritic(client, ["core", "prescriptive"])
    ranking = await rank("Explain TCP.", [r1, r2, r3, r4], critic, pairing="swiss")
    ranking.scores        # Bradley-Terry log-strengths, one per response
"""

from __future__ import annotations

import asyncio
import random
from typing import Literal, Protocol

from pydantic import BaseModel, Field, create_model

from llm import ChatClient, LLMError, Message
from rubrics.aggregate import bradley_terry, win_rates
from rubrics.judge import CLOSED, JudgeError, keyed
from rubrics.loader import RubricSet, library
from rubrics.pairing import Outcome, PairingStrategy, strategy
from rubrics.render import render_pair

Preference = Literal["first", "second", "tie"]
Winner = Literal["A", "B", "tie"]


class Comparator(Protocol):
    async def __call__(self, prompt: str, first: str, second: str) -> tuple[Preference, str]: ...


def pair_answer_model(reasoning_chars: int = 1200) -> type[BaseModel]:
    """The critic's answer: reasoning (bounded) first, then the winner."""
    return create_model(
        "PairAnswer",
        __config__=CLOSED,
        reasoning=(str, Field(max_length=reasoning_chars)),
        winner=(Winner, ...),
    )


class LLMCritic:
    """A comparator backed by any endpoint and a list of rubric ids."""

    def __init__(
        self,
        client: ChatClient,
        rubrics: list[str],
        *,
        rubric_set: RubricSet | None = None,
        max_tokens: int = 512,
        reasoning_chars: int = 1200,
    ) -> None:
        self.client = client
        self.answer_model = pair_answer_model(reasoning_chars)
        self.criteria = keyed(rubrics, rubric_set or library())
        self.max_tokens = max_tokens

    def prompt(self, prompt: str, first: str, second: str) -> str:
        return render_pair(prompt, first, second, self.criteria)

    async def __call__(self, prompt: str, first: str, second: str) -> tuple[Preference, str]:
        text = self.prompt(prompt, first, second)
        try:
            answer = await self.client.complete_json(
                [Message(role="user", content=text)],
                self.answer_model,
                temperature=0.0,
                max_tokens=self.max_tokens,
            )
        except LLMError as exc:
            raise JudgeError(f"critic failed ({self.client.endpoint.name}): {exc}") from exc
        choice: str = answer.winner  # type: ignore[attr-defined]
        winner: Preference = "first" if choice == "A" else "second" if choice == "B" else "tie"
        return winner, str(answer.reasoning)  # type: ignore[attr-defined]


class Comparison(BaseModel):
    """One critic call: ``first`` was shown as A."""

    first: int
    second: int
    preference: Preference | None = None
    rationale: str = ""
    error: str | None = None


class Ranking(BaseModel):
    scores: list[float]
    """Bradley-Terry log-strengths (centred); higher is better."""
    win_rates: list[float]
    comparisons: list[Comparison] = Field(default_factory=list)
    calls: int = 0
    failures: int = 0


async def rank(
    prompt: str,
    responses: list[str],
    critic: Comparator,
    *,
    pairing: str | PairingStrategy = "all_pairs",
    budget: int | None = None,
    both_orders: bool = True,
    seed: int = 0,
) -> Ranking:
    """Rank ``responses`` to ``prompt``; ``budget`` (pairs) caps ``random`` and ``adaptive``."""
    k = len(responses)
    plan = strategy(pairing, k, budget, seed) if isinstance(pairing, str) else pairing
    outcomes: list[Outcome] = []
    comparisons: list[Comparison] = []
    if k < 2:
        return Ranking(scores=[0.0] * k, win_rates=[0.5] * k)
    shuffle = random.Random(seed)
    while pairs := plan.next_round(k, outcomes):
        if both_orders:
            calls = [(i, j) for i, j in pairs] + [(j, i) for i, j in pairs]
        else:  # one order: a coin decides who is shown first, so position bias is not systematic
            calls = [(i, j) if shuffle.random() < 0.5 else (j, i) for i, j in pairs]
        done = await asyncio.gather(*(_compare(critic, prompt, responses, a, b) for a, b in calls))
        comparisons.extend(done)
        resolved = len(outcomes)
        for i, j in pairs:
            views = [c for c in done if {c.first, c.second} == {i, j} and c.preference]
            if views:
                outcomes.append(Outcome(i, j, sum(_score_for(i, c) for c in views) / len(views)))
        if len(outcomes) == resolved:
            # A round that resolved nothing (every call failed) ends the ranking: the
            # strategies that plan from outcomes would only ask the same round again.
            break
    return Ranking(
        scores=bradley_terry(k, outcomes),
        win_rates=win_rates(k, outcomes),
        comparisons=comparisons,
        calls=len(comparisons),
        failures=sum(1 for c in comparisons if c.error),
    )


async def _compare(
    critic: Comparator, prompt: str, responses: list[str], a: int, b: int
) -> Comparison:
    try:
        preference, rationale = await critic(prompt, responses[a], responses[b])
    except JudgeError as exc:
        return Comparison(first=a, second=b, error=str(exc))
    return Comparison(first=a, second=b, preference=preference, rationale=rationale)


def _score_for(i: int, c: Comparison) -> float:
    """1 if candidate ``i`` won this comparison, 0 if it lost, 0.5 for a tie."""
    if c.preference == "tie":
        return 0.5
    winner = c.first if c.preference == "first" else c.second
    return 1.0 if winner == i else 0.0
