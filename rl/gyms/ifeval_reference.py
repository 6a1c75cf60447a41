"""Google's IFEval checkers as the reference for ours, and where we differ on purpose.

The reference is the ``if-verifiable`` package (Google's checker code, a dev dependency);
its sentence counter needs NLTK's Punkt model, built offline by
:mod:`rl.gyms.punkt_offline`. :func:`reference_check` runs the reference checker for one
of our constraints; :data:`DEVIATIONS` lists, per family, each rule where IFEval is wrong
and ours is kept, as a named test on the response that says whether the rule is at play.
A disagreement is "explained" only when one of its family's rules applies; every rule is
described in ``docs/rl.md``.

Not here: generating the responses (:mod:`rl.gyms.ifeval_cases`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rl.gyms.constraints import ANSWER_OPTIONS, _Constraint, detected_language
from rl.gyms.text_units import words

REFERENCE_IDS = {
    "word_count": "length_constraints:number_words",
    "sentence_count": "length_constraints:number_sentences",
    "paragraph_count": "length_constraints:number_paragraphs",
    "keywords_include": "keywords:existence",
    "keywords_exclude": "keywords:forbidden_words",
    "keyword_frequency": "keywords:frequency",
    "letter_frequency": "keywords:letter_frequency",
    "json_format": "detectable_format:json_format",
    "bullet_count": "detectable_format:number_bullet_lists",
    "sections": "detectable_format:multiple_sections",
    "title": "detectable_format:title",
    "uppercase": "change_case:english_capital",
    "lowercase": "change_case:english_lowercase",
    "capital_word_frequency": "change_case:capital_word_frequency",
    "quotation": "startend:quotation",
    "end_phrase": "startend:end_checker",
    "no_commas": "punctuation:no_comma",
    "placeholders": "detectable_content:number_placeholders",
    "language": "language:response_language",
    "repeat_prompt": "combination:repeat_prompt",
    "two_responses": "combination:two_responses",
    "postscript": "detectable_content:postscript",
    "highlighted_sections": "detectable_format:number_highlighted_sections",
    "nth_paragraph_first_word": "length_constraints:nth_paragraph_first_word",
    "constrained_response": "detectable_format:constrained_response",
}
"""Our family -> IFEval's instruction id, for every family both implement."""


def _relation(c: Any) -> tuple[str, int]:
    """IFEval says "less than n + 1" where we say "at most n"."""
    return ("at least", c.n) if c.relation == "at least" else ("less than", c.n + 1)


def reference_kwargs(c: Any) -> dict[str, Any]:
    """The reference checker's ``build_description`` arguments for our constraint ``c``."""
    match c.kind:
        case "word_count" | "sentence_count" | "capital_word_frequency":
            relation, n = _relation(c)
            key = {"word_count": "num_words", "sentence_count": "num_sentences"}
            if c.kind == "capital_word_frequency":
                return {"capital_relation": relation, "capital_frequency": n}
            return {"relation": relation, key[c.kind]: n}
        case "keyword_frequency":
            relation, n = _relation(c)
            return {"keyword": c.keyword, "relation": relation, "frequency": n}
        case "letter_frequency":
            relation, n = _relation(c)
            return {"letter": c.letter, "let_relation": relation, "let_frequency": n}
        case "paragraph_count":
            return {"num_paragraphs": c.n}
        case "keywords_include":
            return {"keywords": list(c.keywords)}
        case "keywords_exclude":
            return {"forbidden_words": list(c.keywords)}
        case "bullet_count":
            return {"num_bullets": c.n}
        case "sections":
            return {"section_spliter": c.splitter, "num_sections": c.n}
        case "end_phrase":
            return {"end_phrase": c.phrase}
        case "placeholders":
            return {"num_placeholders": c.n}
        case "language":
            return {"language": c.code}
        case "repeat_prompt":
            return {"prompt_to_repeat": c.prompt}
        case "postscript":
            return {"postscript_marker": c.marker}
        case "highlighted_sections":
            return {"num_highlights": c.n}
        case "nth_paragraph_first_word":
            return {"num_paragraphs": c.n, "nth_paragraph": c.nth, "first_word": c.first_word}
    return {}


