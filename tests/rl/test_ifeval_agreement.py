"""Our instruction checkers against Google's IFEval checkers (``if-verifiable``), family by
family, on generated responses; its Punkt sentence model is built offline here."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from rl.gyms import constraints as cs
from rl.gyms.constraints import FAMILIES
from rl.gyms.ifeval_cases import Case, generate
from rl.gyms.ifeval_reference import DEVIATIONS, REFERENCE_IDS, explained, reference_check
from rl.gyms.punkt_offline import install

pytest.importorskip("if_verifiable", reason="the IFEval reference is a dev dependency")
PER_FAMILY = 60


@pytest.fixture(scope="module", autouse=True)
def punkt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference's sentence model, built offline into a fresh directory."""
    return install(tmp_path_factory.mktemp("nltk_data"))


@pytest.fixture(scope="module")
def cases_by_family() -> dict[str, list[Case]]:
    by_family: dict[str, list[Case]] = defaultdict(list)
    for case in generate(PER_FAMILY * len(FAMILIES), seed=7):
        by_family[case.constraint.kind].append(case)
    return by_family


def test_offline_punkt_model_loads_and_keeps_abbreviations_inside_sentences(
    punkt: Path,
) -> None:
    from nltk.tokenize.punkt import PunktTokenizer

    assert (punkt / "abbrev_types.txt").read_text()
    tokenizer = PunktTokenizer("english")
    text = 'Dr. Smith met Mr. Brown, e.g. at noon. She said "Stop." Then it rained!'
    assert tokenizer.tokenize(text) == [
        "Dr. Smith met Mr. Brown, e.g. at noon.",
        'She said "Stop."',
        "Then it rained!",
    ]


def test_every_family_of_ours_maps_to_an_ifeval_instruction() -> None:
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    assert set(REFERENCE_IDS) == set(FAMILIES)
    assert set(REFERENCE_IDS.values()) <= set(INSTRUCTION_DICT)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_agrees_with_ifeval_but_for_documented_deviations(
    family: str, cases_by_family: dict[str, list[Case]]
) -> None:
    cases = cases_by_family[family]
    assert len(cases) >= PER_FAMILY - 1
    verdicts = [
        (c, c.constraint.check(c.text), reference_check(c.constraint, c.text)) for c in cases
    ]
    assert {ours for _, ours, _ in verdicts} == {True, False}, "cases must pass and fail"
    unexplained = [
        (c.constraint, c.text)
        for c, ours, ref in verdicts
        if ours != ref and not explained(c.constraint, c.text)
    ]
    assert len(unexplained) <= 0.01 * len(cases), unexplained


@pytest.mark.parametrize(
    ("constraint", "text", "rule"),
    [
        (cs.KeywordsInclude(keywords=["water"]), "A waterfall.", "keyword_whole_word"),
        (cs.KeywordsExclude(keywords=["u.s"]), "The u-s border.", "keyword_literal"),
        (cs.WordCount(relation="at most", n=2), "It's well-known.", "contraction_one_word"),
        (cs.JsonFormat(), '```jSoN\n{"a": 1}\n```', "fence_tag_any_case"),
        (cs.BulletCount(n=1), "* one\n*note* two", "emphasis_is_no_bullet"),
        (cs.Sections(n=1), "SECTION 1\nx\nSECTION 2\ny", "sections_exact"),
        (cs.Sections(n=2), "SECTION 1\nas in SECTION 2", "section_mark_starts_line"),
        (cs.ParagraphCount(n=1), "A ***bold*** claim.", "divider_own_line"),
        (cs.Uppercase(), "NATURE TEACHES PATIENCE TO THOSE WHO LISTEN.", "all_caps_lowered"),
        (cs.Language(code="fr"), "Bonjour", "too_short_for_language"),
        (cs.Placeholders(n=1), "Fill []", "empty_brackets"),
        (cs.Postscript(marker="P.S."), "I write p.s. here.", "postscript_starts_line"),
        (cs.HighlightedSections(n=1), "2 * 3 * 4", "highlight_is_emphasis"),
        (
            cs.ParagraphFirstWord(n=2, nth=1, first_word="first"),
            "\n\nFirst one.\n\nTwo.",
            "blank_line_with_spaces",
        ),
        (cs.ConstrainedResponse(), "My answer is yes. My answer is no.", "one_option_only"),
    ],
)
def test_each_documented_deviation_is_a_real_disagreement_it_names(
    constraint, text: str, rule: str
) -> None:
    assert constraint.check(text) != reference_check(constraint, text)
    assert rule in explained(constraint, text)
    assert rule in {d.name for d in DEVIATIONS[constraint.kind]}


def test_a_plain_compliant_response_needs_no_deviation() -> None:
    constraint = cs.KeywordsInclude(keywords=["water"])
    assert constraint.check("Water matters.") and reference_check(constraint, "Water matters.")
    assert explained(constraint, "Water matters.") == []
