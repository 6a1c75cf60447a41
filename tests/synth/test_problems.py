"""Coding problems: real sets read from what packages ship (or a local copy), and
generated problems kept only when the Docker sandbox shows they are sound."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from llm import ChatClient
from llm.testing import ScriptedEndpoint
from synth.problems import (
    Problem,
    ProblemSetError,
    generate_problems,
    problem_draft,
    real_problems,
    static_problem,
    validate_problems,
    write_problems,
)

ADD = {
    "entry_point": "add",
    "description": "Write add(a, b) that returns the sum of two integers a and b.",
    "solution": "def add(a, b):\n    return a + b\n",
    "tests": "assert add(2, 3) == 5\nassert add(-1, 1) == 0",
}


def problem(**fields: str) -> Problem:
    return Problem(**{**ADD, **fields}, origin="generated:test", source="generated_problem")


def scripted(answers: list[str]) -> Any:
    """A responder giving each first request the next answer, and any repair request
    (a follow-up after an invalid answer) more invalid text."""
    lock, queue = threading.Lock(), list(answers)

    def respond(request: dict[str, Any]) -> str:
        if len(request["messages"]) > 1:
            return "still not JSON"
        with lock:
            return queue.pop(0)

    return respond


def test_humaneval_comes_from_the_package_with_tests_solutions_and_origins() -> None:
    problems = real_problems("humaneval")
    assert len(problems) == 164
    first = problems[12]
    assert first.origin == "humaneval:HumanEval/12" and first.eval_set
    assert first.source == "real_set" and "def check(candidate)" in first.tests
    assert f"def {first.entry_point}(" in first.solution
    assert first.description.startswith("Complete this function:\n```python\n")


def test_an_unknown_set_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ProblemSetError, match="unknown problem set 'apps'; known: humaneval, mbpp"):
        real_problems("apps")


def test_mbpp_needs_a_local_copy_and_says_so() -> None:
    with pytest.raises(ProblemSetError, match="no PyPI package ships MBPP"):
        real_problems("mbpp")


def test_mbpp_rows_become_problems_and_its_test_split_is_an_eval_set(tmp_path: Path) -> None:
    rows = [
        {
            "task_id": 12,
            "text": "Write a function to find the shared items of two tuples.",
            "code": "def shared(a, b):\r\n    return tuple(set(a) & set(b))",
            "test_list": ["assert set(shared((1, 2), (2, 3))) == set((2,))"],
            "test_setup_code": "",
            "challenge_test_list": [],
        },
        {
            "task_id": 700,
            "text": "Write a function to double a number.",
            "code": "def double(x):\n    return 2 * x",
            "test_list": ["assert double(2) == 4", "assert double(0) == 0"],
            "test_setup_code": "import math",
            "challenge_test_list": [],
        },
    ]
    path = tmp_path / "mbpp.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    test_split, train = real_problems("mbpp", path)
    assert (test_split.entry_point, test_split.eval_set, test_split.origin) == (
        "shared",
        True,
        "mbpp:12",
    )
    assert (train.entry_point, train.eval_set) == ("double", False)
    assert train.tests.startswith("import math\nassert double(2) == 4")
    assert "\r" not in test_split.solution
    assert static_problem(train) is None


def test_a_bad_mbpp_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mbpp.jsonl"
    path.write_text('{"task_id": 1, "text": "x", "code": "", "test_list": ["assert f(1)"]}\n[1]\n')
    with pytest.raises(ProblemSetError, match=rf"{path}:2: not a JSON object"):
        real_problems("mbpp", path)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"entry_point": "add me"}, "no_entry_point"),
        ({"solution": "def plus(a, b):\n    return a + b\n"}, "no_entry_point"),
        ({"solution": "def add(a, b) return a + b"}, "reference_fails"),
        ({"tests": "assert add(2, 3) =="}, "bad_tests"),
        ({"tests": "print(add(2, 3))"}, "bad_tests"),
        ({"tests": "assert 1 + 1 == 2"}, "bad_tests"),
    ],
)
def test_problems_the_code_shows_are_broken_are_refused_before_the_sandbox(
    fields: dict[str, str], reason: str
) -> None:
    assert static_problem(problem(**fields)) == reason


def test_a_sound_problem_passes_the_static_checks() -> None:
    assert static_problem(problem()) is None


def test_a_problem_becomes_a_coding_task_with_its_tests() -> None:
    draft = problem_draft(problem(), "single")
    assert draft.checks.tests == ADD["tests"] and draft.checks.entry_point == "add"
    assert ADD["description"] in draft.user_goal and draft.expected_tools == ["run_python"]
    vague = problem_draft(problem(), "clarify")
    assert ADD["description"] not in vague.user_goal
    assert vague.hidden_info == {"exact behaviour": ADD["description"]}


async def test_written_problems_that_repeat_or_fail_to_parse_are_counted() -> None:
    answers = [json.dumps(ADD), json.dumps({**ADD, "entry_point": "add"}), "no JSON here"]
    async with ScriptedEndpoint(scripted(answers)) as server:
        async with ChatClient(server.endpoint()) as client:
            written, rejected = await write_problems(client, 3, seed=1)
    assert [p.entry_point for p in written] == ["add"]
    assert rejected == {"duplicate": 1, "generation_failed": 1}
    assert written[0].source == "generated_problem" and not written[0].eval_set


# ------------------------------------------------------------------ real Docker sandbox


@pytest.mark.integration
def test_humaneval_solutions_pass_and_trivial_solutions_fail_in_the_sandbox(
    docker_sandbox,
) -> None:
    sample = random.Random(0).sample(real_problems("humaneval"), 20)
    assert validate_problems(sample, docker_sandbox) == [None] * 20


@pytest.mark.integration
def test_a_humaneval_problem_with_a_wrong_solution_is_caught(docker_sandbox) -> None:
    real = real_problems("humaneval")[0]
    wrong = real.model_copy(
        update={"solution": real.solution.replace("return False", "return True")}
    )
    assert wrong.solution != real.solution
    assert validate_problems([wrong], docker_sandbox) == ["reference_fails"]


CASES = {
    "reference_fails": {**ADD, "solution": "def add(a, b):\n    return a - b\n"},
    "trivial_passes": {
        **ADD,
        "description": "Write add(a, b) that returns None whatever it is given.",
        "solution": "def add(a, b):\n    return None\n",
        "tests": "assert add(1, 2) is None",
    },
    "reference_hangs": {**ADD, "solution": "def add(a, b):\n    while True:\n        pass\n"},
    "first_argument_passes": {**ADD, "tests": "assert add(2, 0) == 2"},
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_generated_problem_that_is_not_sound_is_rejected(case: str, docker_sandbox) -> None:
    async with ScriptedEndpoint(scripted([json.dumps(CASES[case])])) as server:
        async with ChatClient(server.endpoint()) as client:
            kept, rejected = await generate_problems(client, 1, 3, docker_sandbox)
    expected = "trivial_passes" if case == "first_argument_passes" else case
    assert kept == [] and rejected == {expected: 1}


@pytest.mark.integration
async def test_a_sound_generated_problem_is_kept(docker_sandbox) -> None:
    async with ScriptedEndpoint(scripted([json.dumps(ADD)])) as server:
        async with ChatClient(server.endpoint()) as client:
            kept, rejected = await generate_problems(client, 1, 3, docker_sandbox)
    assert [p.entry_point for p in kept] == ["add"] and not rejected
    assert kept[0].origin.startswith("generated:problem-")
