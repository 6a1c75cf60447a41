"""The degeneracy checks: each reason is found where it is, and prose passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rubrics.degenerate import REASONS, degeneracy

ROOT = Path(__file__).resolve().parents[2]
ALL = REASONS


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("... !!! ---", "empty"),
        ("Why? " * 30, "repetition"),
        ("I am sorry. " * 6, "repetition"),
        ("The plan is simple and it will work for everyone here today. " * 3, "repetition"),
        (" ".join(["alpha beta gamma", "beta gamma alpha"] * 20), "repetition"),
        ('Done. <tool_response>{"ok": true}</tool_response>', "role_markers"),
        ("Sure.<|im_end|>\n<|im_start|>user\nthanks", "role_markers"),
        ("[INST] now answer [/INST]", "role_markers"),
        ("1. 2. 3. 4. 5. 6. 7.", "no_language"),
        ("#### **** ---- 12 34", "no_language"),
    ],
)
def test_each_reason_is_found(text: str, reason: str) -> None:
    assert degeneracy(text, checks=ALL) == reason


def test_an_echo_of_the_prompt_is_found_and_an_answer_after_it_is_not() -> None:
    prompt = "List three rivers of Europe and say which one is the longest of them."
    assert degeneracy(prompt, prompt=prompt) == "prompt_echo"
    assert degeneracy(prompt.upper() + " ", prompt=prompt) == "prompt_echo"
    answered = prompt + " The Danube, the Rhine and the Volga; the Volga is the longest of them."
    assert degeneracy(answered, prompt=prompt) is None
    assert degeneracy("Paris", prompt="Is Paris the capital of France?") is None


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 42.",
        "Paris is the capital of France. It sits on the Seine and has many museums.",
        "No, no, no: the meeting moved to Friday.",
        "def add(a, b):\n    return a + b\n",
        '{"city": "Paris", "population": 2100000}',
        "Step 1. Open the file.\nStep 2. Read it.\nStep 3. Close it.",
        " ".join(f"item {i}," for i in range(60)),
    ],
)
def test_ordinary_answers_pass(text: str) -> None:
    assert degeneracy(text, checks=ALL) is None


@pytest.mark.parametrize(
    "text",
    [
        "zeros = [" + ", ".join(["0"] * 30) + "]",
        "1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 = 12",
        "The grid is\n" + "\n".join(" ".join(["0"] * 12) for _ in range(6)),
    ],
)
def test_repeated_numbers_are_data_not_a_loop(text: str) -> None:
    assert degeneracy(text) is None


@pytest.mark.parametrize("page", ["README.md", "docs/synth.md", "docs/rl.md", "docs/llm.md"])
def test_real_prose_is_never_a_loop(page: str) -> None:
    text = (ROOT / page).read_text()
    assert degeneracy(text, checks=("empty", "repetition")) is None


def test_a_bare_number_is_language_free_but_only_when_asked() -> None:
    assert degeneracy("42") is None
    assert degeneracy("42", checks=["no_language"]) == "no_language"


def test_an_unknown_check_is_named() -> None:
    with pytest.raises(ValueError, match="unknown degeneracy checks \\['loop'\\]"):
        degeneracy("x", checks=["loop"])
