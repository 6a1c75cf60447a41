"""The edge cases our instruction checkers once got wrong, one behaviour per test."""

from __future__ import annotations

import pytest

from rl.gyms import constraints as cs
from rl.gyms.text_units import capital_words, paragraphs, sentences


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("Dr. Smith met Mr. Brown. They talked.", 2),
        ("Bring fruit, e.g. apples or pears. Then go.", 2),
        ('She said "Stop." Then she left.', 2),
        ("Wait... the train is late. Odd.", 2),
        ("We met J. Lee at noon. He smiled.", 2),
        ("Prices rose 3.5 percent. See Fig. 3 for more.", 2),
        ("apples, pears, etc. Then we left.", 2),
        ("# Heading\nThe text runs on. Two.", 2),
        ("", 0),
    ],
)
def test_sentences_split_around_abbreviations_and_quotes(text: str, count: int) -> None:
    assert len(sentences(text)) == count


def test_a_line_of_spaces_separates_paragraphs() -> None:
    assert paragraphs("One.\n \t\nTwo.\n\n\n\nThree.") == ["One.", "Two.", "Three."]


@pytest.mark.parametrize("head", ["## SECTION {}", "**SECTION {}**", "SECTION {}:", "SECTION{}"])
def test_markdown_headings_mark_sections(head: str) -> None:
    text = "\n".join(head.format(i) + "\nBody." for i in (1, 2))
    assert cs.Sections(n=2).check(text)


def test_a_section_mentioned_mid_line_is_no_section() -> None:
    assert not cs.Sections(n=2).check("SECTION 1\nAs SECTION 2 says, all is well.")


@pytest.mark.parametrize("tag", ["json", "JSON", "Json", "jSoN", ""])
def test_fenced_json_is_accepted_with_any_case_of_the_tag(tag: str) -> None:
    assert cs.JsonFormat().check(f'\n```{tag}\n{{"a": [1, 2]}}\n```\n')


def test_fenced_json_with_another_language_tag_is_refused() -> None:
    assert not cs.JsonFormat().check('```python\n{"a": 1}\n```')


def test_case_constraints_require_english() -> None:
    assert not cs.Lowercase().check("le temps est très beau aujourd'hui à paris.")
    assert cs.Uppercase().check("DR. SMITH STUDIED THE WATER OF THAT RIVER FOR YEARS.")


@pytest.mark.parametrize(
    ("keyword", "text"), [("c++", "I like C++."), ("e-mail", "Send an e-mail!")]
)
def test_keywords_with_non_word_characters_match(keyword: str, text: str) -> None:
    assert cs.KeywordsInclude(keywords=[keyword]).check(text)
    assert not cs.KeywordsExclude(keywords=[keyword]).check(text)
    assert cs.KeywordFrequency(keyword=keyword, relation="at least", n=1).check(text)


def test_a_keyword_inside_a_longer_word_does_not_count() -> None:
    assert not cs.KeywordsInclude(keywords=["water"]).check("A waterfall.")


def test_end_phrase_ignores_surrounding_whitespace_quotes_and_case() -> None:
    phrase = cs.EndPhrase(phrase="  Any other questions? ")
    assert phrase.phrase == "Any other questions?"
    assert phrase.check('"Done. ANY OTHER QUESTIONS?"  \n')
    assert not phrase.check("Any other questions? Thanks.")


def test_blank_keywords_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="keywords"):
        cs.KeywordsInclude(keywords=["  "])


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("***\nOne.\n***\nTwo.\n***", True),
        ("One.\n\n***\n\nTwo.", True),
        ("One.\n***\n***\nTwo.", False),
    ],
)
def test_paragraph_dividers_may_frame_the_text_but_not_be_empty(text: str, holds: bool) -> None:
    assert cs.ParagraphCount(n=2).check(text) is holds


def test_bold_italic_is_no_paragraph_divider() -> None:
    assert cs.ParagraphCount(n=1).check("A ***bold*** claim.")


def test_capital_words_count_abbreviations_once_and_skip_possessives() -> None:
    assert capital_words("The U.S. and NASA's I.") == 3


def test_nth_paragraph_index_skips_blank_paragraphs() -> None:
    rule = cs.ParagraphFirstWord(n=2, nth=1, first_word="first")
    assert rule.check("\n\n**First**, one.\n\n\n\nTwo.")


def test_nth_paragraph_past_the_count_is_refused() -> None:
    with pytest.raises(ValueError, match="nth=3 is past the last of n=2 paragraphs"):
        cs.ParagraphFirstWord(n=2, nth=3, first_word="first")


def test_upper_bounds_and_absences_hold_for_an_empty_response() -> None:
    assert cs.SentenceCount(relation="at most", n=5).check("")
    assert cs.NoCommas().check("")
    assert not cs.TwoResponses().check("")
