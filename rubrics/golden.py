"""Run a rubric's golden tests against a judge endpoint and measure agreement.

Pair tests go to the pairwise critic (both orders), single tests to the judge. A test
whose call fails counts as a disagreement and is reported with its error.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from llm import ChatClient
from rubrics.critic import LLMCritic, rank
from rubrics.judge import JudgeError, judge
from rubrics.loader import RubricSet
from rubrics.schema import PairTest, Rubric, SingleTest


class GoldenResult(BaseModel):
    rubric: str
    index: int
    kind: str
    expected: str
    got: str
    agrees: bool


async def run_golden(
    rubric: Rubric, rubric_set: RubricSet, client: ChatClient, reasoning_chars: int = 1200
) -> list[GoldenResult]:
    critic = LLMCritic(client, [rubric.id], rubric_set=rubric_set, reasoning_chars=reasoning_chars)

    async def one(index: int, test: PairTest | SingleTest) -> GoldenResult:
        if isinstance(test, PairTest):
            ranking = await rank(test.prompt, [test.a, test.b], critic)
            a, b = ranking.scores
            if ranking.failures == ranking.calls:
                errors = [c.error for c in ranking.comparisons if c.error]
                got = f"error: {errors[0]}" if errors else "error"
            else:
                got = "a" if a > b else "b" if b > a else "tie"
            return GoldenResult(
                rubric=rubric.id,
                index=index,
                kind="pair",
                expected=test.expected,
                got=got,
                agrees=got == test.expected,
            )
        try:
            verdict = await judge(
                test.prompt,
                test.response,
                [rubric.id],
                client,
                rubric_set=rubric_set,
                reasoning_chars=reasoning_chars,
            )
            got = "pass" if verdict.passed else "fail"
        except JudgeError as exc:
            got = f"error: {exc}"
        expected = "pass" if test.expected_pass else "fail"
        return GoldenResult(
            rubric=rubric.id,
            index=index,
            kind="single",
            expected=expected,
            got=got,
            agrees=got == expected,
        )

    return list(await asyncio.gather(*(one(i, t) for i, t in enumerate(rubric.tests))))
