"""The math gym: math-verify equivalence, hedging and odd completions, the TRL reward seam."""

from __future__ import annotations

import pytest

from rl.gyms import Budget, build_gym
from rl.gyms.base import reward_function
from rl.gyms.math import score_answer


@pytest.mark.parametrize(
    ("text", "gold"),
    [
        ("5 - 3 - 6 is -4.\nAnswer: -4", "-4"),
        ("Answer: 0.5", "1/2"),
        ("so the result is \\boxed{\\frac{1}{2}}", "0.5"),
        ("Answer: 1,000", "1000"),
        ("Answer: (56 + -33) - 84 = -61", "-61"),
        ("Answer: Blue.", "blue"),
    ],
)
def test_equivalent_answers_pass(text: str, gold: str) -> None:
    assert score_answer(text, gold) == 1.0


@pytest.mark.parametrize(
    ("text", "gold"),
    [
        ("Answer: 7", "-4"),
        ("Answer: x", "3"),
        ("Answer: red", "blue"),
    ],
)
def test_wrong_answers_fail(text: str, gold: str) -> None:
    assert score_answer(text, gold) == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "Answer: 3 or -4",  # hedging between candidates
        "Answer: -4, 3, 5",
        "Answer: 3 and -4",
        "",  # empty
        "\n\n   ",
        "Answer:",  # marker without an answer
        "-4 " * 50_000 + "\nAnswer: 9",  # huge, last answer wrong
        "}}}\\boxed{{{",  # malformed LaTeX
    ],
)
def test_adversarial_and_empty_completions_score_zero(text: str) -> None:
    assert score_answer(text, "-4") == 0.0


def test_reward_function_scores_only_its_own_rows_and_penalises_over_budget() -> None:
    gym = build_gym("math", {"count": 2, "eval_count": 0})
    # The cut falls after the answer line: scored on it, then penalised.
    reward = reward_function(
        gym, budget=Budget(max_tokens=4, penalty=0.5), decode=lambda ids: "Answer: -4\nCheck"
    )
    completions = [
        [{"role": "assistant", "content": "Answer: -4"}],
        [{"role": "assistant", "content": "Answer: -4"}],
        [{"role": "assistant", "content": "anything"}],
    ]
    logged: dict[str, float] = {}
    rewards = reward(
        prompts=[[{"role": "user", "content": "q"}]] * 3,
        completions=completions,
        completion_ids=[[1, 2], [1, 2, 3, 4, 5, 6], [1]],
        gym=["math", "math", "ifeval"],
        task=['{"answer": "-4"}'] * 3,
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )
    assert rewards == [1.0, 0.5, None]
    assert reward.__name__ == "math"
    assert logged["gym/math/pass_rate"] == 1.0
    assert logged["gym/math/over_budget"] == 0.5
    assert logged["gym/math/reward_mean"] == 0.75


def test_over_budget_completion_is_scored_on_its_truncated_text() -> None:
    gym = build_gym("math", {"count": 1, "eval_count": 0})
    reward = reward_function(gym, budget=Budget(max_tokens=2, penalty=0.1), decode=lambda ids: "no")
    [value] = reward(
        prompts=[[{"role": "user", "content": "q"}]],
        completions=[[{"role": "assistant", "content": "long reasoning... Answer: -4"}]],
        completion_ids=[[1, 2, 3]],
        gym=["math"],
        task=['{"answer": "-4"}'],
    )
    assert value == pytest.approx(-0.1)


def test_a_verifier_that_raises_gives_none_not_a_crash() -> None:
    gym = build_gym("math", {"count": 1, "eval_count": 0})
    gym.verify = lambda sample: 1 / 0  # type: ignore[method-assign]
    reward = reward_function(gym)
    assert reward(prompts=["q"], completions=["a"], gym=["math"], task=["{}"]) == [None]


def test_generated_tasks_are_seeded_and_held_out_tasks_differ() -> None:
    options = {"count": 6, "eval_count": 4, "seed": 3}
    first, again = build_gym("math", options), build_gym("math", options)
    train = [t.prompt[-1]["content"] for t in first.load("train")]
    assert train == [t.prompt[-1]["content"] for t in again.load("train")]
    held = [t.prompt[-1]["content"] for t in first.load("eval")]
    assert held and not set(held) & set(train)


def test_jsonl_tasks_with_a_bad_row_name_file_and_line(tmp_path) -> None:
    from rl.gyms import GymError

    path = tmp_path / "math.jsonl"
    path.write_text('{"question": "1+1", "answer": 2}\n{"question": "2+2"}\n')
    with pytest.raises(GymError, match=r"math.jsonl:2: answer: Field required"):
        build_gym("math", {"path": str(path)}).load("train")
