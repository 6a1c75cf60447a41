"""The tasks stage: per agent, tasks of graded difficulty, each with its own rubric.

Executable, simulated and (state-reading) MCP agents' tasks are first written as
blueprints whose ground-truth calls are replayed into their checks
(:mod:`synth.blueprints`), where the run asks for them. Without one, executable agents of
the built-in tool sets get procedural tasks with computed checks (:mod:`synth.verifiable`),
simulated and MCP agents tasks the generator writes from the agent's tools in the
:class:`GeneratedTask` schema (checked by the judge). Docker agents' tasks are made from
coding problems (:mod:`synth.problems`, else the templates); a repository agent's are the
mutation tasks drawn for it (:mod:`synth.swe_tasks`). Every task carries a
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
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from llm import ChatClient, Message
from rubrics import Criterion, Rubric
from rubrics.degenerate import REASONS, degeneracy
from synth.agents import SWE_TOOLSET
from synth.blueprints import BlueprintPlan, BlueprintRejected, write_blueprint
from synth.bounded import Name, Short, StateValue
from synth.errors import TaskError
from synth.problems import Problem, problem_draft
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
    agent: AgentSpec,
    count: int,
    difficulties: list[Difficulty],
    client: ChatClient,
    seed: int,
    blueprints: BlueprintPlan | None = None,
    problems: Sequence[Problem | TaskSpec] = (),
) -> tuple[list[TaskSpec], list[str]]:
    """``count`` tasks for ``agent``, and one line per task that could not be written.

    With ``blueprints`` each task is first written as a blueprint validated by execution
    (:mod:`synth.blueprints`); a rejected one falls back to the template or generated task.
    A Docker agent's task ``i`` is made from ``problems[i]`` where there is one (a real
    set's or a validated generated problem), else from the templates; a repository
    agent's is ``problems[i]`` itself, a mutation task (:mod:`synth.swe_tasks`) bound to
    it, and without one it has no task ``i``.

    The tasks are written concurrently (they are independent), in order of index; a
    blueprint that repeats an earlier one (in index order, so a rerun decides alike) is
    counted as a ``duplicate`` and falls back too."""
    ids = [stable_id("task", agent.id, index, seed) for index in range(count)]
    levels = [difficulties[index % len(difficulties)] for index in range(count)]
    pairs = zip(ids, levels, strict=True)
    written = await asyncio.gather(
        *(_blueprint(agent, level, task_id, client, blueprints) for task_id, level in pairs)
    )
    if blueprints is not None:
        written = [d if d is not None and blueprints.claim(d) else None for d in written]

    async def one(
        index: int, task_id: str, difficulty: Difficulty, draft: TaskDraft | None
    ) -> TaskSpec | str:
        rng = random.Random(task_id)
        user_persona = rng.choice(personas()["users"])
        material = problems[index] if index < len(problems) else None
        try:
            made = (
                draft
                if draft is not None
                else await _draft(agent, difficulty, user_persona, rng, client, material)
            )
        except Exception as exc:  # noqa: BLE001 - one unwritable task is reported, not fatal
            return f"{task_id}: {type(exc).__name__}: {exc}"[:300]
        if isinstance(made, TaskSpec):
            return bound_task(made, task_id, agent)
        return TaskSpec(
            id=task_id,
            agent_id=agent.id,
            domain=agent.domain,
            difficulty=difficulty,
            environment=agent.environment,
            user_goal=made.user_goal,
            user_persona=made.user_persona or user_persona,
            hidden_info=made.hidden_info,
            initial_state=made.initial_state,
            rubric=task_rubric(task_id, made),
            expected_tools=made.expected_tools,
            checks=made.checks,
            source=made.source,
            origin=made.origin,
            eval_set=made.eval_set,
        )

    done = await asyncio.gather(
        *(one(i, *item) for i, item in enumerate(zip(ids, levels, written, strict=True)))
    )
    tasks = [t for t in done if isinstance(t, TaskSpec)]
    return tasks, [f for f in done if isinstance(f, str)]


def bound_task(made: TaskSpec, task_id: str, agent: AgentSpec) -> TaskSpec:
    """A task made for no agent in particular (a repository's mutation) as ``agent``'s
    task ``task_id``, its rubric renamed after it."""
    rubric = made.rubric.model_copy(update={"id": f"task.{task_id.removeprefix('task-')}"})
    update = {"id": task_id, "agent_id": agent.id, "domain": agent.domain, "rubric": rubric}
    return made.model_copy(update=update)


async def _blueprint(
    agent: AgentSpec,
    difficulty: Difficulty,
    task_id: str,
    client: ChatClient,
    plan: BlueprintPlan | None,
) -> TaskDraft | None:
    """A draft from a validated blueprint, or ``None`` (no plan, or the blueprint was
    rejected: its reason is counted in the plan and the fallback writes the task)."""
    if plan is None:
        return None
    rng = random.Random(f"{task_id}:blueprint")
    try:
        return await write_blueprint(
            agent, difficulty, DIFFICULTY_TEXT[difficulty], rng, client, plan
        )
    except BlueprintRejected:
        return None


async def _draft(
    agent: AgentSpec,
    difficulty: Difficulty,
    user_persona: str,
    rng: random.Random,
    client: ChatClient,
    material: Problem | TaskSpec | None = None,
) -> TaskDraft | TaskSpec:
    """The task without a blueprint: a repository agent's mutation task (``material``),
    a coding problem's, a template's, or one the generator writes."""
    if isinstance(material, TaskSpec):
        return material
    if agent.toolset == SWE_TOOLSET:
        raise TaskError("no repository task is left for it (the mutation pool is empty)")
    if material is not None:
        return problem_draft(material, difficulty)
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
        source="generated",
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
