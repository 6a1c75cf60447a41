"""Verifiable instruction constraints of the IFEval families, each a pydantic model.

Every constraint says what it asks (``instruction``) and checks a response (``check``);
:mod:`rl.gyms.constraint_sampling` composes several compatible ones for a prompt. Families:
length in words / sentences / paragraphs, keywords included / excluded / at a frequency,
letter frequency, JSON output, bullet count, sections, title, upper / lower case in English,
capital-word frequency, quotation, end phrase, no commas, placeholders, response language
(``langdetect``), repeating the request, two responses, postscript, highlighted sections,
the nth paragraph's first word, and a constrained answer.

Each check follows Google's IFEval checker for the family except where that checker is
wrong (substring keyword matches, language detection on all-caps text, undetectable text
counted as compliant, ...); ``docs/rl.md`` names every such difference and
``bench/fidelity_ifeval.py`` measures the agreement. A check says what the instruction
literally says: "at most 5 sentences" holds for an empty text (the gym's degenerate-answer
gate is elsewhere).

Not here: the IFEval prompts themselves, or constraints that need a model to check.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

from rl.gyms.text_units import capital_words, paragraphs, sentences, words

Relation = Literal["at least", "at most"]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
_BULLET = re.compile(r"^[ \t]*[*-][ \t]+\S", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\[[^\[\]\n]+\]")
_TITLE = re.compile(r"<<([^\n]+?)>>")
_DIVIDER = re.compile(r"^[ \t]*\*\*\*[ \t]*$", re.MULTILINE)
_JSON_FENCE = re.compile(r"^```(?:json)?", re.IGNORECASE)
# Markdown emphasis: no space just inside the asterisks ("2 * 3 * 4" is arithmetic).
_HIGHLIGHT = re.compile(
    r"\*\*(?!\s)[^\n*]+?(?<!\s)\*\*|(?<![*\w])\*(?!\s)[^\n*]+?(?<!\s)\*(?![*\w])"
)
_FIRST_WORD = re.compile(r"[\w'-]+")
ANSWER_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
_POSTSCRIPT = {"P.S.": r"p\.\s?s\.", "P.P.S": r"p\.\s?p\.\s?s"}


def _compare(value: int, relation: Relation, target: int) -> bool:
    return value >= target if relation == "at least" else value <= target


def _whole_word(keyword: str) -> re.Pattern[str]:
    """``keyword`` literally, not inside a longer word; works for "c++" and "e-mail" too."""
    return re.compile(rf"(?<!\w){re.escape(keyword)}(?!\w)", re.IGNORECASE)


def detected_language(text: str) -> str | None:
    """``langdetect``'s language for ``text``, or None when it cannot tell.

    All-caps text is lowered first: langdetect's profiles are built from ordinary text and
    misread capitals ("THE WEATHER IS NICE" is not English to it).
    """
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0  # langdetect is randomised; make it deterministic
    try:
        return str(detect(text.lower() if text.isupper() else text))
    except LangDetectException:
        return None


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
        return _compare(len(sentences(text)), self.relation, self.n)


class ParagraphCount(_Constraint):
    """Paragraphs between ``***`` divider lines; a divider before the first or after the
    last paragraph is allowed, an empty paragraph between two dividers is not."""

    kind: Literal["paragraph_count"] = "paragraph_count"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return (
            f"There should be exactly {self.n} paragraphs, separated from each other by the "
            "markdown divider *** on a line of its own."
        )

    def check(self, text: str) -> bool:
        parts = [p.strip() for p in _DIVIDER.split(text)]
        if parts and not parts[0]:
            parts = parts[1:]
        if parts and not parts[-1]:
            parts = parts[:-1]
        return len(parts) == self.n and all(parts)


class KeywordsInclude(_Constraint):
    kind: Literal["keywords_include"] = "keywords_include"
    keywords: list[Keyword] = Field(min_length=1)

    def instruction(self) -> str:
        return "Include the keywords " + ", ".join(f"'{k}'" for k in self.keywords) + "."

    def check(self, text: str) -> bool:
        return all(_whole_word(k).search(text) for k in self.keywords)


class KeywordsExclude(_Constraint):
    kind: Literal["keywords_exclude"] = "keywords_exclude"
    keywords: list[Keyword] = Field(min_length=1)

    def instruction(self) -> str:
        return "Do not include the words " + ", ".join(f"'{k}'" for k in self.keywords) + "."

    def check(self, text: str) -> bool:
        return not any(_whole_word(k).search(text) for k in self.keywords)


class KeywordFrequency(_Constraint):
    kind: Literal["keyword_frequency"] = "keyword_frequency"
    keyword: Keyword
    relation: Relation
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return f"The word '{self.keyword}' should appear {self.relation} {self.n} times."

    def check(self, text: str) -> bool:
        return _compare(len(_whole_word(self.keyword).findall(text)), self.relation, self.n)


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
        body = _JSON_FENCE.sub("", text.strip(), count=1).removesuffix("```").strip()
        try:
            json.loads(body)
        except json.JSONDecodeError:
            return False
        return True


class BulletCount(_Constraint):
    """Markdown bullets: ``*`` or ``-`` then a space; ``*emphasis*`` and ``---`` are not."""

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
    """Exactly ``n`` lines that start with the splitter and a number, as a markdown
    heading or in bold too ("## SECTION 2", "**SECTION 2**"); a mention mid-line is not."""

    kind: Literal["sections"] = "sections"
    n: int = Field(ge=1)
    splitter: Literal["SECTION", "Section"] = "SECTION"

    def instruction(self) -> str:
        return (
            f"Your response must have {self.n} sections. Mark the beginning of each section "
            f"with {self.splitter} X, such as: {self.splitter} 1."
        )

    def check(self, text: str) -> bool:
        mark = rf"^[ \t]*(?:#{{1,6}}[ \t]*)?(?:\*\*|__)?{self.splitter}[ \t]*\d+"
        return len(re.findall(mark, text, re.MULTILINE)) == self.n


class Title(_Constraint):
    kind: Literal["title"] = "title"

    def instruction(self) -> str:
        return (
            "Your answer must contain a title, wrapped in double angular brackets, "
            "such as <<poem of joy>>."
        )

    def check(self, text: str) -> bool:
        return any(t.strip("<> ") for t in _TITLE.findall(text))


class Uppercase(_Constraint):
    kind: Literal["uppercase"] = "uppercase"

    def instruction(self) -> str:
        return "Your entire response should be in English, and in all capital letters."

    def check(self, text: str) -> bool:
        return text.isupper() and detected_language(text) == "en"


class Lowercase(_Constraint):
    kind: Literal["lowercase"] = "lowercase"

    def instruction(self) -> str:
        return "Your entire response should be in English, and in all lowercase letters."

    def check(self, text: str) -> bool:
        return text.islower() and detected_language(text) == "en"


class CapitalWordFrequency(_Constraint):
    kind: Literal["capital_word_frequency"] = "capital_word_frequency"
    relation: Relation
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return (
            "In your response, words with all capital letters should appear "
            f"{self.relation} {self.n} times."
        )

    def check(self, text: str) -> bool:
        return _compare(capital_words(text), self.relation, self.n)


class Quotation(_Constraint):
    kind: Literal["quotation"] = "quotation"

    def instruction(self) -> str:
        return "Wrap your entire response with double quotation marks."

    def check(self, text: str) -> bool:
        body = text.strip()
        return len(body) > 1 and body[0] == '"' and body[-1] == '"'


class EndPhrase(_Constraint):
    """Case is not compared, so that the phrase can combine with upper / lower case."""

    kind: Literal["end_phrase"] = "end_phrase"
    phrase: Keyword

    def instruction(self) -> str:
        return (
            f"Finish your response with this exact phrase: {self.phrase} "
            "No other words should follow it."
        )

    def check(self, text: str) -> bool:
        return text.strip().strip('"').lower().endswith(self.phrase.lower())


class NoCommas(_Constraint):
    kind: Literal["no_commas"] = "no_commas"

    def instruction(self) -> str:
        return "In your entire response, refrain from the use of any commas."

    def check(self, text: str) -> bool:
        return "," not in text


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
        # Fewer than three words is too little to tell a language by.
        return len(words(text)) >= 3 and detected_language(text) == self.code


class RepeatPrompt(_Constraint):
    """The response starts with the request, compared without case as IFEval does."""

    kind: Literal["repeat_prompt"] = "repeat_prompt"
    prompt: str = Field(min_length=1)
    """The request to repeat: the prompt without the constraint instructions."""

    def instruction(self) -> str:
        return (
            "First repeat the request above (the text before these instructions) word for "
            "word without change, then give your answer; say nothing before the repeated "
            "request."
        )

    def check(self, text: str) -> bool:
        return text.strip().lower().startswith(self.prompt.strip().lower())


class TwoResponses(_Constraint):
    kind: Literal["two_responses"] = "two_responses"

    def instruction(self) -> str:
        return (
            "Give two different responses. Responses and only responses should be separated "
            "by 6 asterisk symbols: ******."
        )

    def check(self, text: str) -> bool:
        parts = text.split("******")
        if not all(p.strip() for p in parts[1:-1]):
            return False
        answers = [p.strip() for p in parts if p.strip()]
        return len(answers) == 2 and answers[0] != answers[1]


class Postscript(_Constraint):
    """A line starting with the marker (bold allowed); a mention mid-line is not one."""

    kind: Literal["postscript"] = "postscript"
    marker: Literal["P.S.", "P.P.S"] = "P.S."

    def instruction(self) -> str:
        return (
            "At the end of your response, please explicitly add a postscript starting with "
            f"{self.marker}"
        )

    def check(self, text: str) -> bool:
        start = rf"^[ \t]*(?:\*\*|__)?{_POSTSCRIPT[self.marker]}"
        return bool(re.search(start, text, re.MULTILINE | re.IGNORECASE))


class HighlightedSections(_Constraint):
    kind: Literal["highlighted_sections"] = "highlighted_sections"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return (
            f"Highlight at least {self.n} sections in your answer with markdown, i.e. "
            "*highlighted section*."
        )

    def check(self, text: str) -> bool:
        return len(_HIGHLIGHT.findall(text)) >= self.n


class ParagraphFirstWord(_Constraint):
    """Paragraphs are separated by blank lines (a line of spaces counts as blank); the
    first word is compared without case, markdown and quotes around it."""

    kind: Literal["nth_paragraph_first_word"] = "nth_paragraph_first_word"
    n: int = Field(ge=1)
    nth: int = Field(ge=1)
    first_word: Keyword

    @model_validator(mode="after")
    def _nth_within(self) -> ParagraphFirstWord:
        if self.nth > self.n:
            raise ValueError(f"nth={self.nth} is past the last of n={self.n} paragraphs")
        return self

    def instruction(self) -> str:
        return (
            f"There should be {self.n} paragraphs. Paragraphs are separated from each other "
            f"by two new lines. Paragraph {self.nth} must start with the word "
            f"{self.first_word}."
        )

    def check(self, text: str) -> bool:
        parts = paragraphs(text)
        if len(parts) != self.n:
            return False
        first = _FIRST_WORD.search(parts[self.nth - 1])
        return first is not None and first.group().lower() == self.first_word.lower()


class ConstrainedResponse(_Constraint):
    """Exactly one of the options appears (hedging between them is no answer)."""

    kind: Literal["constrained_response"] = "constrained_response"

    def instruction(self) -> str:
        return f"Answer with one of the following options: {ANSWER_OPTIONS}"

    def check(self, text: str) -> bool:
        return sum(option in text for option in ANSWER_OPTIONS) == 1


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
    CapitalWordFrequency,
    Quotation,
    EndPhrase,
    NoCommas,
    Placeholders,
    Language,
    RepeatPrompt,
    TwoResponses,
    Postscript,
    HighlightedSections,
    ParagraphFirstWord,
    ConstrainedResponse,
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
    | CapitalWordFrequency
    | Quotation
    | EndPhrase
    | NoCommas
    | Placeholders
    | Language
    | RepeatPrompt
    | TwoResponses
    | Postscript
    | HighlightedSections
    | ParagraphFirstWord
    | ConstrainedResponse,
    Field(discriminator="kind"),
]
CONSTRAINTS: TypeAdapter[list[Constraint]] = TypeAdapter(list[Constraint])
LANGUAGES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian"}
FAMILIES: tuple[str, ...] = tuple(str(k.model_fields["kind"].default) for k in _KINDS)
