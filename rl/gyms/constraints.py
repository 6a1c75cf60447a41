"""Verifiable instruction constraints of the IFEval families, each a pydantic model.

Every constraint says what it asks (``instruction``) and checks a response (``check``);
:func:`sample_constraints` composes several compatible ones for a prompt. Families:
length in words / sentences / paragraphs, keywords included / excluded / at a frequency,
letter frequency, JSON output, bullet count, sections, title, upper / lower case,
quotation, end phrase, no commas, placeholders, response language (``langdetect``).

Not here: the IFEval prompts themselves, or constraints that need a model to check.
"""

from __future__ import annotations

import json
import random
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Relation = Literal["at least", "at most"]
_WORD = re.compile(r"\b[\w'-]+\b", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_BULLET = re.compile(r"^\s*[*-]\s+\S", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\[[^\[\]\n]+\]")
_TITLE = re.compile(r"<<[^<>\n]+>>")


def _compare(value: int, relation: Relation, target: int) -> bool:
    return value >= target if relation == "at least" else value <= target


def words(text: str) -> list[str]:
    return _WORD.findall(text)


class _Constraint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def instruction(self) -> str:
        raise NotImplementedError

    def check(self, text: str) -> bool:
        raise NotImplementedError


class WordCount(_Constraint):
    kind: Literal["word_count"] = "word_count"
    relation: Relation
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return f"Answer with {self.relation} {self.n} words."

    def check(self, text: str) -> bool:
        return _compare(len(words(text)), self.relation, self.n)


class SentenceCount(_Constraint):
    kind: Literal["sentence_count"] = "sentence_count"
    relation: Relation
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return f"Your response should contain {self.relation} {self.n} sentences."

    def check(self, text: str) -> bool:
        sentences = [s for s in _SENTENCE_END.split(text.strip()) if words(s)]
        return _compare(len(sentences), self.relation, self.n)


class ParagraphCount(_Constraint):
    kind: Literal["paragraph_count"] = "paragraph_count"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return (
            f"There should be exactly {self.n} paragraphs, separated from each other by the "
            "markdown divider ***."
        )

    def check(self, text: str) -> bool:
        parts = re.split(r"\s?\*\*\*\s?", text.strip())
        return len(parts) == self.n and all(p.strip() for p in parts)


class KeywordsInclude(_Constraint):
    kind: Literal["keywords_include"] = "keywords_include"
    keywords: list[str] = Field(min_length=1)

    def instruction(self) -> str:
        return "Include the keywords " + ", ".join(f"'{k}'" for k in self.keywords) + "."

    def check(self, text: str) -> bool:
        return all(re.search(rf"\b{re.escape(k)}\b", text, re.IGNORECASE) for k in self.keywords)


class KeywordsExclude(_Constraint):
    kind: Literal["keywords_exclude"] = "keywords_exclude"
    keywords: list[str] = Field(min_length=1)

    def instruction(self) -> str:
        return "Do not include the words " + ", ".join(f"'{k}'" for k in self.keywords) + "."

    def check(self, text: str) -> bool:
        return not any(
            re.search(rf"\b{re.escape(k)}\b", text, re.IGNORECASE) for k in self.keywords
        )


class KeywordFrequency(_Constraint):
    kind: Literal["keyword_frequency"] = "keyword_frequency"
    keyword: str
    relation: Relation
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return f"The word '{self.keyword}' should appear {self.relation} {self.n} times."

    def check(self, text: str) -> bool:
        found = re.findall(rf"\b{re.escape(self.keyword)}\b", text, re.IGNORECASE)
        return _compare(len(found), self.relation, self.n)


class LetterFrequency(_Constraint):
    kind: Literal["letter_frequency"] = "letter_frequency"
    letter: str = Field(min_length=1, max_length=1)
    relation: Relation
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return f"The letter '{self.letter}' should appear {self.relation} {self.n} times."

    def check(self, text: str) -> bool:
        return _compare(text.lower().count(self.letter.lower()), self.relation, self.n)


class JsonFormat(_Constraint):
    kind: Literal["json_format"] = "json_format"

    def instruction(self) -> str:
        return "Wrap your entire output in JSON format (a markdown ```json fence is allowed)."

    def check(self, text: str) -> bool:
        body = text.strip()
        fence = re.fullmatch(r"```(?:json|JSON)?\s*\n?(.*?)\n?```", body, re.DOTALL)
        body = fence.group(1).strip() if fence else body
        if not body:
            return False
        try:
            json.loads(body)
        except json.JSONDecodeError:
            return False
        return True


class BulletCount(_Constraint):
    kind: Literal["bullet_count"] = "bullet_count"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return (
            f"Your answer must contain exactly {self.n} bullet points, using markdown "
            "bullets such as:\n* This is a point."
        )

    def check(self, text: str) -> bool:
        return len(_BULLET.findall(text)) == self.n


class Sections(_Constraint):
    kind: Literal["sections"] = "sections"
    n: int = Field(ge=1)
    splitter: str = "SECTION"

    def instruction(self) -> str:
        return (
            f"Your response must have {self.n} sections. Mark the beginning of each section "
            f"with {self.splitter} X, such as: {self.splitter} 1."
        )

    def check(self, text: str) -> bool:
        marks = re.findall(rf"^\s*{re.escape(self.splitter)}\s+\d+", text, re.MULTILINE)
        return len(marks) == self.n


class Title(_Constraint):
    kind: Literal["title"] = "title"

    def instruction(self) -> str:
        return (
            "Your answer must contain a title, wrapped in double angular brackets, "
            "such as <<poem of joy>>."
        )

    def check(self, text: str) -> bool:
        return bool(_TITLE.search(text))


class Uppercase(_Constraint):
    kind: Literal["uppercase"] = "uppercase"

    def instruction(self) -> str:
        return "Your entire response should be in English, and in all capital letters."

    def check(self, text: str) -> bool:
        return any(c.isalpha() for c in text) and text == text.upper()


class Lowercase(_Constraint):
    kind: Literal["lowercase"] = "lowercase"

    def instruction(self) -> str:
        return "Your entire response should be in English, and in all lowercase letters."

    def check(self, text: str) -> bool:
        return any(c.isalpha() for c in text) and text == text.lower()


class Quotation(_Constraint):
    kind: Literal["quotation"] = "quotation"

    def instruction(self) -> str:
        return "Wrap your entire response with double quotation marks."

    def check(self, text: str) -> bool:
        body = text.strip()
        return len(body) > 1 and body[0] == '"' and body[-1] == '"'


class EndPhrase(_Constraint):
    kind: Literal["end_phrase"] = "end_phrase"
    phrase: str = Field(min_length=1)

    def instruction(self) -> str:
        return (
            f"Finish your response with this exact phrase: {self.phrase} "
            "No other words should follow it."
        )

    def check(self, text: str) -> bool:
        return text.strip().endswith(self.phrase)


class NoCommas(_Constraint):
    kind: Literal["no_commas"] = "no_commas"

    def instruction(self) -> str:
        return "In your entire response, refrain from the use of any commas."

    def check(self, text: str) -> bool:
        return "," not in text and bool(text.strip())


class Placeholders(_Constraint):
    kind: Literal["placeholders"] = "placeholders"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return (
            f"The response must contain at least {self.n} placeholders represented by square "
            "brackets, such as [address]."
        )

    def check(self, text: str) -> bool:
        return len(_PLACEHOLDER.findall(text)) >= self.n


class Language(_Constraint):
    kind: Literal["language"] = "language"
    code: str = Field(min_length=2, max_length=5)
    """ISO 639-1 code as ``langdetect`` reports it (``en``, ``fr``, ``de``, ...)."""

    def instruction(self) -> str:
        name = LANGUAGES.get(self.code, self.code)
        return f"Your ENTIRE response should be in {name}, no other language is allowed."

    def check(self, text: str) -> bool:
        from langdetect import DetectorFactory, LangDetectException, detect

        DetectorFactory.seed = 0  # langdetect is randomised; make it deterministic
        if len(words(text)) < 3:
            return False
        try:
            return bool(detect(text) == self.code)
        except LangDetectException:
            return False


_KINDS = (
    WordCount,
    SentenceCount,
    ParagraphCount,
    KeywordsInclude,
    KeywordsExclude,
    KeywordFrequency,
    LetterFrequency,
    JsonFormat,
    BulletCount,
    Sections,
    Title,
    Uppercase,
    Lowercase,
    Quotation,
    EndPhrase,
    NoCommas,
    Placeholders,
    Language,
)
Constraint = Annotated[
    WordCount
    | SentenceCount
    | ParagraphCount
    | KeywordsInclude
    | KeywordsExclude
    | KeywordFrequency
    | LetterFrequency
    | JsonFormat
    | BulletCount
    | Sections
    | Title
    | Uppercase
    | Lowercase
    | Quotation
    | EndPhrase
    | NoCommas
    | Placeholders
    | Language,
    Field(discriminator="kind"),
]
CONSTRAINTS: TypeAdapter[list[Constraint]] = TypeAdapter(list[Constraint])
LANGUAGES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian"}
FAMILIES: tuple[str, ...] = tuple(str(k.model_fields["kind"].default) for k in _KINDS)
# Pairs that cannot hold together (or that make each other unfair to check).
_EXCLUSIVE = [
    {"json_format", "quotation", "paragraph_count", "sections", "bullet_count"},
    {"uppercase", "lowercase", "language"},
    {"uppercase", "lowercase", "end_phrase"},
    {"json_format", "end_phrase", "quotation", "title"},
    {"language", "keywords_include", "keyword_frequency", "end_phrase"},
]
_VOCABULARY = ["time", "world", "people", "history", "water", "light", "music"]
_VOCABULARY += ["future", "city", "nature"]
_ENDINGS = ["Is there anything else I can help with?", "Any other questions?", "That is all."]


def _draw(family: str, rng: random.Random) -> _Constraint:
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
        case "json_format":
            return JsonFormat()
        case "bullet_count":
            return BulletCount(n=rng.randint(2, 5))
        case "sections":
            return Sections(n=rng.randint(2, 3))
        case "title":
            return Title()
        case "uppercase":
            return Uppercase()
        case "lowercase":
            return Lowercase()
        case "quotation":
            return Quotation()
        case "end_phrase":
            return EndPhrase(phrase=rng.choice(_ENDINGS))
        case "no_commas":
            return NoCommas()
        case "placeholders":
            return Placeholders(n=rng.randint(1, 3))
        case "language":
            return Language(code=rng.choice(["fr", "de", "es"]))
    raise ValueError(f"unknown constraint family {family!r}")


def sample_constraints(
    rng: random.Random, count: int, families: list[str] | None = None
) -> list[_Constraint]:
    """``count`` compatible constraints from ``families`` (all by default), no family twice."""
    pool = list(families or FAMILIES)
    rng.shuffle(pool)
    chosen: list[str] = []
    for family in pool:
        if len(chosen) == count:
            break
        if any(family in group and group & set(chosen) for group in _EXCLUSIVE):
            continue
        chosen.append(family)
    return [_draw(family, rng) for family in chosen]
