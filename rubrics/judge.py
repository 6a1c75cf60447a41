"""Score one response or one trajectory against rubrics: ``judge(...) -> Verdict``.

The judge LLM sees the criteria and the candidate (delimited, defused: see ``render``),
and answers in a JSON schema built from those exact criteria (keys fixed, scores bounded
by each scale), so constrained decoders can enforce it and nothing else parses as a
verdict. It writes its reasoning before its scores. Prescriptive prechecks override the
LLM where they fire. An answer that cannot be parsed, or an endpoint that fails, raises
:class:`JudgeError`: a malformed verdict is a judge failure, never a score of 0.

Example::

    verdict = await judge("What is 2+2?", "4", ["core", "prescriptive"], client)
    verdict.passed, verdict.overall, verdict.scores[0].rationale
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from llm import ChatClient, LLMError, Message
from rubrics.loader import RubricSet, library
from rubrics.prechecks import CHECKS
from rubrics.render import Keyed, as_text, render_judge
from rubrics.schema import SCALE_RANGE, Criterion, normalise

Item = str | list[dict[str, Any]]
# Closed objects: no key beyond the criteria, so a constrained decoder cannot invent more.
CLOSED = ConfigDict(extra="forbid")


class JudgeError(Exception):
    """The judge could not produce a verdict (endpoint failure or unparseable answer)."""


class CriterionScore(BaseModel):
    rubric: str
    criterion: str
    score: float
    """Raw score on the criterion's scale (averaged over samples)."""
    normalised: float
    """The score mapped to 0..1."""
    weight: float
    mandatory: bool
    rationale: str
    source: Literal["judge", "precheck"]


class Verdict(BaseModel):
    """The judgment of one item; the contract every consumer of the judge reads."""

    scores: list[CriterionScore]
    overall: float
    """Weighted mean of the normalised scores, 0..1."""
    passed: bool
    """overall >= threshold and every mandatory criterion at least half its scale."""
    threshold: float
    failed_gates: list[str] = Field(default_factory=list)
    """Mandatory criteria (``rubric.criterion``) that failed."""
    rationale: str
    model: str
    rubrics: dict[str, int]
    """Rubric ids and the versions judged against."""
    samples: int = 1


def criterion_key(rubric_id: str, criterion: Criterion) -> str:
    return f"{rubric_id}.{criterion.id}"


def answer_model(criteria: Keyed, reasoning_chars: int = 1200) -> type[BaseModel]:
    """A pydantic model accepting exactly these criteria, each score bounded by its scale.

    ``reasoning_chars`` bounds the overall reasoning (a third of it per criterion), which
    keeps a constrained decoder from rambling until ``max_tokens``.
    """
    short = Field(max_length=max(40, reasoning_chars // 3))
    fields: dict[str, Any] = {}
    for index, (key, _, c) in enumerate(criteria):
        low, high = SCALE_RANGE[c.scale]
        # Whole numbers on every scale: an unbounded float lets a constrained decoder
        # write digits forever.
        entry = create_model(
            f"Score{index}",
            __config__=CLOSED,
            reasoning=(str, short),
            score=(int, Field(ge=low, le=high)),
        )
        fields[f"c{index}"] = (entry, Field(alias=key))
    scores = create_model("Scores", __config__=CLOSED, **fields)
    return create_model(
        "JudgeAnswer",
        __config__=CLOSED,
        reasoning=(str, Field(max_length=reasoning_chars)),
        scores=(scores, ...),
    )


def keyed(rubrics: list[str], rubric_set: RubricSet) -> Keyed:
    return [(criterion_key(rid, c), rid, c) for rid, c in rubric_set.merged(rubrics)]


async def judge(
    prompt: str,
    item: Item,
    rubrics: list[str],
    client: ChatClient,
    *,
    rubric_set: RubricSet | None = None,
    threshold: float | None = None,
    samples: int = 1,
    max_tokens: int = 1024,
    reasoning_chars: int = 1200,
) -> Verdict:
    """Judge ``item`` (a response, or a trajectory as OpenAI messages) for ``prompt``.

    ``samples`` > 1 asks that many times at temperature 0.7 and averages the scores.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1 (one judge call), got {samples}")
    rubric_set = rubric_set or library()
    criteria = keyed(rubrics, rubric_set)
    model = answer_model(criteria, reasoning_chars)
    text = render_judge(prompt, item, criteria)
    messages = [Message(role="user", content=text)]

    async def one(seed: int) -> Any:
        try:
            return await client.complete_json(
                messages,
                model,
                temperature=0.0 if samples == 1 else 0.7,
                seed=seed,
                max_tokens=max_tokens,
            )
        except LLMError as exc:
            raise JudgeError(f"judge failed ({client.endpoint.name}): {exc}") from exc

    answers = await asyncio.gather(*(one(seed) for seed in range(samples)))
    final_text = _final_response(item)
    scores = []
    for index, (_, rid, c) in enumerate(criteria):
        entries = [getattr(a.scores, f"c{index}") for a in answers]
        raw = sum(float(e.score) for e in entries) / len(entries)
        rationale, source = entries[0].reasoning, "judge"
        if c.precheck and CHECKS[c.precheck](final_text):
            raw, rationale, source = (
                float(SCALE_RANGE[c.scale][0]),
                f"precheck {c.precheck} fired",
                "precheck",
            )
        scores.append(
            CriterionScore(
                rubric=rid,
                criterion=c.id,
                score=raw,
                normalised=normalise(raw, c.scale),
                weight=c.weight,
                mandatory=c.mandatory,
                rationale=rationale,
                source=source,
            )
        )
    if threshold is None:
        threshold = max(rubric_set.rubrics[r].pass_threshold for r in rubrics)
    return aggregate(
        scores,
        threshold,
        answers[0].reasoning,
        client.endpoint.model,
        {r: rubric_set.rubrics[r].version for r in rubrics},
        samples,
    )


def aggregate(
    scores: list[CriterionScore],
    threshold: float,
    rationale: str,
    model: str,
    rubrics: dict[str, int],
    samples: int = 1,
) -> Verdict:
    """Weighted overall score and the pass decision (mandatory criteria gate it)."""
    total = sum(s.weight for s in scores)
    overall = sum(s.weight * s.normalised for s in scores) / total if total else 0.0
    gates = [f"{s.rubric}.{s.criterion}" for s in scores if s.mandatory and s.normalised < 0.5]
    return Verdict(
        scores=scores,
        overall=overall,
        passed=overall >= threshold and not gates,
        threshold=threshold,
        failed_gates=gates,
        rationale=rationale,
        model=model,
        rubrics=rubrics,
        samples=samples,
    )


def _final_response(item: Item) -> str:
    if isinstance(item, str):
        return item
    for message in reversed(item):
        if message.get("role") == "assistant" and isinstance(message.get("content"), str):
            return str(message["content"])
    return as_text(item)
