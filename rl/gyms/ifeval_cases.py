"""Generated responses for every constraint family: compliant, non-compliant and edge cases.

The fidelity benchmark and tests run our checkers and IFEval's on these. A response is
built from a bank of English sentences, some with abbreviations, quotes, ellipses and
decimals, then shaped per family: the right or a wrong count, markdown headings, fenced
JSON with any case of the tag, keywords with non-word characters or inside longer words,
whitespace around end phrases and paragraph separators, all-caps text, and so on.

Not here: model-written responses; these are templates, reproducible from a seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from rl.gyms import constraints as cs
from rl.gyms.constraints import ANSWER_OPTIONS

SENTENCES = [
    "The city grew quickly after the river was bridged.",
    "Dr. Smith studied the water of that river for years.",
    'She said "Stop." Then she walked away.',
    "Prices rose by 3.5 percent in one year.",
    "Music filled the old hall every night.",
    "Mr. Brown asked whether the light would last.",
    "Is this really the end of history?",
    "Some people prefer quiet places, e.g. libraries and parks.",
    "Wait... the train has not left yet.",
    "Nature teaches patience to those who listen.",
    "We met J. Lee at the station at noon.",
    "The future belongs to the curious!",
    "A well-known writer once lived on this street.",
    "It's not the time to give up.",
    "They visited the U.S. last spring.",
    "Everyone agreed (at least for now).",
    "The meeting starts at 9 a.m. and ends early.",
    "Time moves slowly in small towns.",
]
WORDS = ["time", "world", "people", "history", "water", "light", "music", "city", "nature"]
ODD_KEYWORDS = ["c++", "e-mail", "node.js", "u.s", "it's", "well-known"]
OPENERS = ["first", "today", "however", "finally", "imagine", "consider"]
FRENCH = "Le soleil brille sur la ville et les enfants jouent dans le parc avec leurs amis."
SPANISH = "El sol brilla sobre la ciudad y los niños juegan en el parque con sus amigos."
GERMAN = "Die Sonne scheint über der Stadt und die Kinder spielen mit ihren Freunden im Park."


@dataclass(frozen=True)
class Case:
    constraint: Any
    text: str


def prose(rng: random.Random, n: int) -> str:
    """``n`` sentences from the bank, joined by a space."""
    return " ".join(rng.choice(SENTENCES) for _ in range(n))


def _paragraphs(rng: random.Random, n: int) -> list[str]:
    return [prose(rng, rng.randint(1, 3)) for _ in range(n)]


def _relation(rng: random.Random) -> cs.Relation:
    return rng.choice(["at least", "at most"])


def _counts(family: str, rng: random.Random) -> Case:
    text = prose(rng, rng.randint(0, 7))
    if rng.random() < 0.3:
        text = rng.choice(["# Heading\n", "Title\n", "* a point\n"]) + text
    if family == "capital_word_frequency":
        caps = " ".join(
            rng.choice(["NOW", "VERY", "NASA", "I", "DON'T", "WELL-KNOWN"])
            for _ in range(rng.randint(0, 8))
        )
        text = f"{text} {caps} {prose(rng, 1)}"
        return Case(cs.CapitalWordFrequency(relation=_relation(rng), n=rng.randint(1, 8)), text)
    if family == "word_count":
        return Case(cs.WordCount(relation=_relation(rng), n=rng.randint(1, 80)), text)
    return Case(cs.SentenceCount(relation=_relation(rng), n=rng.randint(1, 7)), text)


def _paragraph_count(rng: random.Random) -> Case:
    parts = _paragraphs(rng, rng.randint(1, 5))
    sep = rng.choice(["\n***\n", "\n\n***\n\n", " *** ", "\n *** \n", "\n\n"])
    text = sep.join(parts)
    edit = rng.random()
    if edit < 0.15:
        text = "***\n" + text + "\n***"
    elif edit < 0.25:
        text = text.replace(sep, sep + "\n***\n", 1)
    elif edit < 0.35:
        text = "A ***bold*** claim. " + text
    return Case(cs.ParagraphCount(n=rng.randint(1, 5)), text)


def _keywords(family: str, rng: random.Random) -> Case:
    pool = WORDS + ODD_KEYWORDS
    keywords = rng.sample(pool, rng.randint(1, 2))
    text = prose(rng, rng.randint(1, 5))
    for k in keywords:
        roll = rng.random()
        if roll < 0.4:
            text += f" {k.capitalize()} matters{rng.choice(['.', ',', '!'])}"
        elif roll < 0.55:
            text += f" The {k}fall and sub{k} differ."
    if family == "keywords_include":
        return Case(cs.KeywordsInclude(keywords=keywords), text)
    if family == "keywords_exclude":
        return Case(cs.KeywordsExclude(keywords=keywords), text)
    n = rng.randint(1, 4)
    return Case(cs.KeywordFrequency(keyword=keywords[0], relation=_relation(rng), n=n), text)


def _letters(rng: random.Random) -> Case:
    text = prose(rng, rng.randint(0, 3))
    letter = rng.choice("aeiostAE")
    return Case(
        cs.LetterFrequency(letter=letter, relation=_relation(rng), n=rng.randint(1, 30)), text
    )


def _json(rng: random.Random) -> Case:
    body = json.dumps(
        {"answer": prose(rng, 1), "n": rng.randint(0, 9)}, indent=rng.choice([None, 2])
    )
    roll = rng.random()
    if roll < 0.4:
        tag = rng.choice(["json", "JSON", "Json", "jSoN", "JSon", ""])
        body = f"```{tag}\n{body}\n```"
    elif roll < 0.55:
        body = body[:-1]  # broken
    elif roll < 0.7:
        body = "Here is the JSON: " + body
    return Case(cs.JsonFormat(), rng.choice(["", "\n", "  "]) + body + rng.choice(["", "\n"]))


def _bullets(rng: random.Random) -> Case:
    marks = ["* ", "- ", "*   ", "  - ", "*Note:* ", "---", "-5 degrees ", "1. "]
    lines = [
        rng.choice(marks[:4] if rng.random() < 0.85 else marks) + prose(rng, 1)
        for _ in range(rng.randint(0, 6))
    ]
    text = prose(rng, 1) + "\n" + "\n".join(lines)
    return Case(cs.BulletCount(n=rng.randint(1, 6)), text)


def _sections(rng: random.Random) -> Case:
    splitter = rng.choice(["SECTION", "Section"])
    heads = ["{s} {i}", "## {s} {i}", "**{s} {i}**", "{s} {i}:", "{s}  {i}"]
    count = rng.randint(1, 4)
    head = rng.choice(heads) if rng.random() < 0.8 else rng.choice([*heads, "{s}{i}"])
    text = "\n".join(head.format(s=splitter, i=i + 1) + "\n" + prose(rng, 2) for i in range(count))
    if rng.random() < 0.15:
        text += f" As noted in {splitter} 1, this holds."
    return Case(cs.Sections(n=rng.randint(1, 4), splitter=splitter), text)


def _title(rng: random.Random) -> Case:
    title = rng.choice(
        ["<<A Quiet City>>", "<< >>", "<<>>", "< <not one> >", "<<history\nof light>>", ""]
    )
    return Case(cs.Title(), f"{title}\n{prose(rng, 2)}")


def _case_text(rng: random.Random) -> str:
    text = rng.choice(
        [prose(rng, rng.randint(1, 4)), FRENCH, GERMAN, "12345 678", "OK", "Hello there", "..."]
    )
    return rng.choice([text.upper(), text.lower(), text])


def _case(family: str, rng: random.Random) -> Case:
    return Case(cs.Uppercase() if family == "uppercase" else cs.Lowercase(), _case_text(rng))


def _quotation(rng: random.Random) -> Case:
    text = prose(rng, 2)
    wrap = rng.choice(['"{}"', ' "{}"\n', '"{}', "{}", "'{}'", '"{}."'])
    return Case(cs.Quotation(), wrap.format(text))


def _end_phrase(rng: random.Random) -> Case:
    phrase = rng.choice(
        ["Any other questions?", "Is there anything else I can help with?", "That is all."]
    )
    ending = rng.choice([phrase, phrase.lower(), phrase + " Thanks.", phrase[:-1], f'"{phrase}"'])
    text = prose(rng, 2) + rng.choice([" ", "\n\n"]) + ending + rng.choice(["", " ", "\n", "  \n"])
    return Case(cs.EndPhrase(phrase=rng.choice([phrase, f"  {phrase} "])), text)


def _commas(rng: random.Random) -> Case:
    text = prose(rng, rng.randint(1, 3))
    return Case(cs.NoCommas(), rng.choice([text, text.replace(",", ""), text + " One, two."]))


def _placeholders(rng: random.Random) -> Case:
    slots = [
        rng.choice(
            ["[name]", "[address]", "[]", "[date of birth]", "[[city]]", "[link](http://x.io)"]
        )
        for _ in range(rng.randint(0, 4))
    ]
    text = prose(rng, 1) + " " + " and ".join(slots)
    return Case(cs.Placeholders(n=rng.randint(1, 4)), text)


def _language(rng: random.Random) -> Case:
    text = rng.choice([FRENCH, SPANISH, GERMAN, prose(rng, 2), "Bonjour", "Merci beaucoup", "1234"])
    text = text.upper() if rng.random() < 0.2 else text
    return Case(cs.Language(code=rng.choice(["fr", "es", "de", "en"])), text)


def _repeat(rng: random.Random) -> Case:
    request = prose(rng, 2)
    start = rng.choice([request, request.upper(), "Sure! " + request, request[:-1], "  " + request])
    return Case(cs.RepeatPrompt(prompt=request), start + "\n\n" + prose(rng, 2))


def _two_responses(rng: random.Random) -> Case:
    a, b = prose(rng, 2), prose(rng, 2)
    text = rng.choice(
        [
            f"{a}\n******\n{b}",
            f"{a}******{a}",
            f"******\n{a}\n******\n{b}\n******",
            f"{a}\n******\n******\n{b}",
            a,
            f"{a}\n******\n{b}\n******\n{a} more",
        ]
    )
    return Case(cs.TwoResponses(), text)


def _postscript(rng: random.Random) -> Case:
    marker = rng.choice(["P.S.", "P.P.S"])
    tail = rng.choice(
        [
            "P.S. Call me.",
            "p.s. call me.",
            "P. S. Call me.",
            "**P.S.** Call me.",
            "P.P.S. Also this.",
            "PS call me.",
            "",
        ]
    )
    text = prose(rng, 2) + rng.choice(["\n\n", " "]) + tail
    return Case(cs.Postscript(marker=marker), text)


def _highlights(rng: random.Random) -> Case:
    spans = [
        rng.choice(["*key idea*", "**bold part**", "* spaced *", "2 * 3 * 4", "**", "*a*b*"])
        for _ in range(rng.randint(0, 4))
    ]
    text = prose(rng, 1) + " " + " then ".join(spans) + " " + prose(rng, 1)
    return Case(cs.HighlightedSections(n=rng.randint(1, 4)), text)


def _first_word(rng: random.Random) -> Case:
    n = rng.randint(1, 4)
    word = rng.choice(OPENERS)
    parts = _paragraphs(rng, rng.randint(1, 4))
    nth = rng.randint(1, n)
    if nth <= len(parts) and rng.random() < 0.7:
        opener = rng.choice(
            [
                word.capitalize(),
                word,
                f'"{word.capitalize()}',
                f"**{word.capitalize()}**",
                f"{word.capitalize()},",
            ]
        )
        parts[nth - 1] = f"{opener} {parts[nth - 1]}"
    sep = rng.choice(["\n\n", "\n\n", "\n\n\n", "\n \n"])
    text = sep.join(parts)
    if rng.random() < 0.1:
        text = "\n\n" + text
    return Case(cs.ParagraphFirstWord(n=n, nth=nth, first_word=word), text)


def _constrained(rng: random.Random) -> Case:
    picks = rng.sample(ANSWER_OPTIONS, rng.choice([0, 1, 1, 1, 2]))
    text = " ".join(picks) + " " + prose(rng, 1)
    return Case(cs.ConstrainedResponse(), rng.choice([text, text.lower()]))


GENERATORS: dict[str, Callable[[random.Random], Case]] = {
    "word_count": partial(_counts, "word_count"),
    "sentence_count": partial(_counts, "sentence_count"),
    "capital_word_frequency": partial(_counts, "capital_word_frequency"),
    "paragraph_count": _paragraph_count,
    "keywords_include": partial(_keywords, "keywords_include"),
    "keywords_exclude": partial(_keywords, "keywords_exclude"),
    "keyword_frequency": partial(_keywords, "keyword_frequency"),
    "letter_frequency": _letters,
    "json_format": _json,
    "bullet_count": _bullets,
    "sections": _sections,
    "title": _title,
    "uppercase": partial(_case, "uppercase"),
    "lowercase": partial(_case, "lowercase"),
    "quotation": _quotation,
    "end_phrase": _end_phrase,
    "no_commas": _commas,
    "placeholders": _placeholders,
    "language": _language,
    "repeat_prompt": _repeat,
    "two_responses": _two_responses,
    "postscript": _postscript,
    "highlighted_sections": _highlights,
    "nth_paragraph_first_word": _first_word,
    "constrained_response": _constrained,
}


def generate(count: int, seed: int = 0) -> list[Case]:
    """``count`` cases spread evenly over the families, reproducible from ``seed``."""
    rng = random.Random(seed)
    names = sorted(GENERATORS)  # one generator per family
    cases = [GENERATORS[names[i % len(names)]](rng) for i in range(count)]
    return cases
