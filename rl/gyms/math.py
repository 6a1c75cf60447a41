"""The math gym: answer equivalence with ``math-verify``.

Tasks come from ``reasoning-gym`` generators (procedural: any size, any seed) and from a
user JSONL file of ``{"question", "answer"}`` rows. The model is asked to end with a line
``Answer: <answer>``; the verifier reads the text after the last such marker (else the
last ``\\boxed{}``, else the last line), takes what follows a final ``=``, and compares it
with the gold answer by ``math_verify.verify`` (so ``0.5``, ``1/2`` and ``\\frac12`` agree).
Answers that hedge between several values (``3 or 4``, ``3, 4``) score 0: listing
candidates is a hack, not an answer. Gold answers that are not mathematics (a word, a
list) are compared as normalised strings.

Not here: step-by-step grading, or the reasoning-gym datasets' own scorers.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llm.yamlconf import TextFile
from rl.gyms.base import (
    Gym,
    GymError,
    GymOptions,
    Sample,
    Split,
    Task,
    read_jsonl,
    register,
    split_items,
)

SYSTEM = (
    "Solve the problem. Think briefly, then end with one line of the form 'Answer: <final answer>'."
)
MAX_CHARS = 2000
_ANSWER = re.compile(r"answer\s*[:：]\s*(.+)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_HEDGE = re.compile(r"\bor\b|,|;|\band\b", re.IGNORECASE)


class MathRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1)
    answer: str | int | float


class MathOptions(GymOptions):
    datasets: list[str] = Field(default_factory=lambda: ["basic_arithmetic"])
    """reasoning-gym generators to draw from (``reasoning_gym.factory.DATASETS``); tasks
    are spread evenly over them."""
    dataset_config: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for every generator (e.g. ``min_terms``, ``max_digits``)."""
    path: TextFile | None = None
    """A JSONL file of ``{"question", "answer"}`` rows; when set, generators are not used."""
    system_prompt: str = SYSTEM
    """The system message every math prompt starts with."""


@register
class MathGym(Gym):
    name = "math"
    Options = MathOptions
    options: MathOptions

    def load(self, split: Split) -> list[Task]:
        options = self.options
        if options.path:
            rows = [(r.question, str(r.answer)) for r in read_jsonl(options.path, MathRow)]
            pairs = split_items(rows, split, options)
        else:
            pairs = self._generate(options, split)
        return [
            Task(
                prompt=[
                    {"role": "system", "content": options.system_prompt},
                    {"role": "user", "content": question},
                ],
                payload={"answer": answer},
            )
            for question, answer in pairs
        ]

    def _generate(self, options: MathOptions, split: Split) -> list[tuple[str, str]]:
        import reasoning_gym

        size = options.count if split == "train" else options.eval_count
        if size == 0 or not options.datasets:
            return []
        # Eval draws from another seed stream, so no held-out task is a training task.
        seed = options.seed if split == "train" else options.seed + 1_000_003
        per = -(-size // len(options.datasets))
        pairs: list[tuple[str, str]] = []
        for offset, name in enumerate(options.datasets):
            if name not in reasoning_gym.factory.DATASETS:
                raise GymError(f"math gym: unknown reasoning-gym dataset {name!r}")
            try:
                data = reasoning_gym.create_dataset(
                    name, size=per, seed=seed + offset, **options.dataset_config
                )
            except (TypeError, ValueError, AssertionError) as exc:
                raise GymError(f"math gym: dataset {name}: {exc}") from exc
            pairs += [(str(x["question"]), str(x["answer"])) for x in data]
        if split == "eval":
            train = set(q for q, _ in self._generate(options, "train")) if options.count else set()
            pairs = [p for p in pairs if p[0] not in train]
        return pairs[:size]

    def verify(self, sample: Sample) -> float | None:
        gold = sample.payload.get("answer")
        if gold is None:
            return None
        return score_answer(sample.text, str(gold))


def final_answer(text: str) -> str:
    """The part of ``text`` that states the answer (see the module docstring)."""
    text = (text or "")[-MAX_CHARS:]
    marked = _ANSWER.findall(text)
    if marked:
        region = marked[-1]
    else:
        boxed = _BOXED.findall(text)
        lines = [line for line in text.strip().splitlines() if line.strip()]
        region = boxed[-1] if boxed else (lines[-1] if lines else "")
    region = region.strip().rstrip(".")
    return region.rsplit("=", 1)[-1].strip() if "=" in region else region


def hedges(region: str) -> bool:
    """Several distinct numbers joined by ``or``/commas/``and``: a list of guesses."""
    region = _THOUSANDS.sub("", region)
    return bool(_HEDGE.search(region)) and len(set(_NUMBER.findall(region))) > 1


def score_answer(text: str, gold: str) -> float:
    from math_verify import parse, verify

    region = final_answer(text)
    if not region or hedges(region):
        return 0.0
    region = _THOUSANDS.sub("", region)
    if not region:
        return 0.0
    gold_parsed = parse(gold if gold.startswith("$") else f"${gold}$")
    if not gold_parsed:
        return float(_normal(region) == _normal(gold))
    try:
        answer = parse(region if "$" in region or "\\" in region else f"${region}$")
        if not answer:
            answer = parse(region)
        return float(bool(verify(gold_parsed, answer)))
    except Exception:  # noqa: BLE001 - math-verify on adversarial text: no answer, not a crash
        return 0.0


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip(".").lower())
