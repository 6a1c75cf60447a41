"""The SWE environment on the fixture project in a real container, and its reward.

The grading rule is checked without Docker; everything else needs a Docker engine
(integration: skipped with the reason where none runs, failing instead when CI=true).
Scripted agents act through ``SWEEnvironment.call`` with real tool calls.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm import FunctionCall, ToolCall
from sandboxes.base import SandboxError
from sandboxes.swe import grade
from sandboxes.swe_container import SuiteRun, SWELimits

ROOT = Path(__file__).resolve().parents[2]
TINYPROJ = ROOT / "tests" / "fixtures" / "swe" / "tinyproj"
IMAGE = "summit-swe-test-env:latest"
STATS = "tinyproj/stats.py"
ORIGINAL = (TINYPROJ / STATS).read_text()
BUG = ("    if value < low:\n", "    if value >= low:\n")
"""clamp's first test flipped: the mutation every episode here starts from."""
MUTATED = ORIGINAL.replace(*BUG)
BROKEN = [
    "tests.test_stats.ClampTest.test_above",
    "tests.test_stats.ClampTest.test_below",
    "tests.test_stats.ClampTest.test_inside",
    "tests.test_text.ShortenTest.test_long_text_is_cut",
]


class Check:
    """What swe_reward reads of a task's check (synth.schema.RepoCheck in the pipeline)."""

    failing_tests = BROKEN


def run_of(outcomes: dict[str, str], timed_out: bool = False) -> SuiteRun:
    return SuiteRun(1, outcomes, {}, "", timed_out, 1.0)


# ------------------------------------------------------------------- grading, no Docker
def test_grade_is_one_when_the_broken_and_the_passing_tests_pass() -> None:
    score, reason = grade(run_of({"a": "pass", "b": "pass"}), ["a"], ["a", "b"])
    assert score == 1.0, reason


def test_grade_is_zero_when_a_broken_test_still_fails() -> None:
    score, reason = grade(run_of({"a": "fail", "b": "pass"}), ["a"], ["b"])
    assert score == 0.0 and "still fail: a" in reason


def test_grade_is_zero_when_a_test_that_passed_on_the_original_fails() -> None:
    score, reason = grade(run_of({"a": "pass", "b": "error"}), ["a"], ["a", "b"])
    assert score == 0.0 and "passed on the original fail: b" in reason


def test_grade_counts_a_skipped_or_missing_test_as_not_passing() -> None:
    assert grade(run_of({"a": "pass", "b": "skip"}), ["a"], ["b"])[0] == 0.0
    assert grade(run_of({"a": "pass"}), ["a"], ["b"])[0] == 0.0


def test_grade_is_zero_when_the_tests_time_out() -> None:
    score, reason = grade(run_of({}, timed_out=True), ["a"], ["a"])
    assert score == 0.0 and "timed out" in reason


