"""Mutation operators on small sources (pure AST, no Docker), then the mutation pipeline
on the fixture project in a real SWE image (integration: real Docker; skipped where no
engine runs, failing instead under CI=true) and on a real PyPI project (slow)."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from synth.mutations import OPERATORS, mutants

ROOT = Path(__file__).resolve().parents[2]
TINYPROJ = ROOT / "tests" / "fixtures" / "swe" / "tinyproj"
IMAGE = "summit-swe-test-mutations:latest"


def only(source: str, operator: str) -> list[str]:
    """The mutated sources of ``source`` by ``operator``."""
    return [m.source for m in mutants(source, "m.py") if m.operator == operator]


def changed(before: str, after: str) -> list[tuple[str, str]]:
    """The (old, new) line pairs that differ, for sources of the same length."""
    pairs = zip(before.splitlines(), after.splitlines(), strict=True)
    return [(a, b) for a, b in pairs if a != b]


# ------------------------------------------------------------------ operators, pure AST
def test_flip_compare_negates_and_shifts_the_boundary() -> None:
    source = "def f(a, b):\n    return a < b\n"
    assert sorted(only(source, "flip_compare")) == sorted(
        ["def f(a, b):\n    return a >= b\n", "def f(a, b):\n    return a <= b\n"]
    )


def test_flip_compare_covers_equality_membership_and_identity() -> None:
    source = "def f(a, b):\n    return a == b or a in b or a is None\n"
    flipped = only(source, "flip_compare")
    assert "a != b or a in b or a is None" in flipped[0]
    assert any("a not in b" in s for s in flipped)
    assert any("a is not None" in s for s in flipped)


def test_flip_not_adds_a_not_to_a_test_and_removes_an_existing_one() -> None:
    source = "def f(a, b):\n    if a:\n        return 1\n    return not b\n"
    flipped = only(source, "flip_not")
    assert "    if not a:\n" in flipped[0]
    assert "    return b\n" in flipped[1]
    assert len(flipped) == 2


def test_flip_not_leaves_comparisons_to_flip_compare() -> None:
    assert only("def f(a):\n    if a < 2:\n        return 1\n    return 0\n", "flip_not") == []


def test_swap_boolop_swaps_and_with_or() -> None:
    assert only("def f(a, b):\n    return a and b\n", "swap_boolop") == [
        "def f(a, b):\n    return a or b\n"
    ]


def test_off_by_one_moves_integer_constants_both_ways() -> None:
    source = "def f(xs):\n    return xs[0]\n"
    assert only(source, "off_by_one") == [
        "def f(xs):\n    return xs[1]\n",
        "def f(xs):\n    return xs[-1]\n",
    ]


def test_off_by_one_moves_computed_range_bounds() -> None:
    source = "def f(xs):\n    return [x for x in range(len(xs))]\n"
    assert only(source, "off_by_one") == [
        "def f(xs):\n    return [x for x in range(len(xs) + 1)]\n",
        "def f(xs):\n    return [x for x in range(len(xs) - 1)]\n",
    ]


def test_off_by_one_leaves_booleans_alone() -> None:
    assert only("def f():\n    return True\n", "off_by_one") == []


def test_drop_statement_never_drops_the_last_statement_or_the_docstring() -> None:
    source = 'def f(a):\n    """Doc."""\n    a = a + 1\n    a = a * 2\n    return a\n'
    dropped = only(source, "drop_statement")
    assert len(dropped) == 2
    assert all('"""Doc."""' in s and "return a" in s for s in dropped)
    assert "a = a + 1" not in dropped[0] and "a = a * 2" not in dropped[1]


def test_swap_args_swaps_two_positional_arguments() -> None:
    source = "def f(a, b):\n    return g(a, b, 3)\n"
    swapped = only(source, "swap_args")
    assert swapped == [
        "def f(a, b):\n    return g(b, a, 3)\n",
        "def f(a, b):\n    return g(a, 3, b)\n",
    ]


def test_swap_args_skips_identical_arguments() -> None:
    assert only("def f(a):\n    return g(a, a)\n", "swap_args") == []


def test_a_mutant_keeps_the_rest_of_the_file_as_written() -> None:
    source = (
        "# a comment the unparser would drop\n"
        "def f(a, b):\n"
        "    value = a  # keep me\n"
        "    return value < b\n"
    )
    (mutant, *_) = only(source, "flip_compare")
    assert changed(source, mutant) == [("    return value < b", "    return value >= b")]


def test_methods_of_classes_are_mutated_under_their_qualified_name() -> None:
    source = "class C:\n    def m(self, a):\n        return a > 0\n"
    assert {m.function for m in mutants(source, "m.py")} == {"C.m"}


def test_every_mutant_compiles_and_differs_from_the_original() -> None:
    for path in sorted((TINYPROJ / "tinyproj").glob("*.py")):
        source = path.read_text()
        for mutant in mutants(source, path.name):
            compile(mutant.source, path.name, "exec")
            assert ast.dump(ast.parse(mutant.source)) != ast.dump(ast.parse(source))


def test_the_fixture_exercises_every_operator() -> None:
    found = {
        m.operator
        for path in sorted((TINYPROJ / "tinyproj").glob("*.py"))
        for m in mutants(path.read_text(), path.name)
    }
    assert found == set(OPERATORS)


def test_the_same_seed_draws_the_same_mutants_and_another_seed_others() -> None:
    source = (TINYPROJ / "tinyproj" / "stats.py").read_text()

    def drawn(seed: int) -> list[str]:
        return [m.description for m in mutants(source, "s.py", seed=seed, per_function=2)]

    assert drawn(1) == drawn(1)
    assert any(drawn(seed) != drawn(1) for seed in range(2, 8))
    everything = [m.description for m in mutants(source, "s.py")]
    assert set(drawn(1)) <= set(everything)


# ------------------------------------------------------------- issues and yield, no Docker
def test_the_failure_report_strikes_the_changed_lines() -> None:
    from sandboxes.swe_container import SuiteRun
    from synth.swe_tasks import failure_report

    original = "def f(a):\n    return a + 1\n"
    mutated = "def f(a):\n    return a + 2\n"
    run = SuiteRun(
        exit_code=1,
        outcomes={"t.T.test_f": "fail"},
        failures={"t.T.test_f": "  File 'm.py', line 2\n    return a + 2\nAssertionError: 3 != 2"},
        output="",
        timed_out=False,
        duration_s=0.1,
    )
    report = failure_report(("t.T.test_f",), run, original, mutated)
    assert "AssertionError: 3 != 2" in report and "t.T.test_f" in report
    assert "return a + 2" not in report


def test_swe_yield_is_kept_over_tried() -> None:
    from collections import Counter

    from synth.swe_tasks import swe_yield

    assert swe_yield([], Counter()) == 0.0
    assert swe_yield([object()] * 3, Counter({"no_failing_test": 1})) == 0.75


# ----------------------------------------------------------------- with the SWE image
@pytest.fixture(scope="module")
def swe_image(sandbox_image: str) -> Iterator[str]:
    from sandboxes.docker import engine
    from sandboxes.swe_image import ProjectSource, build_swe_image

    report = build_swe_image([ProjectSource("tinyproj", TINYPROJ)], IMAGE, base=sandbox_image)
    assert report.tag == IMAGE, report.rejected
    yield IMAGE
    engine().images.remove(IMAGE, force=True)


@pytest.fixture(scope="module")
def stats_tasks(swe_image: str) -> tuple[list, object]:
    """Every mutant of stats.py run; no generator (plain issues)."""
    import asyncio

    from synth.swe_tasks import build_swe_tasks

    return asyncio.run(
        build_swe_tasks(
            "tinyproj", None, image=swe_image, files=["tinyproj/stats.py"], per_function=None
        )
    )


@pytest.mark.integration
def test_every_mutant_tried_is_kept_or_dropped_with_a_reason(stats_tasks) -> None:
    from synth.swe_tasks import DROP_REASONS, swe_yield

    source = (TINYPROJ / "tinyproj" / "stats.py").read_text()
    tasks, dropped = stats_tasks
    assert len(tasks) + sum(dropped.values()) == len(list(mutants(source, "tinyproj/stats.py")))
    assert tasks and set(dropped) <= set(DROP_REASONS)
    assert 0 < swe_yield(tasks, dropped) <= 1


@pytest.mark.integration
async def test_kept_tasks_fail_on_the_mutant_and_pass_on_the_original(stats_tasks) -> None:
    import asyncio

    from sandboxes.swe_container import RepoContainer

    tasks, _ = stats_tasks
    original = (TINYPROJ / "tinyproj" / "stats.py").read_text()
    box = await asyncio.to_thread(RepoContainer.start, "tinyproj", image=IMAGE)
    try:
        for task in tasks[:4]:
            assert task.failing_tests and task.mutated_source != original
            await asyncio.to_thread(box.write, task.path, task.mutated_source)
            broken = await asyncio.to_thread(box.run_tests, task.failing_tests)
            assert broken.not_passing(task.failing_tests) == list(task.failing_tests)
            await asyncio.to_thread(box.write, task.path, original)
            fixed = await asyncio.to_thread(box.run_tests, task.failing_tests)
            assert fixed.not_passing(task.failing_tests) == []
    finally:
        await asyncio.to_thread(box.close)


@pytest.mark.integration
def test_a_kept_task_becomes_a_task_spec_with_its_check(stats_tasks) -> None:
    tasks, _ = stats_tasks
    spec = tasks[0].task_spec("agent-swe")
    assert spec.source == "mutation" and spec.environment == "docker"
    assert spec.origin is not None and spec.origin.startswith("tinyproj:stats.")
    assert spec.checks.repo is not None
    assert spec.checks.repo.failing_tests == list(tasks[0].failing_tests)
    assert spec.initial_state["files"] == {tasks[0].path: tasks[0].mutated_source}
    assert tasks[0].issue in spec.user_goal


@pytest.mark.integration
def test_a_plain_issue_names_the_tests_and_never_the_mutated_line(stats_tasks) -> None:
    from synth.swe_tasks import changed_lines

    tasks, _ = stats_tasks
    original = (TINYPROJ / "tinyproj" / "stats.py").read_text()
    for task in tasks:
        assert task.failing_tests[0] in task.issue
        for line in changed_lines(original, task.mutated_source):
            assert line not in task.issue, (task.description, task.issue)


@pytest.mark.integration
async def test_a_mutant_that_loops_forever_is_dropped_for_its_timeout(swe_image: str) -> None:
    from synth.swe_tasks import build_swe_tasks

    tasks, dropped = await build_swe_tasks(
        "tinyproj",
        None,
        image=swe_image,
        files=["tinyproj/numbers.py"],
        per_function=None,
        mutant_timeout_s=3.0,
    )
    assert dropped["timeout"] >= 1  # `number >= base` flipped to `number < base`
    assert tasks


@pytest.mark.integration
async def test_the_generator_writes_the_issue_from_the_test_output_only(swe_image: str) -> None:
    from llm import ChatClient
    from llm.testing import ScriptedEndpoint
    from synth.swe_tasks import build_swe_tasks

    reply = json.dumps({"title": "mean() is wrong", "body": "mean([5]) returns 6.0, not 5."})
    async with ScriptedEndpoint([reply] * 10) as server, ChatClient(server.endpoint()) as client:
        tasks, _ = await build_swe_tasks(
            "tinyproj",
            client,
            image=swe_image,
            files=["tinyproj/stats.py"],
            per_function=None,
            max_mutants=2,  # mean: `== 0` -> `!= 0`, then `total = 0` -> `total = 1`
        )
    assert [t.description for t in tasks] == ["line 6: == -> !=", "line 8: 0 -> 1"]
    prompts = [str(r["messages"][-1]["content"]) for r in server.requests]
    assert len(prompts) == 2
    assert "tests.test_stats.MeanTest.test_mean_of_one" in prompts[1]
    assert "AssertionError: 6.0 != 5" in prompts[1]
    assert "total = 1" not in prompts[1] and "total = 0" not in prompts[1]
    assert "len(values) != 0" not in prompts[0]
    assert "ValueError: mean of an empty list" in prompts[0]
    assert tasks[1].issue == "mean() is wrong\n\nmean([5]) returns 6.0, not 5."


@pytest.mark.integration
async def test_a_failing_generator_falls_back_to_a_plain_issue(swe_image: str) -> None:
    from llm import ChatClient
    from llm.testing import Faults, ScriptedEndpoint
    from synth.swe_tasks import build_swe_tasks

    faults = Faults(rates={"500": 1.0})
    async with (
        ScriptedEndpoint(faults=faults) as server,
        ChatClient(server.endpoint(max_retries=0)) as client,
    ):
        tasks, _ = await build_swe_tasks(
            "tinyproj",
            client,
            image=swe_image,
            files=["tinyproj/stats.py"],
            per_function=None,
            max_mutants=2,
        )
    assert server.requests, "the generator was asked"
    issue = tasks[1].issue
    assert "tests.test_stats.MeanTest.test_mean_of_one" in issue
    assert "AssertionError: 6.0 != 5" in issue
    assert "total = 1" not in issue


@pytest.mark.integration
@pytest.mark.slow
async def test_a_real_project_from_pypi_yields_tasks(sandbox_image: str, tmp_path: Path) -> None:
    """more-itertools from the sdist cache the set-up fills
    (`python -m sandboxes build-swe-image`); nothing is downloaded here."""
    from sandboxes.docker import engine
    from sandboxes.swe_image import build_from_pypi
    from synth.swe_tasks import build_swe_tasks

    tag = "summit-swe-test-pypi:latest"
    report = build_from_pypi(["more-itertools==10.5.0"], tag=tag, fetch=False)
    if report.tag is None:
        why = f"no more-itertools sdist cached: {report.rejected}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    try:
        assert report.accepted["more-itertools"] > 500
        tasks, dropped = await build_swe_tasks(
            "more-itertools", None, image=tag, per_function=1, max_mutants=3, seed=3
        )
        assert len(tasks) + sum(dropped.values()) == 3
        assert tasks and all(t.failing_tests for t in tasks)
    finally:
        engine().images.remove(tag, force=True)
