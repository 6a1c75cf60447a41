"""Score one response or one trajectory against rubrics: ``judge(...) -> Verdict``.

The judge LLM sees the criteria and the candidate (delimited, defused: see ``render``),
and answers in a JSON schema built from those exact criteria (keys fixed, scores bounded
by each scale), so constrained decoders can enforce it and nothing else parses as a
verdict. It writes its reasoning before its scores. Prescriptive prechecks override the
LLM where they fire. An answer that cannot be parsed, or an endpoint that fails, raises
:class:`JudgeError`: a malformed verdict is a judge failure, never a score of 0.

A parseable answer is not yet a verdict: a weak judge writes garbage that fits the schema
(``"1. 1. 2. 3."`` as its reasoning, then a perfect score). Each sample's reasonings are
checked by :func:`rationale_problem` (degenerate text; with ``require_addressed``, also a
very short rationale that names nothing of its criterion). A sample with any such
reasoning is discarded whole, since a judge that wrote garbage for one criterion is not
trusted on the others; the verdict averages the clean samples when they are more than
half of those asked, and is a :class:`JudgeError` otherwise. With one sample, one bad
reasoning makes the judgment an error, never a score.

Example::

    verdict = await judge("What is 2+2?", "4", ["core", "prescriptive"], client)
    verdict.passed, verdict.overall, verdict.scores[0].rationale
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from llm import ChatClient, LLMError, Message
from llm.types import final_assistant_text
from rubrics.degenerate import degeneracy, words
from rubrics.loader import RubricSet, library
from rubrics.prechecks import CHECKS
from rubrics.render import Keyed, as_text, render_judge
from rubrics.schema import SCALE_RANGE, Criterion, normalise

Item = str | list[dict[str, Any]]
RATIONALE_CHECKS = ("empty", "repetition", "role_markers", "no_language")
"""What makes a judge's reasoning degenerate (``rubrics.degenerate``); not ``prompt_echo``,
since restating a criterion is how a judge says it holds."""
SHORT_RATIONALE = 4
"""Rationales of fewer words than this must share a word with their criterion."""
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
    cut_chars: int = 0
    """Characters of the trajectory the judge did not see: cut to ``max_chars`` by the rule
    of :mod:`rubrics.transcript` (0: it saw it whole)."""


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
    require_addressed: bool = False,
    max_chars: int | None = None,
) -> Verdict:
    """Judge ``item`` (a response, or a trajectory as OpenAI messages) for ``prompt``.

    ``samples`` > 1 asks that many times at temperature 0.7 and averages the scores of
    the samples whose reasonings are sound (see the module docstring).
    ``require_addressed`` also discards samples with a very short rationale that names
    nothing of its criterion (synthesis asks for it; see :func:`rationale_problem`).
    ``max_chars`` cuts a longer trajectory by the rule of :mod:`rubrics.transcript`
    (tool results first, the final answer last; a marker shows each cut) and records the
    characters cut in :attr:`Verdict.cut_chars`; unset, the judge sees it whole.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1 (one judge call), got {samples}")
    rubric_set = rubric_set or library()
    criteria = keyed(rubrics, rubric_set)
    model = answer_model(criteria, reasoning_chars)
    text = render_judge(prompt, item, criteria, max_chars)
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

    asked = await asyncio.gather(*(one(seed) for seed in range(samples)))
    answers = sound_answers(asked, criteria, require_addressed)
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
    verdict = aggregate(
        scores,
        threshold,
        answers[0].reasoning,
        client.endpoint.model,
        {r: rubric_set.rubrics[r].version for r in rubrics},
        len(answers),
    )
    verdict.cut_chars = as_text(item, max_chars).cut
    return verdict


def addresses(rationale: str, topic: str) -> bool:
    """Whether ``rationale`` shares a content word with ``topic`` (a criterion's key and text).

    Content words have four letters or more; two words match when equal or, both having
    five or more, when their first five letters agree (``completes`` / ``completion``).
    """
    mine = {w for w in words(rationale) if len(w) >= 4}
    theirs = {w for w in words(topic.replace("_", " ").replace(".", " ")) if len(w) >= 4}
    stems = {w[:5] for w in theirs if len(w) >= 5}
    return any(w in theirs or (len(w) >= 5 and w[:5] in stems) for w in mine)


def rationale_problem(
    rationale: str, key: str, criterion: Criterion | None, *, require_addressed: bool
) -> str | None:
    """Why this reasoning cannot back a score, or ``None`` when it can.

    Degenerate text (:data:`RATIONALE_CHECKS`) never backs a score. With
    ``require_addressed``, a rationale of fewer than :data:`SHORT_RATIONALE` words that
    shares no content word with its criterion (key, description, guidance) does not
    address it (``"Yes."``, ``"Good job"``); longer rationales are left alone, because a
    sound one may well speak only of what the agent did.
    """
    reason = degeneracy(rationale, checks=RATIONALE_CHECKS)
    if reason:
        return f"is degenerate ({reason})"
    if require_addressed and criterion is not None and len(words(rationale)) < SHORT_RATIONALE:
        topic = " ".join([key, criterion.description, criterion.guidance])
        if not addresses(rationale, topic):
            return "does not address its criterion"
    return None


def sound_answers(answers: list[Any], criteria: Keyed, require_addressed: bool) -> list[Any]:
    """The samples whose every reasoning is sound; :class:`JudgeError` unless they are the
    majority of ``answers``."""
    sound, problems = [], []
    for index, answer in enumerate(answers):
        found = _answer_problem(answer, criteria, require_addressed)
        if found:
            problems.append(f"sample {index}: {found}")
        else:
            sound.append(answer)
    if 2 * len(sound) <= len(answers):
        raise JudgeError(
            f"{len(problems)} of {len(answers)} judge samples unsound: " + "; ".join(problems)
        )
    return sound


def _answer_problem(answer: Any, criteria: Keyed, require_addressed: bool) -> str | None:
    problem = rationale_problem(answer.reasoning, "reasoning", None, require_addressed=False)
    if problem:
        return f"reasoning {problem}: {answer.reasoning[:80]!r}"
    for index, (key, _, c) in enumerate(criteria):
        text = getattr(answer.scores, f"c{index}").reasoning
        problem = rationale_problem(text, key, c, require_addressed=require_addressed)
        if problem:
            return f"rationale of {key} {problem}: {text[:80]!r}"
    return None


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
    text = final_assistant_text(item)
    return as_text(item).text if text is None else text
