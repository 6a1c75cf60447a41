"""The tasks stage: per agent, tasks of graded difficulty, each with its own rubric.

Executable and Docker agents get procedural tasks with computed checks
(:mod:`synth.verifiable`); simulated and MCP agents get tasks written by the generator
model from the agent's tools, in the :class:`GeneratedTask` schema. Every task carries a
``task`` rubric built from its success criteria (the first one is a hard gate) and a
criterion on the expected tool use. A task the generator fails to write is reported by
the caller as a generation failure; it never becomes a half-made task. A written task
whose goal or success criteria are degenerate text (:func:`rubrics.degenerate.degeneracy`)
is such a failure too (:class:`DegenerateTask`, counted in the manifest as
``tasks_degenerate``): its criteria would become the judge's rubric.
"""

from __future__ import annotations

import asyncio
import random
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from llm import ChatClient, Message
from rubrics import Criterion, Rubric
from rubrics.degenerate import REASONS, degeneracy
from synth.schema import AgentSpec, Difficulty, TaskSpec, stable_id
from synth.templates import personas, render
from synth.verifiable import TOOLSET_TASKS, TaskDraft, code_task

DIFFICULTY_TEXT: dict[str, str] = {
    "single": "one tool call answers it",
    "multi_step": "several calls where later calls use results of earlier ones",
    "clarify": "the first message lacks a fact the assistant must ask the user for",
}


class DegenerateTask(ValueError):
    """The generator answered a task whose text is degenerate; it is not used."""


Short = Annotated[str, StringConstraints(max_length=160)]
"""A fact, a criterion or a state value: bounded, so that constrained decoding closes the
string (a small model otherwise keeps writing one until its token budget runs out)."""
Name = Annotated[str, StringConstraints(max_length=64)]
Scalar = Short | int | float | bool | None
StateRecord = Annotated[dict[str, Scalar], Field(max_length=8)]
StateValue = Scalar | StateRecord | Annotated[list[Scalar | StateRecord], Field(max_length=8)]
"""A value of a generated initial state: a scalar, a flat record, or a short list of them
(records keyed by type, as the prompt asks); deeper nesting is the tool simulator's to add."""


class GeneratedTask(BaseModel):
    """What the generator model answers for one task. Every string, list and mapping is
    bounded but the keys (llguidance does not implement ``propertyNames``): the schema is
    the grammar the generator decodes under, and an unbounded one let a small model spend
    its whole token budget on one value."""

    model_config = ConfigDict(extra="forbid")
    user_goal: str = Field(min_length=5, max_length=400)
    hidden_info: dict[str, Short] = Field(default_factory=dict, max_length=4)
    success_criteria: list[Short] = Field(min_length=1, max_length=4)
    expected_tools: list[Name] = Field(default_factory=list, max_length=6)
    initial_state: dict[str, StateValue] = Field(default_factory=dict, max_length=6)


def task_rubric(task_id: str, draft: TaskDraft) -> Rubric:
    """The task's own rubric: its success criteria (the first gates) and expected tool use."""
    criteria = [
        Criterion(
            id=f"success_{i + 1}",
            description=text,
            scale="binary",
            mandatory=i == 0,
            weight=2.0 if i == 0 else 1.0,
        )
        for i, text in enumerate(draft.success_criteria)
    ]
    if draft.expected_tools:
        criteria.append(
            Criterion(
                id="tool_use",
                description="The assistant used the right tools "
                f"({', '.join(draft.expected_tools)}) with arguments grounded in what the "
                "user said or earlier tool results.",
                scale="likert-5",
            )
        )
    return Rubric(
        id=f"task.{task_id.removeprefix('task-')}",
        kind="task",
        description=f"Success criteria of {task_id}: {draft.user_goal[:120]}",
        criteria=criteria,
    )


async def make_tasks(
    agent: AgentSpec, count: int, difficulties: list[Difficulty], client: ChatClient, seed: int
) -> tuple[list[TaskSpec], list[str]]:
    """``count`` tasks for ``agent``, and one line per task that could not be written.

    The tasks are written concurrently (they are independent), in order of index."""

    async def one(index: int) -> TaskSpec | str:
        difficulty = difficulties[index % len(difficulties)]
        task_id = stable_id("task", agent.id, index, seed)
        rng = random.Random(task_id)
        user_persona = rng.choice(personas()["users"])
        try:
            draft = await _draft(agent, difficulty, user_persona, rng, client)
        except Exception as exc:  # noqa: BLE001 - one unwritable task is reported, not fatal
            return f"{task_id}: {type(exc).__name__}: {exc}"[:300]
        return TaskSpec(
            id=task_id,
            agent_id=agent.id,
            domain=agent.domain,
            difficulty=difficulty,
            environment=agent.environment,
            user_goal=draft.user_goal,
            user_persona=user_persona,
            hidden_info=draft.hidden_info,
            initial_state=draft.initial_state,
            rubric=task_rubric(task_id, draft),
            expected_tools=draft.expected_tools,
            checks=draft.checks,
        )

    done = await asyncio.gather(*(one(index) for index in range(count)))
    tasks = [t for t in done if isinstance(t, TaskSpec)]
    return tasks, [f for f in done if isinstance(f, str)]


async def _draft(
    agent: AgentSpec,
    difficulty: Difficulty,
    user_persona: str,
    rng: random.Random,
    client: ChatClient,
) -> TaskDraft:
    if agent.environment == "executable" and agent.toolset in TOOLSET_TASKS:
        return TOOLSET_TASKS[agent.toolset](rng, difficulty)
    if agent.environment == "docker":
        return code_task(rng, difficulty)
    prompt = render(
        "task",
        agent=agent,
        difficulty=difficulty,
        difficulty_text=DIFFICULTY_TEXT[difficulty],
        user_persona=user_persona,
    )
    answer = await client.complete_json(
        [Message(role="user", content=prompt)],
        GeneratedTask,
        seed=rng.randrange(2**31),
        max_tokens=700,
    )
    problem = task_problem(answer, prompt)
    if problem:
        raise DegenerateTask(problem)
    known = {t.name for t in agent.tools}
    return TaskDraft(
        **answer.model_dump(exclude={"expected_tools"}),
        expected_tools=[name for name in answer.expected_tools if name in known],
    )


def task_problem(task: GeneratedTask, request: str) -> str | None:
    """What makes a generated task unusable (``"user_goal is degenerate (no_language)"``),
    or ``None``: its goal held to every check, each success criterion to all but the echo."""
    reason = degeneracy(task.user_goal, prompt=request, checks=REASONS)
    if reason:
        return f"user_goal is degenerate ({reason})"
    for index, text in enumerate(task.success_criteria):
        reason = degeneracy(text, checks=REASONS)
        if reason:
            return f"success_criteria[{index}] is degenerate ({reason})"
    return None