def reference_check(c: _Constraint, text: str) -> bool:
    """IFEval's verdict on ``text`` for our constraint ``c`` (its checker, called directly)."""
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    from rl.gyms.punkt_offline import install

    install()
    logging.disable(logging.ERROR)  # it logs every undetectable language as an error
    try:
        return _run_reference(c, text, INSTRUCTION_DICT)
    finally:
        logging.disable(logging.NOTSET)


def _run_reference(c: _Constraint, text: str, registry: dict[str, Any]) -> bool:
    from langdetect import DetectorFactory

    kind = str(getattr(c, "kind", ""))
    checker = registry[REFERENCE_IDS[kind]](REFERENCE_IDS[kind])
    checker.build_description(**reference_kwargs(c))
    DetectorFactory.seed = 0  # the reference leaves langdetect random; fix it for both
    return bool(checker.check_following(text))


@dataclass(frozen=True)
class Deviation:
    """A rule where IFEval's checker is wrong and ours is kept."""

    name: str
    why: str
    applies: Callable[[Any, str], bool]
    """Whether ``text`` has the feature the rule is about, for constraint ``c``."""


def _regex_keyword_differs(keywords: list[str], text: str, bounded: bool) -> bool:
    for k in keywords:
        pattern = rf"\b{k}\b" if bounded else k
        literal = re.findall(rf"(?<!\w){re.escape(k)}(?!\w)", text, re.IGNORECASE)
        if len(re.findall(pattern, text, re.IGNORECASE)) != len(literal):
            return True
    return False


def _undetectable(c: Any, text: str) -> bool:
    from langdetect import LangDetectException, detect

    try:
        detect(text)
    except LangDetectException:
        return True
    return False


def _caps_misread(c: Any, text: str) -> bool:
    from langdetect import detect

    return (
        text.isupper() and not _undetectable(c, text) and detect(text) != (detected_language(text))
    )


def _split_marks(splitter: str, text: str) -> tuple[int, int]:
    anywhere = len(re.findall(rf"{splitter}\s?\d", text))
    at_start = rf"^[ \t]*(?:#{{1,6}}[ \t]*)?(?:\*\*|__)?{splitter}[ \t]*\d+"
    return anywhere, len(re.findall(at_start, text, re.MULTILINE))


