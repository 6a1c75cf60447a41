"""Deterministic checks for prescriptive rules, run before (and overriding) the judge.

Each check looks at the opening or the whole of the final response text and says whether
the rule is broken. They are deliberately narrow: a miss leaves the decision to the LLM
judge, a hit is certain enough to score the criterion 0 without asking.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_PRAISE = re.compile(
    r"^\W*(what an?|that'?s an?|such an?|this is an?|great|excellent|good|fantastic|wonderful|"
    r"amazing|awesome|brilliant|superb|insightful|thoughtful|interesting)\b[^.!?\n]{0,40}?"
    r"\b(question|query|request|point|idea|ask|thinking|one|prompt)\b",
    re.IGNORECASE,
)
_PRAISE_USER = re.compile(
    r"^\W*(you('re| are) (so |very |absolutely )?(right|smart|clever|brilliant)|"
    r"i love (this|your|that)|thank you for (this|your|such) (great|excellent|thoughtful))",
    re.IGNORECASE,
)
_SELF = re.compile(
    r"\b(this|my|the above|the following) (response|answer|summary|explanation|solution)"
    r"( is| provides| offers| gives| captures)[^.\n]{0,30}?\b(comprehensive|thorough|accurate|"
    r"complete|clear|detailed|excellent|high[- ]quality|perfect|well[- ]structured)\b"
    r"|\bi (have|'ve) (provided|given|written) (a|an|this) (comprehensive|thorough|accurate|"
    r"complete|detailed|excellent|high[- ]quality|perfect)\b"
    r"|\bthis (comprehensive|thorough|accurate|complete|detailed|excellent|high[- ]quality|perfect)"
    r"( and \w+)? (response|answer|summary|explanation)\b",
    re.IGNORECASE,
)


def initial_praise(text: str) -> bool:
    """The response opens by praising the question or the user."""
    opening = text.strip()[:160]
    return bool(_PRAISE.search(opening) or _PRAISE_USER.search(opening))


def self_justification(text: str) -> bool:
    """The response argues for its own quality."""
    return bool(_SELF.search(text))


CHECKS: dict[str, Callable[[str], bool]] = {
    "initial_praise": initial_praise,
    "self_justification": self_justification,
}
