"""The math gym: answer equivalence with ``math-verify``.

Tasks come from ``reasoning-gym`` generators (procedural: any size, any seed) and from a
user JSONL file of ``{"question", "answer"}`` rows. The model is asked to end with a line
``Answer: <answer>``; the verifier reads the text after the last such marker (else the
last ``\\boxed{}``, else the last line), takes what follows a final ``=``, and compares it
with the gold answer by ``math_verify.verify`` (so ``0.5``, ``1/2`` and ``\\frac12`` agree).
Three things score 0 however equivalent they are: an answer that hedges between more
values than the gold answer has (``3 or 4``, ``x = 3 or x = -4``: listing candidates is a
hack); an answer that restates the question's own expression (``5 - 3 - 6`` for "what is
5 - 3 - 6?": math-verify would evaluate it, but echoing the question is not solving it);
and a truncated completion without an ``Answer:`` line or ``\\boxed{}`` (its last line
is wherever the cut fell, not a final answer). Gold answers that are not mathematics (a
word, a list) are compared as normalised strings.

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
_OR = re.compile(r"\bor\b", re.IGNORECASE)
_OPERATOR = re.compile(r"\d\s*[-+*/×÷^]\s*\(?\s*-?\d")


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
    isolated = True  # math-verify's timeouts are signals: they need a main thread

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
        return score_answer(
            sample.text, str(gold), question=sample.user_text, ended=not sample.truncated
        )


def answer_line(text: str, *, ended: bool = True) -> str:
    """The whole statement of the answer: after the last ``Answer:``, else the last
    ``\\boxed{}``, else (only when the text ``ended`` rather than being cut) the last line."""
    text = (text or "")[-MAX_CHARS:]
    marked = _ANSWER.findall(text)
    if marked:
        return str(marked[-1]).strip().rstrip(".")
    boxed = _BOXED.findall(text)
    if boxed:
        return str(boxed[-1]).strip().rstrip(".")
    lines = [line for line in text.strip().splitlines() if line.strip()] if ended else []
    return lines[-1].strip().rstrip(".") if lines else ""


def final_answer(text: str, *, ended: bool = True) -> str:
    """The part of ``text`` that states the answer: its answer line after a final ``=``."""
    region = answer_line(text, ended=ended)
    return region.rsplit("=", 1)[-1].strip() if "=" in region else region


def hedges(line: str, gold: str = "") -> bool:
    """A list of guesses: more distinct numbers than the gold answer has, joined by
    ``or``/commas/``and`` after the last ``=``, or by ``or`` anywhere on the answer line
    (``x = 3 or x = -4``). A chain of working (``5 - 3 = 2, 2 - 6 = -4``) is not one, nor
    is ``2, 3`` for the gold ``2, 3``."""
    allowed = max(1, len(set(_NUMBER.findall(_THOUSANDS.sub("", gold)))))

    def lists(region: str, joiner: re.Pattern[str]) -> bool:
        region = _THOUSANDS.sub("", region)
        return bool(joiner.search(region)) and len(set(_NUMBER.findall(region))) > allowed

    final = line.rsplit("=", 1)[-1] if "=" in line else line
    return lists(final, _HEDGE) or lists(line, _OR)


def restates(region: str, question: str) -> bool:
    """The answer is an unevaluated expression over numbers all taken from the question."""
    if not question or not _OPERATOR.search(region):
        return False
    given = {n.lstrip("-") for n in _NUMBER.findall(_THOUSANDS.sub("", question))}
    return {n.lstrip("-") for n in _NUMBER.findall(region)} <= given


def score_answer(text: str, gold: str, *, question: str = "", ended: bool = True) -> float:
    """1.0 when ``text`` states an answer equivalent to ``gold`` (see the module docstring).

    >>> score_answer("2 + 2 is 4.\\nAnswer: 4", "4")
    1.0
    >>> score_answer("Answer: 2 + 2", "4", question="What is 2 + 2?")
    0.0
    """
    from math_verify import parse, verify

    line = answer_line(text, ended=ended)
    region = final_answer(text, ended=ended)
    if not region or hedges(line, gold) or restates(region, question):
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
