"""Words, sentences and paragraphs as the instruction constraints count them.

Sentence splitting is rule-based rather than a trained model, so that a checker's verdict
never depends on data downloaded at run time: a sentence ends at ``.``, ``!`` or ``?``
(after any closing quotes or brackets) followed by whitespace or the end, except after a
title or Latin abbreviation ("Dr. Smith", "e.g. apples"), an initial ("J. Smith"), or an
ellipsis or other abbreviation ("etc.") that a lowercase word follows. Line breaks alone
never end a sentence (a heading or a bullet without a stop runs on into the next line),
as in the Punkt model IFEval counts with.

Not here: tokenisation for languages without spaces between words.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\b[\w'-]+\b", re.UNICODE)
_STOP = re.compile(r"""(?P<stop>[.!?]+)["'”’)\]]*(?=\s|$)""")
_TOKEN_BEFORE = re.compile(r"""[("'“‘\[]*(?P<token>[\w.'-]*)$""")
_NEXT_WORD = re.compile(r"""\s*["'“‘(\[]*(?P<word>\S?)""")
TITLES = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "e.g", "i.e", "cf", "vs"})
"""Abbreviations that never end a sentence: a name or an example always follows."""
ABBREVIATIONS = frozenset({"etc", "inc", "ltd", "co", "corp", "approx", "u.s", "u.k"})
ABBREVIATIONS |= {"a.m", "p.m", "fig", "dept", "est", "jan", "feb", "aug", "sept", "oct"}
ABBREVIATIONS |= {"nov", "dec"}
"""Abbreviations that end a sentence only when a capitalised word follows."""
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_PUNCTUATION = "\"'“”‘’()[]{}<>.,;:!?*_#`~"


def words(text: str) -> list[str]:
    """Runs of letters, digits, apostrophes and hyphens: "don't" and "well-known" are one."""
    return _WORD.findall(text)


def _ends_sentence(text: str, stop: re.Match[str]) -> bool:
    if "!" in stop.group("stop") or "?" in stop.group("stop"):
        return True
    following = _NEXT_WORD.match(text, stop.end())
    next_word = following.group("word") if following else ""
    if not next_word:
        return True  # the end of the text
    capitalised = next_word.isupper()
    if len(stop.group("stop")) > 1:  # an ellipsis
        return capitalised
    before = _TOKEN_BEFORE.search(text, 0, stop.start())
    token = (before.group("token") if before else "").lower()
    if token in TITLES or (len(token) == 1 and token.isalpha() and token != "i"):
        return False  # "Dr. Smith", "e.g. apples", "J. Smith"
    if token in ABBREVIATIONS:
        return capitalised
    return True


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` that hold at least one word, stripped.

    >>> sentences('Dr. Smith said "Stop." Then he left, e.g. quickly... and sat.')
    ['Dr. Smith said "Stop."', 'Then he left, e.g. quickly... and sat.']
    """
    found, start = [], 0
    for stop in _STOP.finditer(text):
        if _ends_sentence(text, stop):
            found.append(text[start : stop.end()])
            start = stop.end()
    found.append(text[start:])
    return [s.strip() for s in found if words(s)]


def paragraphs(text: str) -> list[str]:
    """Blocks separated by a blank line (spaces on it allowed); blank blocks dropped."""
    return [p.strip() for p in PARAGRAPH_BREAK.split(text) if p.strip()]


def capital_words(text: str) -> int:
    """Words written in capitals: "I" and "A" too, "U.S." once, "NASA's" as NASA."""
    tokens = (t.strip(_PUNCTUATION) for t in text.split())
    return sum(re.sub(r"['’]s$", "", t).isupper() for t in tokens)
