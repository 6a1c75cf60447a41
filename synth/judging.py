"""The judge stage: a finished trajectory becomes an accepted or rejected :class:`Record`.

Order of authority: a roll-out that ended in an error is rejected as such; a degenerate
trajectory (loops, made-up tool output, an empty, truncated or letterless final answer:
:mod:`synth.filters`) is rejected by rule with its own reason, before anything that could
be fooled by it; a task with a
verifiable check (expected final state, unit tests) is decided by the check alone — the
LLM judge cannot overrule ground truth; every other task is judged by the rubrics judge
against the task's own rubric plus the configured ones (``trajectory`` by default). A
judge that fails — including one whose reasoning is degenerate or, when very short, names
nothing of its criterion — is a rejection with reason ``judge_error``, never a silent score.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

from llm import ChatClient
from rubrics import JudgeError, RubricSet, judge, library
from sandboxes.code import extract_code, run_python_tests
from sandboxes.docker import DockerSandbox
from sandboxes.executable import state_differences
from synth.config import JudgeConfig
from synth.filters import screen
from synth.schema import Record, TaskSpec, Trajectory


@cache
def _library() -> RubricSet:
    return library()


def _record(task: TaskSpec, trajectory: Trajectory, **fields: object) -> Record:
    return Record(
        task_id=task.id,
        agent_id=task.agent_id,
        domain=task.domain,
        environment=task.environment,
        difficulty=task.difficulty,
        trajectory=trajectory,
        **fields,
    )


def final_code(trajectory: Trajectory) -> str:
    """The agent's answer code: its last reply with code, else the last code it ran."""
    for message in reversed(trajectory.messages):
        if message.get("role") == "assistant" and "def " in str(message.get("content") or ""):
            return extract_code(str(message["content"]))
    return str(trajectory.final_state.get("last_code") or "")


async def decide(
    task: TaskSpec,
    trajectory: Trajectory,
    client: ChatClient,
    settings: JudgeConfig | None = None,
    *,
    box: DockerSandbox | None = None,
) -> Record:
    """Accept or reject ``trajectory``; see the module docstring for who decides.
    ``settings`` is the ``judge`` block of the synthesis config (its defaults when unset)."""
    ruled = _failed(task, trajectory)
    if ruled is not None:
        return ruled
    if task.checks.expected_state is not None:
        return _by_state(task, trajectory, task.checks.expected_state)
    if task.checks.repo is not None:
        return _by_repository(task, trajectory)
    if task.checks.tests is not None:
        if box is None:
            raise ValueError("a task with tests needs a Docker sandbox")
        return await _by_tests(task, trajectory, box, task.checks.tests)
    return await _by_judge(task, trajectory, client, settings or JudgeConfig())


def _failed(task: TaskSpec, trajectory: Trajectory) -> Record | None:
    """The rejection of a roll-out that ended in an error or of degenerate text, by rule."""
    if trajectory.stop_reason.startswith("error"):
        return _record(
            task,
            trajectory,
            outcome="rejected",
            reason="rollout_error",
            detail=trajectory.stop_reason,
        )
    degenerate = screen(trajectory, task.prompt())
    if degenerate is None:
        return None
    return _record(
        task,
        trajectory,
        outcome="rejected",
        reason=degenerate.reason,
        detail=degenerate.detail[:500],
    )


def _by_state(task: TaskSpec, trajectory: Trajectory, expected: dict[str, Any]) -> Record:
    """Decided by the final state alone."""
    problems = state_differences(trajectory.final_state, expected)
    return _record(
        task,
        trajectory,
        outcome="rejected" if problems else "accepted",
        reason="state_mismatch" if problems else "",
        detail="; ".join(problems)[:500],
        verified=not problems,
    )


def _by_repository(task: TaskSpec, trajectory: Trajectory) -> Record:
    """Decided by the project's test suite, run in the episode's container when it ended
    (``final_state.reward``: the tests the bug broke pass and no other test fails)."""
    reward = trajectory.final_state.get("reward")
    reason = str(trajectory.final_state.get("reward_reason") or "")
    if reward is None:
        return _record(
            task,
            trajectory,
            outcome="rejected",
            reason="rollout_error",
            detail="the episode ended without running the project's tests",
        )
    fixed = float(reward) >= 1.0
    return _record(
        task,
        trajectory,
        outcome="accepted" if fixed else "rejected",
        reason="" if fixed else "tests_failed",
        detail=reason[:500],
        verified=fixed,
    )


async def _by_tests(
    task: TaskSpec, trajectory: Trajectory, box: DockerSandbox, tests: str
) -> Record:
    """Decided by the task's unit tests, run on the agent's final code in the sandbox."""
    run = await asyncio.to_thread(
        run_python_tests, box, final_code(trajectory), tests, task.checks.entry_point
    )
    return _record(
        task,
        trajectory,
        outcome="accepted" if run.ok else "rejected",
        reason="" if run.ok else "tests_failed",
        detail=run.stderr[-500:],
        verified=run.ok,
    )


async def _by_judge(
    task: TaskSpec, trajectory: Trajectory, client: ChatClient, settings: JudgeConfig
) -> Record:
    """Decided by the rubrics judge: the task's own rubric and the configured ones."""
    extra = {r.id: r for r in settings.own_rubrics()}
    rubric_set = RubricSet({**_library().rubrics, **extra, task.rubric.id: task.rubric})
    try:
        verdict = await judge(
            task.prompt(),
            trajectory.messages,
            [task.rubric.id, *settings.rubrics],
            client,
            rubric_set=rubric_set,
            threshold=settings.threshold,
            samples=settings.samples,
            max_tokens=settings.max_tokens,
            reasoning_chars=settings.reasoning_chars,
            require_addressed=True,
        )
    except JudgeError as exc:
        return _record(
            task, trajectory, outcome="rejected", reason="judge_error", detail=str(exc)[:500]
        )
    detail = ", ".join(verdict.failed_gates) or f"score {verdict.overall:.2f} < {verdict.threshold}"
    return _record(
        task,
        trajectory,
        outcome="accepted" if verdict.passed else "rejected",
        reason="" if verdict.passed else "judge_failed",
        detail="" if verdict.passed else detail,
        score=verdict.overall,
        verdict=verdict.model_dump(mode="json"),
    )
