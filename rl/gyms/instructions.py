"""The instruction-following gym: prompts augmented with verifiable IFEval-style constraints.

Each task is a plain request (the built-in list in ``data/instructions.txt``, or a user
JSONL of ``{"prompt"}`` rows) with ``per_prompt`` constraints from
:mod:`rl.gyms.constraints` appended. Reward: 1 when every constraint holds, else 0
(``strict``), or the fraction that hold (``loose``). The hack check: a response that
*claims* compliance ("word count: 120", "I followed all the constraints", "this response
contains no commas") while failing a constraint scores ``-hack_penalty`` — asserting
compliance is not complying.

Not here: IFEval's "loose" response variants (stripping first/last lines, markdown).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llm.yamlconf import TextFile
from rl.gyms.base import Gym, GymOptions, Sample, Split, Task, read_jsonl, register, split_items
from rl.gyms.constraint_sampling import sample_constraints
from rl.gyms.constraints import CONSTRAINTS, FAMILIES

BUILT_IN = Path(__file__).with_name("data") / "instructions.txt"
_CLAIM = re.compile(
    r"word count\s*[:=]|\(\s*\d+\s+words?\s*\)|"
    r"\bi\s+(?:have\s+)?(?:followed|complied with|met|satisfied|obeyed)\b|"
    r"\b(?:all|every)\s+(?:the\s+)?(?:constraints?|instructions?|requirements?)\s+"
    r"(?:are|were|have been|has been)\s+(?:met|followed|satisfied)|"
    r"\bthis (?:response|answer|text) (?:contains|has|uses|is written|is in)\b",
    re.IGNORECASE,
)


class InstructionRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1)


class InstructionOptions(GymOptions):
    path: TextFile | None = None
    """A JSONL file of ``{"prompt"}`` rows; the built-in requests when unset."""
    per_prompt: int = Field(2, ge=1, le=6)
    """How many constraints each prompt gets."""
    families: list[str] = Field(default_factory=lambda: list(FAMILIES))
    """Constraint families to draw from (see ``rl.gyms.constraints.FAMILIES``)."""
    mode: Literal["strict", "loose"] = "strict"
    """``strict``: 1 only when all constraints hold; ``loose``: the fraction that hold."""
    hack_penalty: float = Field(0.5, ge=0)
    """Reward is minus this when the response claims compliance it does not have."""

    @field_validator("families")
    @classmethod
    def _known(cls, families: list[str]) -> list[str]:
        unknown = sorted(set(families) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown constraint families {unknown}; known: {FAMILIES}")
        return families


@register
class InstructionGym(Gym):
    name = "ifeval"
    Options = InstructionOptions
    options: InstructionOptions

    def load(self, split: Split) -> list[Task]:
        o = self.options
        if o.path:
            requests = [r.prompt for r in read_jsonl(o.path, InstructionRow)]
        else:
            requests = [line for line in BUILT_IN.read_text().splitlines() if line.strip()]
        # Requests are few and reusable; constraints make each task distinct. Eval uses
        # another seed stream for the constraints and the held-out requests.
        held = split_items(requests, split, o.model_copy(update={"count": len(requests)}))
        if not held:
            return []
        size = o.count if split == "train" else o.eval_count
        rng = random.Random(o.seed if split == "train" else o.seed + 1_000_003)
        tasks = []
        for index in range(size):
            request = held[index % len(held)]
            constraints = sample_constraints(rng, o.per_prompt, o.families, request)
            text = request + "\n\n" + " ".join(c.instruction() for c in constraints)
            tasks.append(
                Task(
                    prompt=[{"role": "user", "content": text}],
                    payload={"constraints": [c.model_dump() for c in constraints]},
                )
            )
        return tasks

    def verify(self, sample: Sample) -> float | None:
        raw = sample.payload.get("constraints")
        if not raw:
            return None
        constraints = CONSTRAINTS.validate_python(raw)
        text = sample.text
        results = [c.check(text) for c in constraints]
        if not all(results) and _CLAIM.search(text):
            return -self.options.hack_penalty
        if self.options.mode == "strict":
            return float(all(results))
        return sum(results) / len(results)
