"""Cheap, certain checks for degenerate model text: the garbage a small model writes.

A reward or a judge must never be earned by text that is empty, echoes its prompt, loops,
or impersonates other turns of the conversation. Each check here is narrow on purpose:
a hit names a reason and is certain enough to decide without asking a model; a miss
leaves the decision to the verifier or the judge. :func:`degeneracy` runs them in order
and returns the first reason found, or ``None``.

Reasons (stable strings, shown in reports and tests):

- ``empty``: no word at all (empty, whitespace, punctuation only).
- ``prompt_echo``: the text is the prompt again, near enough.
- ``repetition``: a loop (a phrase repeated back to back) or text made of a few phrases.
- ``role_markers``: chat-template tokens or tool-result tags written into the text, i.e.
  the model playing the tool or the other side of the conversation.
- ``no_language``: hardly any letters (numbered lists of nothing, symbol soup); off by
  default, since a bare number is a fine answer to a math problem.

Not here: judging whether a well-formed answer is right (verifiers, the rubrics judge).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

REASONS = ("empty", "prompt_echo", "repetition", "role_markers", "no_language")

_WORD = re.compile(r"\w+", re.UNICODE)
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_ROLE_MARKERS = re.compile(
    r"<\|(?:im_start|im_end|eot_id|start_header_id|end_header_id|endoftext|assistant|user|"
    r"system|tool|end)\|>"
    r"|</?tool_(?:response|result|output)s?>"
    r"|\[/?INST\]"
    r"|<start_of_turn>|<end_of_turn>",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscores; any script)."""
    return [w.lower() for w in _WORD.findall(text)]


def is_empty(text: str) -> bool:
    """No word at all: empty, whitespace only, punctuation only."""
    return not _WORD.search(text or "")


def echoes(text: str, prompt: str, *, ratio: float = 0.9) -> bool:
    """The text is the prompt again (word-for-word similarity ``ratio`` or more).

    Short texts are never echoes: a one-word answer that also occurs in the prompt is an
    answer. A text that repeats the prompt and then answers it is not an echo either.
    """
    mine, theirs = words(text), words(prompt)
    if len(mine) < 5 or not theirs:
        return False
    if len(mine) > 1.25 * len(theirs):
        return False
    return difflib.SequenceMatcher(None, mine, theirs, autojunk=False).ratio() >= ratio


def loops(text: str) -> bool:
    """A phrase repeated back to back (``why? why? why? …``), or text made of few phrases.

    Back to back: the same run of 1..40 words at least five times in a row covering ten
    words or more, or at least three times covering thirty words or more (a whole
    sentence said three times). Few phrases: forty words or more of which fewer than a
    third of the word trigrams are distinct (natural prose sits above 0.8). Only runs and
    trigrams with a word of letters count: ``[0, 0, 0, …]`` or ``1 + 1 + …`` is data.
    """
    tokens = words(text)
    lettered = [any(c.isalpha() for c in t) for t in tokens]
    n = len(tokens)
    if n >= 40:
        trigrams = [tuple(tokens[i : i + 3]) for i in range(n - 2) if any(lettered[i : i + 3])]
        if len(trigrams) >= 38 and len(set(trigrams)) < len(trigrams) / 3:
            return True
    for period in range(1, min(40, n // 3) + 1):
        run = 0
        for i in range(n - period):
            run = run + 1 if tokens[i] == tokens[i + period] else 0
            span = run + period
            repeats = span / period
            looping = (repeats >= 5 and span >= 10) or (repeats >= 3 and span >= 30)
            if looping and any(lettered[i + 1 - run : i + 1 + period]):
                return True
    return False


def role_markers(text: str) -> bool:
    """Chat-template tokens or tool-result tags in the text: the model is writing other turns."""
    return bool(_ROLE_MARKERS.search(text or ""))


def no_language(text: str, *, min_letters: float = 0.3) -> bool:
    """Fewer than ``min_letters`` of the visible characters are letters, or no word has two."""
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return True
    letters = len(_LETTER.findall(text))
    has_word = any(sum(1 for c in w if c.isalpha()) >= 2 for w in _WORD.findall(text))
    return letters < min_letters * len(visible) or not has_word


def degeneracy(
    text: str,
    *,
    prompt: str | None = None,
    checks: Iterable[str] = ("empty", "prompt_echo", "repetition", "role_markers"),
) -> str | None:
    """The first reason in ``checks`` (see :data:`REASONS`) that ``text`` meets, or ``None``."""
    wanted = set(checks)
    unknown = wanted - set(REASONS)
    if unknown:
        raise ValueError(f"unknown degeneracy checks {sorted(unknown)}; known: {list(REASONS)}")
    text = text or ""
    if "empty" in wanted and is_empty(text):
        return "empty"
    if "prompt_echo" in wanted and prompt and echoes(text, prompt):
        return "prompt_echo"
    if "repetition" in wanted and loops(text):
        return "repetition"
    if "role_markers" in wanted and role_markers(text):
        return "role_markers"
    if "no_language" in wanted and no_language(text):
        return "no_language"
    return None
