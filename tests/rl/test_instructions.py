"""The IFEval-style constraints, each family on hand-made passing and failing responses,
and the instruction-following gym's strict, loose and hack-check scoring."""

from __future__ import annotations

import json
import random

import pytest

from rl.gyms import Sample, build_gym
from rl.gyms.constraint_sampling import sample_constraints
from rl.gyms.constraints import (
    CONSTRAINTS,
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
    RepeatPrompt,
    Sections,
    SentenceCount,
    Title,
    TwoResponses,
    Uppercase,
    WordCount,
)

CASES = [
    (WordCount(relation="at least", n=5), "one two three four five six", "one two three"),
    (WordCount(relation="at most", n=3), "short answer here", "this one has far too many words"),
    (SentenceCount(relation="at least", n=2), "It rains. We stay in.", "It rains"),
    (SentenceCount(relation="at most", n=1), "Just one sentence.", "One. Two. Three."),
    (ParagraphCount(n=2), "First part.\n***\nSecond part.", "First part.\n\nSecond part."),
    (KeywordsInclude(keywords=["water", "light"]), "Water and light.", "Only water here."),
    (KeywordsExclude(keywords=["music"]), "A quiet evening.", "Music all night."),
    (KeywordFrequency(keyword="city", relation="at least", n=2), "city to city", "one city"),
    (KeywordFrequency(keyword="city", relation="at most", n=1), "one city", "city, city, city"),
    (LetterFrequency(letter="e", relation="at least", n=3), "eee", "abc"),
    (LetterFrequency(letter="e", relation="at most", n=1), "cat", "eerie"),
    (JsonFormat(), '```json\n{"a": 1}\n```', "Here is JSON: {'a': 1}"),
    (BulletCount(n=2), "* one\n* two", "* one\n* two\n* three"),
    (Sections(n=2), "SECTION 1\nintro\nSECTION 2\nend", "SECTION 1\nall of it"),
    (Title(), "<<a title>>\nbody", "A title\nbody"),
    (Uppercase(), "NATURE TEACHES PATIENCE TO THOSE WHO LISTEN.", "Nature Teaches Patience."),
    (Uppercase(), "THE WEATHER IS NICE TODAY.", "LE TEMPS EST TRÈS BEAU AUJOURD'HUI À PARIS."),
    (Lowercase(), "the weather is nice today.", "The weather is nice today."),
    (Lowercase(), "the weather is nice today.", "le temps est très beau aujourd'hui à paris."),
    (
        CapitalWordFrequency(relation="at least", n=2),
        "This is VERY, VERY good.",
        "This is VERY good.",
    ),
    (CapitalWordFrequency(relation="at most", n=1), "The U.S. is big.", "NASA and ESA launch."),
    (Quotation(), '"wrapped in quotes"', "not wrapped"),
    (
        EndPhrase(phrase="Any other questions?"),
        "Done. Any other questions?",
        "Any other questions? Yes",
    ),
    (NoCommas(), "no commas at all", "one, two"),
    (
        RepeatPrompt(prompt="Describe a city."),
        "describe a city. It is busy.",
        "Sure! Describe a city. It is busy.",
    ),
    (TwoResponses(), "Yes, go.\n******\nNo, stay.", "Yes, go.\n******\nYes, go."),
    (Postscript(marker="P.S."), "Bye.\n\nP.S. Call me.", "Bye. I wrote p.s. in it."),
    (Postscript(marker="P.P.S"), "Bye.\n**P. P. S.** Call.", "Bye.\nP.S. Call."),
    (HighlightedSections(n=2), "A *key* and **bold** part.", "A *key* part, 2 * 3 * 4."),
    (
        ParagraphFirstWord(n=2, nth=2, first_word="today"),
        "Hello there.\n\n**Today,** we rest.",
        "Hello there.\n\nWe rest today.",
    ),
    (ConstrainedResponse(), "My answer is no. It rains.", "My answer is yes. My answer is no."),
    (Placeholders(n=2), "Send it to [name] at [address].", "Send it to [name]."),
    (
        Language(code="fr"),
        "Bonjour, je suis très content de vous voir aujourd'hui dans cette belle ville.",
        "Hello, I am very happy to see you today in this beautiful city.",
    ),
]


