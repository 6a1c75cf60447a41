"""The rubric file format: pydantic models that YAML is validated against.

One YAML file holds one rubric. ``python -m rubrics schema`` prints the JSON Schema of
:class:`Rubric` for editors (yaml-language-server), so the format cannot drift from this
module. Loading, ``extends`` resolution and cross-file checks live in ``loader.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Kind = Literal[
    "core", "prescriptive", "task", "trajectory", "safety", "faithfulness", "calibration"
]
Scale = Literal["binary", "likert-5", "0-10"]
Precheck = Literal["initial_praise", "self_justification"]
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"

SCALE_RANGE: dict[str, tuple[int, int]] = {"binary": (0, 1), "likert-5": (1, 5), "0-10": (0, 10)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Examples(_Strict):
    """Short illustrations shown to the judge."""

    good: list[str] = Field(default_factory=list)
    """Responses that meet the criterion."""
    bad: list[str] = Field(default_factory=list)
    """Responses that fail it."""


class Criterion(_Strict):
    """One thing the judge scores."""

    id: str = Field(pattern=ID_PATTERN)
    """Unique within the rubric (after ``extends``); lower-case, digits, ``_ . -``."""
    description: str = Field(min_length=1)
    """What is being judged, as one sentence the judge reads."""
    weight: float = Field(default=1.0, gt=0)
    """Relative weight in the overall score."""
    scale: Scale = "likert-5"
    """binary (0/1), likert-5 (1..5) or 0-10."""
    mandatory: bool = False
    """A hard gate: the verdict fails when this criterion scores below half its scale."""
    guidance: str = ""
    """How to apply it: edge cases, what not to reward."""
    examples: Examples | None = None
    """Optional good and bad examples."""
    precheck: Precheck | None = None
    """A deterministic check run before the judge; when it fires the criterion scores 0."""


class AppliesTo(_Strict):
    """Where the rubric is used; empty means everywhere."""

    tags: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)


class PairTest(_Strict):
    """A golden comparison: which of ``a`` and ``b`` the rubric should prefer."""

    prompt: str
    a: str
    b: str
    expected: Literal["a", "b", "tie"]


class SingleTest(_Strict):
    """A golden single judgment: should ``response`` pass the rubric?"""

    prompt: str
    response: str
    expected_pass: bool


class Rubric(_Strict):
    """A rubric file."""

    id: str = Field(pattern=ID_PATTERN)
    """Unique across every loaded file."""
    version: int = Field(default=1, ge=1)
    """Bump when the criteria change meaning; recorded with every verdict."""
    kind: Kind
    """core | prescriptive | task | trajectory | safety | faithfulness | calibration."""
    description: str = Field(min_length=1)
    """What the rubric is for."""
    criteria: list[Criterion] = Field(default_factory=list)
    """Own criteria; with ``extends`` they add to (or override, by id) the inherited ones."""
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    """Tags and domains this rubric is meant for."""
    extends: list[str] = Field(default_factory=list)
    """Ids of rubrics whose criteria this one reuses."""
    pass_threshold: float = Field(default=0.6, ge=0, le=1)
    """Overall weighted score (0..1) needed to pass."""
    tests: list[PairTest | SingleTest] = Field(default_factory=list)
    """Golden tests run by ``python -m rubrics test``."""

    @field_validator("criteria")
    @classmethod
    def _unique_criteria(cls, criteria: list[Criterion]) -> list[Criterion]:
        seen: set[str] = set()
        for criterion in criteria:
            if criterion.id in seen:
                raise ValueError(f"duplicate criterion id {criterion.id!r}")
            seen.add(criterion.id)
        return criteria


def normalise(score: float, scale: str) -> float:
    """A raw score on ``scale`` mapped to 0..1."""
    low, high = SCALE_RANGE[scale]
    return (score - low) / (high - low)
