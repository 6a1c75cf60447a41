"""Rubrics: YAML authoring with file:line errors, the built-in library, the judge (score
one response or trajectory) and the pairwise critic (rank a group). Imports only ``llm``."""

from rubrics.critic import LLMCritic, Ranking, rank
from rubrics.judge import JudgeError, Verdict, judge
from rubrics.loader import RubricError, RubricSet, library
from rubrics.schema import Criterion, Rubric

__all__ = [
    "Criterion",
    "JudgeError",
    "LLMCritic",
    "Ranking",
    "Rubric",
    "RubricError",
    "RubricSet",
    "Verdict",
    "judge",
    "library",
    "rank",
]