def test_every_family_has_hand_made_cases() -> None:
    assert {c.kind for c, _, _ in CASES} == set(FAMILIES)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("constraint", "good", "bad"), CASES, ids=lambda x: getattr(x, "kind", ""))
def test_constraint_accepts_compliant_and_rejects_noncompliant(
    constraint, good: str, bad: str
) -> None:
    assert constraint.check(good)
    assert not constraint.check(bad)
    assert constraint.instruction()


# Constraints that ask for something to be present (absences and upper bounds hold vacuously).
POSITIVE = [
    c
    for c, _, _ in CASES
    if c.kind
    not in {"keywords_exclude", "word_count", "sentence_count", "letter_frequency", "no_commas"}
    and getattr(c, "relation", "") != "at most"
]


@pytest.mark.parametrize("constraint", POSITIVE, ids=lambda c: c.kind)
def test_empty_response_satisfies_no_positive_constraint(constraint) -> None:
    assert not constraint.check("")


def test_sampled_constraints_never_combine_conflicting_families() -> None:
    rng = random.Random(0)
    for _ in range(300):
        kinds = {c.kind for c in sample_constraints(rng, 4, request="Describe a city.")}  # type: ignore[attr-defined]
        assert not {"uppercase", "lowercase"} <= kinds
        assert not {"json_format", "bullet_count"} <= kinds
        assert not {"repeat_prompt", "json_format"} <= kinds
        assert not {"nth_paragraph_first_word", "paragraph_count"} <= kinds
        assert len(kinds) == 4


def test_repeat_prompt_is_drawn_only_with_a_request_to_repeat() -> None:
    rng = random.Random(0)
    drawn = [c for _ in range(200) for c in sample_constraints(rng, 3, request="Name a river.")]
    assert any(c.kind == "repeat_prompt" and c.prompt == "Name a river." for c in drawn)  # type: ignore[attr-defined]
    alone = [c for _ in range(200) for c in sample_constraints(rng, 3)]
    assert all(c.kind != "repeat_prompt" for c in alone)  # type: ignore[attr-defined]


def _sample(constraints: list, text: str) -> Sample:
    payload = {"constraints": [c.model_dump() for c in constraints]}
    return Sample(prompt=[], completion=[{"role": "assistant", "content": text}], payload=payload)


def test_strict_needs_every_constraint_and_loose_gives_the_fraction() -> None:
    constraints = [NoCommas(), Lowercase()]
    strict = build_gym("ifeval", {"mode": "strict"})
    loose = build_gym("ifeval", {"mode": "loose"})
    assert strict.verify(_sample(constraints, "the weather is nice today and we are happy")) == 1.0
    assert strict.verify(_sample(constraints, "The weather is nice today and we are happy")) == 0.0
    assert loose.verify(_sample(constraints, "The weather is nice today and we are happy")) == 0.5


@pytest.mark.parametrize(
    "claim",
    [
        "Word count: 150",
        "I have followed all the constraints.",
        "All the instructions have been met!",
        "This response contains no commas, as required.",
    ],
)
def test_claiming_compliance_without_complying_is_penalised(claim: str) -> None:
    gym = build_gym("ifeval", {"hack_penalty": 0.5})
    assert gym.verify(_sample([WordCount(relation="at least", n=100)], f"Short. {claim}")) == -0.5


def test_a_true_claim_is_not_penalised() -> None:
    gym = build_gym("ifeval", {})
    assert gym.verify(_sample([Lowercase()], "i have followed all the constraints.")) == 1.0


def test_tasks_carry_their_constraints_in_the_prompt_and_payload() -> None:
    gym = build_gym("ifeval", {"count": 5, "eval_count": 3, "per_prompt": 3, "seed": 1})
    tasks = gym.load("train")
    assert len(tasks) == 5
    for task in tasks:
        constraints = CONSTRAINTS.validate_python(task.payload["constraints"])
        assert len(constraints) == 3
        assert all(c.instruction() in task.prompt[-1]["content"] for c in constraints)
    held = {t.prompt[-1]["content"].split("\n\n")[0] for t in gym.load("eval")}
    assert not held & {t.prompt[-1]["content"].split("\n\n")[0] for t in tasks}
    json.dumps([t.payload for t in tasks])


def test_unknown_family_is_refused_with_its_name() -> None:
    with pytest.raises(Exception, match="unknown constraint families \\['haiku'\\]"):
        build_gym("ifeval", {"families": ["haiku"]})
