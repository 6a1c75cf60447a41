"""Drawing compatible constraints for a prompt: which families clash, and their parameters.

Two families clash when no response could satisfy both (all capitals and all lowercase) or
when one would make the other unfair to check (JSON output and bullet points). Not here:
the checks themselves (:mod:`rl.gyms.constraints`).
"""

from __future__ import annotations

import random

from rl.gyms.constraints import (
    FAMILIES,
    BulletCount,
    CapitalWordFrequency,
    ConstrainedResponse,
    EndPhrase,
    HighlightedSections,
    JsonFormat,
    KeywordFrequency,
    KeywordsExclude,
    KeywordsInclude,
    Language,
    LetterFrequency,
    Lowercase,
    NoCommas,
    ParagraphCount,
    ParagraphFirstWord,
    Placeholders,
    Postscript,
    Quotation,
    Relation,
    RepeatPrompt,
    Sections,
    SentenceCount,
    Title,
    TwoResponses,
    Uppercase,
    WordCount,
    _Constraint,
)

# Groups of families of which a prompt gets at most one.
EXCLUSIVE = [
    {"json_format", "quotation", "paragraph_count", "sections", "bullet_count"},
    {"uppercase", "lowercase", "language", "capital_word_frequency", "constrained_response"},
    {"json_format", "end_phrase", "quotation", "title", "postscript"},
    {"language", "keywords_include", "keyword_frequency", "end_phrase"},
    {"repeat_prompt", "json_format", "quotation", "language", "nth_paragraph_first_word"},
    {"two_responses", "json_format", "quotation", "paragraph_count", "sections"},
    {"two_responses", "nth_paragraph_first_word", "bullet_count", "constrained_response"},
    {"nth_paragraph_first_word", "paragraph_count", "sections", "title", "json_format"},
    {"highlighted_sections", "json_format", "constrained_response"},
]
_VOCABULARY = ["time", "world", "people", "history", "water", "light", "music"]
_VOCABULARY += ["future", "city", "nature"]
_ENDINGS = ["Is there anything else I can help with?", "Any other questions?", "That is all."]
_FIRST_WORDS = ["first", "today", "however", "finally", "imagine", "consider"]


def _draw(family: str, rng: random.Random, request: str) -> _Constraint:
    relation: Relation = rng.choice(["at least", "at most"])
    match family:
        case "word_count":
            return WordCount(relation=relation, n=rng.choice([20, 40, 80, 150]))
        case "sentence_count":
            return SentenceCount(relation=relation, n=rng.randint(2, 6))
        case "paragraph_count":
            return ParagraphCount(n=rng.randint(2, 4))
        case "keywords_include":
            return KeywordsInclude(keywords=rng.sample(_VOCABULARY, 2))
        case "keywords_exclude":
            return KeywordsExclude(keywords=rng.sample(_VOCABULARY, 2))
        case "keyword_frequency":
            return KeywordFrequency(keyword=rng.choice(_VOCABULARY), relation=relation, n=2)
        case "letter_frequency":
            return LetterFrequency(
                letter=rng.choice("aeiost"), relation=relation, n=rng.randint(3, 12)
            )
        case "bullet_count":
            return BulletCount(n=rng.randint(2, 5))
        case "sections":
            return Sections(n=rng.randint(2, 3), splitter=rng.choice(["SECTION", "Section"]))
        case "capital_word_frequency":
            return CapitalWordFrequency(relation=relation, n=rng.randint(2, 10))
        case "end_phrase":
            return EndPhrase(phrase=rng.choice(_ENDINGS))
        case "placeholders":
            return Placeholders(n=rng.randint(1, 3))
        case "language":
            return Language(code=rng.choice(["fr", "de", "es"]))
        case "repeat_prompt":
            return RepeatPrompt(prompt=request)
        case "postscript":
            return Postscript(marker=rng.choice(["P.S.", "P.P.S"]))
        case "highlighted_sections":
            return HighlightedSections(n=rng.randint(1, 4))
        case "nth_paragraph_first_word":
            n = rng.randint(2, 4)
            return ParagraphFirstWord(
                n=n, nth=rng.randint(1, n), first_word=rng.choice(_FIRST_WORDS)
            )
    return _PLAIN[family]()


_PLAIN: dict[str, type[_Constraint]] = {
    "json_format": JsonFormat,
    "title": Title,
    "uppercase": Uppercase,
    "lowercase": Lowercase,
    "quotation": Quotation,
    "no_commas": NoCommas,
    "two_responses": TwoResponses,
    "constrained_response": ConstrainedResponse,
}


def sample_constraints(
    rng: random.Random,
    count: int,
    families: list[str] | None = None,
    request: str | None = None,
) -> list[_Constraint]:
    """``count`` compatible constraints from ``families`` (all by default), no family twice.

    ``request`` is the text the constraints are appended to; without it the
    ``repeat_prompt`` family (which asks to repeat that text) is never drawn.
    """
    pool = [f for f in (families or FAMILIES) if request is not None or f != "repeat_prompt"]
    rng.shuffle(pool)
    chosen: list[str] = []
    for family in pool:
        if len(chosen) == count:
            break
        if any(family in group and group & set(chosen) for group in EXCLUSIVE):
            continue
        chosen.append(family)
    return [_draw(family, rng, request or "") for family in chosen]