# ------------------------------------------------------------------- the real container
@pytest.fixture(scope="module")
def build(sandbox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The test image: tinyproj, and a copy of it whose tests fail before any mutation."""
    from sandboxes.docker import engine
    from sandboxes.swe_image import ProjectSource, build_swe_image

    broken = tmp_path_factory.mktemp("brokenproj") / "brokenproj"
    shutil.copytree(TINYPROJ, broken)
    test = broken / "tests" / "test_stats.py"
    test.write_text(test.read_text().replace("mean([5]), 5)", "mean([5]), 6)"))
    sources = [ProjectSource("tinyproj", TINYPROJ), ProjectSource("brokenproj", broken)]
    report = build_swe_image(sources, IMAGE, base=sandbox_image)
    yield report
    engine().images.remove(IMAGE, force=True)


@pytest.fixture
async def env(build: Any) -> Any:
    from sandboxes.swe import SWEEnvironment

    environment = SWEEnvironment(IMAGE, limits=SWELimits(command_timeout_s=3, test_timeout_s=60))
    await environment.reset({"initial_state": {"project": "tinyproj", "files": {STATS: MUTATED}}})
    yield environment
    await environment.close()


async def call(env: Any, name: str, **arguments: Any) -> str:
    tool_call = ToolCall(id="c1", function=FunctionCall(name=name, arguments=json.dumps(arguments)))
    message = await env.call(tool_call)
    return str(message.content)


@pytest.mark.integration
def test_a_project_whose_tests_fail_before_mutation_is_rejected_and_the_rest_go_on(
    build: Any,
) -> None:
    assert build.tag == IMAGE
    assert build.accepted == {"tinyproj": 18}
    assert build.rejected["brokenproj"].startswith("its tests fail before mutation (1 failing")
    assert "test_mean_of_one" in build.rejected["brokenproj"]


@pytest.mark.integration
async def test_an_agent_that_applies_the_fix_gets_reward_one(env: Any) -> None:
    from sandboxes.swe import swe_reward

    answer = await call(env, "edit_file", path=STATS, old=BUG[1], new=BUG[0])
    assert not answer.startswith("error:"), answer
    score, reason = await swe_reward(env, Check())
    assert score == 1.0, reason


@pytest.mark.integration
async def test_an_agent_that_does_nothing_gets_zero(env: Any) -> None:
    from sandboxes.swe import swe_reward

    score, reason = await swe_reward(env, Check())
    assert score == 0.0 and "4 of the 4 broken tests still fail" in reason


@pytest.mark.integration
async def test_a_fix_that_breaks_another_test_gets_zero(env: Any) -> None:
    from sandboxes.swe import swe_reward

    await call(env, "edit_file", path=STATS, old=BUG[1], new=BUG[0])
    await call(env, "edit_file", path="tinyproj/text.py", old="* missing", new="* (missing - 1)")
    score, reason = await swe_reward(env, Check())
    assert score == 0.0
    assert "passed on the original fail: tests.test_text.PadTest.test_pads" in reason


@pytest.mark.integration
async def test_editing_the_tests_instead_of_the_code_gets_zero(env: Any) -> None:
    from sandboxes.swe import swe_reward

    passing = "import unittest\nclass T(unittest.TestCase):\n    def test_ok(self): pass\n"
    script = f"for f in tests/test_*.py; do printf '{passing}' > $f; done"
    await call(env, "run_shell", command=script)
    tests = json.loads(await call(env, "run_tests"))
    assert tests["failing"] == []  # the agent's own run sees nothing fail
    score, reason = await swe_reward(env, Check())
    assert score == 0.0 and "broken tests still fail" in reason


@pytest.mark.integration
async def test_run_tests_reports_the_failing_tests_and_the_end_of_the_report(env: Any) -> None:
    result = json.loads(await call(env, "run_tests"))
    assert result["exit_code"] == 1 and result["failing"] == BROKEN
    assert "AssertionError" in result["output"]
    one = json.loads(await call(env, "run_tests", target="tests.test_stats.MeanTest"))
    assert one["exit_code"] == 0 and one["passed"] == 3


@pytest.mark.integration
async def test_edit_file_with_an_absent_old_text_is_an_error_message(env: Any) -> None:
    answer = await call(env, "edit_file", path=STATS, old="no such text", new="x")
    assert answer.startswith("error: old does not occur in tinyproj/stats.py")
    assert (await env.state())["edited"] == {}


@pytest.mark.integration
async def test_edit_file_with_an_ambiguous_old_text_says_how_often_it_occurs(env: Any) -> None:
    answer = await call(env, "edit_file", path=STATS, old="if value", new="if 0")
    assert answer.startswith("error: old occurs 2 times in tinyproj/stats.py")


@pytest.mark.integration
async def test_edit_file_of_a_missing_file_is_an_error_message(env: Any) -> None:
    answer = await call(env, "edit_file", path="tinyproj/nothing.py", old="a", new="b")
    assert answer == "error: no file tinyproj/nothing.py"


@pytest.mark.integration
async def test_read_file_returns_the_mutated_text_and_line_ranges(env: Any) -> None:
    assert await call(env, "read_file", path=STATS) == MUTATED
    lines = await call(env, "read_file", path=STATS, start_line=16, end_line=17)
    assert lines == BUG[1] + "        return low\n"


@pytest.mark.integration
async def test_the_state_lists_the_edited_files_and_the_call_records_the_change(env: Any) -> None:
    assert await env.state() == {"project": "tinyproj", "edited": {}}
    await call(env, "edit_file", path=STATS, old=BUG[1], new=BUG[0])
    await call(env, "run_shell", command="echo note > NOTES.txt")
    edited = (await env.state())["edited"]
    assert sorted(edited) == ["NOTES.txt", STATS]
    first, second = env.records
    assert list(first.state_diff) == [f"/edited/{STATS}"]
    assert list(second.state_diff) == ["/edited/NOTES.txt"]


@pytest.mark.integration
async def test_a_shell_command_that_hangs_is_cut_by_the_timeout(env: Any) -> None:
    result = json.loads(await call(env, "run_shell", command="echo started; sleep 600"))
    assert result["timed_out"] and result["exit_code"] in (124, 137)
    assert result["output"] == "started\n"
    after = json.loads(await call(env, "run_shell", command="echo still here"))
    assert after == {
        "exit_code": 0,
        "timed_out": False,
        "output": "still here\n",
        "truncated": False,
    }


@pytest.mark.integration
async def test_a_test_run_that_hangs_is_cut_by_the_timeout_and_scores_zero(build: Any) -> None:
    from sandboxes.swe import SWEEnvironment, swe_reward

    hanging = ORIGINAL.replace(
        '    """The arithmetic mean; ', '    while True:\n        pass\n    """'
    )
    env = SWEEnvironment(IMAGE, limits=SWELimits(test_timeout_s=3))
    try:
        await env.reset({"initial_state": {"project": "tinyproj", "files": {STATS: hanging}}})
        result = json.loads(await call(env, "run_tests"))
        assert result["timed_out"] is True
        score, reason = await swe_reward(env, Check())
        assert score == 0.0 and "timed out" in reason
    finally:
        await env.close()


@pytest.mark.integration
async def test_long_output_comes_back_as_its_tail_marked_truncated(env: Any) -> None:
    result = json.loads(await call(env, "run_shell", command="seq 1 100000"))
    assert result["truncated"] and result["output"].endswith("99999\n100000\n")
    assert len(result["output"]) <= SWELimits().output_bytes


@pytest.mark.integration
async def test_the_container_has_no_network(env: Any) -> None:
    script = "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)\""
    result = json.loads(await call(env, "run_shell", command=script))
    assert result["exit_code"] != 0 and "unreachable" in result["output"]


@pytest.mark.integration
async def test_a_dead_container_raises_sandbox_error(env: Any) -> None:
    env.container.container.kill()
    with pytest.raises(SandboxError):
        await call(env, "run_shell", command="true")
    assert env.box is None  # given up: the next episode starts a new one


@pytest.mark.integration
async def test_a_project_the_image_lacks_is_a_sandbox_error_naming_what_it_has(build: Any) -> None:
    from sandboxes.swe import SWEEnvironment

    env = SWEEnvironment(IMAGE)
    with pytest.raises(SandboxError, match=r"no project 'nope' \(it has: tinyproj\)"):
        await env.reset({"initial_state": {"project": "nope"}})
    await env.close()


@pytest.mark.integration
async def test_close_removes_the_episode_container(build: Any) -> None:
    from sandboxes.docker import engine
    from sandboxes.swe import SWEEnvironment

    env = SWEEnvironment(IMAGE, labels={"summit.test": "swe-close"})
    await env.reset({"initial_state": {"project": "tinyproj"}})
    filters = {"label": "summit.test=swe-close"}
    assert len(engine().containers.list(all=True, filters=filters)) == 1
    await env.close()
    assert engine().containers.list(all=True, filters=filters) == []


@pytest.mark.integration
def test_the_image_command_builds_from_the_cache_and_names_what_it_rejects(
    sandbox_image: str, tmp_path: Path
) -> None:
    """Offline: an sdist missing from the cache is rejected, the local project accepted."""
    import subprocess
    import sys

    from sandboxes.docker import engine, image_exists

    tag = "summit-swe-test-cli:latest"
    command = [sys.executable, "-m", "sandboxes", "build-swe-image", "--no-fetch", "--force"]
    command += ["--projects", "nothing-here==1.0", "--local", str(TINYPROJ), "--tag", tag]
    command += ["--cache-dir", str(tmp_path)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "accepted tinyproj: 18 tests pass" in done.stdout
        assert "rejected nothing-here==1.0: no sdist in" in done.stdout
        assert f"built {tag}" in done.stdout
    finally:
        if image_exists(tag):
            engine().images.remove(tag, force=True)