SUBSTRING = Deviation(
    "keyword_whole_word",
    "a keyword is matched literally as a whole word; IFEval matches it as a regular "
    "expression, inside longer words too ('water' in 'waterfall', 'c++' as a pattern)",
    lambda c, t: _regex_keyword_differs(
        getattr(c, "keywords", [getattr(c, "keyword", "")]), t, False
    ),
)
UNDETECTABLE = Deviation(
    "undetectable_fails",
    "text whose language cannot be detected fails; IFEval counts the exception as a pass",
    _undetectable,
)
CAPS_LANGUAGE = Deviation(
    "all_caps_lowered",
    "all-caps text is lowered before language detection; IFEval detects on the capitals, "
    "which langdetect often misreads",
    _caps_misread,
)
DEVIATIONS: dict[str, list[Deviation]] = {
    "keywords_include": [SUBSTRING],
    "keyword_frequency": [SUBSTRING],
    "keywords_exclude": [
        Deviation(
            "keyword_literal",
            "a forbidden word is matched literally; IFEval puts it into a regular "
            "expression unescaped ('u.s' matches 'u-s', 'c++' matches 'c')",
            lambda c, t: _regex_keyword_differs(c.keywords, t, True),
        )
    ],
    "word_count": [
        Deviation(
            "contraction_one_word",
            '"don\'t" and "well-known" are one word each; IFEval counts two',
            lambda c, t: len(words(t)) != len(re.findall(r"\w+", t)),
        )
    ],
    "json_format": [
        Deviation(
            "fence_tag_any_case",
            "a ```json fence is accepted in any case; IFEval knows only json, Json and JSON",
            lambda c, t: bool(re.match(r"```(?!json|Json|JSON)(?i:json)", t.strip())),
        )
    ],
    "bullet_count": [
        Deviation(
            "emphasis_is_no_bullet",
            "a line starting *emphasis*, ---, or -5 is not a bullet; IFEval counts it",
            lambda c, t: bool(re.search(r"^\s*(?:\*[^\s*]|-(?![ \t]+\S))", t, re.MULTILINE)),
        )
    ],
    "sections": [
        Deviation(
            "sections_exact",
            "more sections than asked fail; IFEval accepts at least as many",
            lambda c, t: _split_marks(c.splitter, t)[1] > c.n,
        ),
        Deviation(
            "section_mark_starts_line",
            "a section mark starts a line; IFEval counts a mention mid-line too",
            lambda c, t: _split_marks(c.splitter, t)[0] != _split_marks(c.splitter, t)[1],
        ),
    ],
    "paragraph_count": [
        Deviation(
            "divider_own_line",
            "the *** divider stands on its own line; IFEval also splits on ***bold italic*** "
            "inside a paragraph",
            lambda c, t: any("***" in line and line.strip() != "***" for line in t.splitlines()),
        )
    ],
    "uppercase": [CAPS_LANGUAGE, UNDETECTABLE],
    "capital_word_frequency": [
        Deviation(
            "contraction_one_word",
            "\"DON'T\" is one capital word; IFEval's tokenizer makes two (DO, N'T)",
            lambda c, t: bool(re.search(r"[A-Z]['’][A-Z]", t)),
        )
    ],
    "lowercase": [UNDETECTABLE],
    "language": [
        CAPS_LANGUAGE,
        UNDETECTABLE,
        Deviation(
            "too_short_for_language",
            "fewer than three words fail; IFEval guesses a language from them",
            lambda c, t: len(words(t)) < 3,
        ),
    ],
    "placeholders": [
        Deviation(
            "empty_brackets",
            "[] is no placeholder; IFEval counts it",
            lambda c, t: "[]" in t,
        )
    ],
    "postscript": [
        Deviation(
            "postscript_starts_line",
            "the postscript marker starts a line; IFEval accepts it anywhere, mid-sentence too",
            lambda c, t: bool(re.search(r"\S[ \t]*p\.\s?(?:p\.\s?)?s", t, re.IGNORECASE)),
        )
    ],
    "highlighted_sections": [
        Deviation(
            "highlight_is_emphasis",
            "a highlight is markdown emphasis, no space inside the asterisks; IFEval counts "
            "'2 * 3 * 4' and '* a *'",
            lambda c, t: bool(re.search(r"\*(?:\s[^\n*]*|[^\n*]*\s)\*", t)),
        )
    ],
    "nth_paragraph_first_word": [
        Deviation(
            "blank_line_with_spaces",
            "a line of spaces separates paragraphs and blank paragraphs are dropped before "
            "counting to the nth; IFEval splits on '\\n\\n' only and indexes blank ones",
            lambda c, t: (
                bool(re.search(r"\n[ \t]+\n", t)) or any(not p.strip() for p in t.split("\n\n"))
            ),
        ),
        Deviation(
            "first_word_markdown",
            "markdown or quotes around the first word are ignored; IFEval compares '**word**'",
            lambda c, t: bool(re.search(r"(?:^|\n\n)\s*[#*_>`(\[]", t)),
        ),
    ],
    "constrained_response": [
        Deviation(
            "one_option_only",
            "naming two options is hedging, not an answer; IFEval accepts any one present",
            lambda c, t: sum(o in t for o in ANSWER_OPTIONS) > 1,
        )
    ],
}


def explained(c: _Constraint, text: str) -> list[str]:
    """The names of the documented deviations of ``c``'s family that apply to ``text``."""
    return [d.name for d in DEVIATIONS.get(str(getattr(c, "kind", "")), []) if d.applies(c, text)]
