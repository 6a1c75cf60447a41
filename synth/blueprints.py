"""Task blueprints validated by execution: the generator writes the task and its answer.

For an environment whose state can be read (an executable tool set, the tool simulator's
JSON state, an MCP server with a state reader), the generator model writes a
:class:`Blueprint`: the user's goal, persona, hidden facts, success criteria and the
ground-truth sequence of tool calls. The calls are replayed in a fresh episode of the
environment from the task's initial state, and what changed becomes the task's
``checks.expected_state`` — the check is what execution produced, not what a model
claims. A blueprint is rejected, with one reason of :data:`REJECT_REASONS`, when it
calls a tool the agent does not have (``unknown_tool``), a call's arguments do not fit
its schema (``invalid_arguments``), a call fails (``call_failed``), a writing call or the
whole sequence changes nothing (``no_effect``), its calls do not fit its difficulty
(``difficulty_mismatch``: one call for ``single``, several for ``multi_step``, a hidden
fact the calls use for ``clarify``), the judge finds the goal and the calls disagree
(``judge_disagrees``, or ``judge_error`` when it gives no verdict), it repeats an earlier
blueprint's calls or goal (``duplicate``), or it could not be written
(``generation_failed``, ``degenerate``). The tasks stage counts the reasons and falls
back to the templates (:mod:`synth.verifiable`) or to a judge-checked task.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llm import ChatClient, FunctionCall, Message, ToolCall
from rubrics.degenerate import REASONS, degeneracy
from sandboxes.base import Environment
from synth.bounded import Name, Short, StateValue
from synth.schema import AgentSpec, BlueprintCounts, Checks, Difficulty
from synth.templates import render
from synth.verifiable import TaskDraft

REJECT_REASONS = (
    "generation_failed",
    "degenerate",
    "unknown_tool",
    "invalid_arguments",
    "call_failed",
    "no_effect",
    "difficulty_mismatch",
    "judge_disagrees",
    "judge_error",
    "duplicate",
)
_SCHEMA_ERRORS = ("invalid arguments", "arguments are not valid JSON", "arguments must be")
"""How :meth:`sandboxes.base.Environment._check` starts an error about the arguments."""


class BlueprintCall(BaseModel):
    """One ground-truth call: a tool and its arguments."""

    model_config = ConfigDict(extra="forbid")
    tool: Name
    arguments: dict[str, StateValue] = Field(default_factory=dict, max_length=8)


class Blueprint(BaseModel):
    """What the generator answers for one blueprint (bounded like ``GeneratedTask``)."""

    model_config = ConfigDict(extra="forbid")
    user_goal: str = Field(min_length=5, max_length=400)
    user_persona: Short
    hidden_info: dict[str, Short] = Field(default_factory=dict, max_length=4)
    success_criteria: list[Short] = Field(min_length=1, max_length=4)
    actions: list[BlueprintCall] = Field(min_length=1, max_length=6)


class StatefulBlueprint(Blueprint):
    """A blueprint that also writes the initial state (the tool simulator's environments,
    whose records are whatever the task says they are)."""

    initial_state: dict[str, StateValue] = Field(default_factory=dict, max_length=6)


class Agreement(BaseModel):
    """The judge's answer: do the goal and the calls agree?"""

    model_config = ConfigDict(extra="forbid")
    agree: bool
    reason: Short


class BlueprintRejected(ValueError):
    """A blueprint that is not used; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class BlueprintPlan:
    """What the tasks stage needs to write blueprints for one agent's tasks.

    ``environment(seed)`` makes a fresh episode environment for the agent; ``state(rng)``
    the initial state the generator is shown (``None``: the generator writes it, as for
    the tool simulator). ``seen`` holds the signatures of blueprints already kept (one
    worker's, across its agents), ``counts`` what became of the blueprints written."""

    environment: Callable[[int], Environment]
    judge: ChatClient | None
    state: Callable[[random.Random], Awaitable[dict[str, Any]]] | None
    seen: set[str] = field(default_factory=set)
    counts: BlueprintCounts = field(default_factory=BlueprintCounts)

    def claim(self, draft: TaskDraft) -> bool:
        """Keep ``draft`` unless a blueprint kept before has its calls or its goal; then
        it is counted as a ``duplicate`` reject instead."""
        keys = signature(draft.user_goal, draft.checks.actions or [])
        if keys & self.seen:
            self.counts.kept -= 1
            self.counts.reject("duplicate")
            return False
        self.seen |= keys
        return True


async def write_blueprint(
    agent: AgentSpec,
    difficulty: Difficulty,
    difficulty_text: str,
    rng: random.Random,
    client: ChatClient,
    plan: BlueprintPlan,
) -> TaskDraft:
    """A task draft from a validated blueprint, or :class:`BlueprintRejected`."""
    plan.counts.tried += 1
    try:
        draft = await _validated(agent, difficulty, difficulty_text, rng, client, plan)
    except BlueprintRejected as rejected:
        plan.counts.reject(rejected.reason)
        raise
    plan.counts.kept += 1
    return draft


async def _validated(
    agent: AgentSpec,
    difficulty: Difficulty,
    difficulty_text: str,
    rng: random.Random,
    client: ChatClient,
    plan: BlueprintPlan,
) -> TaskDraft:
    state = await plan.state(rng) if plan.state is not None else None
    schema = Blueprint if state is not None else StatefulBlueprint
    prompt = render(
        "blueprint",
        agent=agent,
        difficulty=difficulty,
        difficulty_text=difficulty_text,
        state=json.dumps(state, ensure_ascii=False)[:3000] if state is not None else None,
    )
    seed = rng.randrange(2**31)
    try:
        blueprint = await client.complete_json(
            [Message(role="user", content=prompt)], schema, seed=seed, max_tokens=700
        )
    except Exception as exc:
        raise BlueprintRejected("generation_failed", f"{type(exc).__name__}: {exc}") from exc
    if state is None:
        state = getattr(blueprint, "initial_state", {})
    check_text(blueprint, prompt)
    check_shape(blueprint, difficulty, set(_tool_names(agent)))
    env = plan.environment(seed)
    expected, results = await replay(env, state, blueprint.actions)
    if plan.judge is not None:
        await check_agreement(plan.judge, blueprint, results, seed)
    return TaskDraft(
        user_goal=blueprint.user_goal,
        hidden_info=blueprint.hidden_info,
        success_criteria=blueprint.success_criteria,
        expected_tools=list(dict.fromkeys(a.tool for a in blueprint.actions)),
        initial_state=state,
        checks=Checks(
            expected_state=expected,
            actions=[a.model_dump() for a in blueprint.actions],
        ),
        user_persona=blueprint.user_persona,
        source="blueprint",
        origin=f"blueprint:{_digest([a.model_dump() for a in blueprint.actions])}",
    )


def _tool_names(agent: AgentSpec) -> list[str]:
    return [t.name for t in agent.tools]


def check_text(blueprint: Blueprint, prompt: str) -> None:
    """The goal and criteria must be language, as for a generated task."""
    reason = degeneracy(blueprint.user_goal, prompt=prompt, checks=REASONS)
    if reason:
        raise BlueprintRejected("degenerate", f"user_goal is degenerate ({reason})")
    for index, text in enumerate(blueprint.success_criteria):
        reason = degeneracy(text, checks=REASONS)
        if reason:
            raise BlueprintRejected(
                "degenerate", f"success_criteria[{index}] is degenerate ({reason})"
            )


def check_shape(blueprint: Blueprint, difficulty: Difficulty, tools: set[str]) -> None:
    """Tools the agent has, and calls that fit the difficulty."""
    for index, action in enumerate(blueprint.actions):
        if action.tool not in tools:
            raise BlueprintRejected(
                "unknown_tool",
                f"call {index + 1} names {action.tool!r}; the agent's tools: "
                f"{', '.join(sorted(tools))}",
            )
    calls = len(blueprint.actions)
    if difficulty == "single" and calls != 1:
        raise BlueprintRejected("difficulty_mismatch", f"a single-call task with {calls} calls")
    if difficulty == "multi_step" and calls < 2:
        raise BlueprintRejected("difficulty_mismatch", "a multi-step task with one call")
    if difficulty == "clarify":
        used = json.dumps([a.arguments for a in blueprint.actions], ensure_ascii=False).lower()
        goal = blueprint.user_goal.lower()
        needed = [
            value
            for value in blueprint.hidden_info.values()
            if value.strip() and value.lower() in used and value.lower() not in goal
        ]
        if not needed:
            raise BlueprintRejected(
                "difficulty_mismatch",
                "a clarify task whose calls use no hidden fact missing from the goal",
            )


async def replay(
    env: Environment, initial_state: dict[str, Any], actions: list[BlueprintCall]
) -> tuple[dict[str, Any], list[str]]:
    """Run ``actions`` in a fresh episode from ``initial_state``: the expected state (what
    changed, with its final values; a removed key as ``null``) and each call's result."""
    results: list[str] = []
    try:
        await env.reset({"initial_state": initial_state})
        start = await env.state()
        for index, action in enumerate(actions):
            if action.tool not in env.tools:
                raise BlueprintRejected(
                    "unknown_tool", f"call {index + 1}: the environment has no {action.tool!r}"
                )
            arguments = json.dumps(action.arguments, ensure_ascii=False)
            call = ToolCall(
                id=f"bp_{index}", function=FunctionCall(name=action.tool, arguments=arguments)
            )
            message = await env.call(call)
            record = env.records[-1]
            if record.error is not None:
                schema_error = record.error.startswith(_SCHEMA_ERRORS)
                reason = "invalid_arguments" if schema_error else "call_failed"
                raise BlueprintRejected(reason, f"call {index + 1} {action.tool}: {record.error}")
            if env.tools[action.tool].side_effect == "write" and not record.state_diff:
                raise BlueprintRejected(
                    "no_effect", f"call {index + 1} {action.tool} writes but changed nothing"
                )
            results.append(str(message.content))
        final = await env.state()
    finally:
        await env.close()
    expected = changes(start, final)
    if not expected:
        raise BlueprintRejected("no_effect", "the calls change nothing in the state")
    return expected, results


def changes(before: Any, after: Any) -> Any:
    """What ``after`` holds that ``before`` did not, as an expected state: changed keys
    with their new values, objects compared key by key, a removed key as ``None``."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return after
    out: dict[str, Any] = {}
    for key in after:
        if key not in before:
            out[key] = after[key]
        elif before[key] != after[key]:
            out[key] = changes(before[key], after[key])
    for key in before:
        if key not in after:
            out[key] = None
    return out


async def check_agreement(
    judge: ChatClient, blueprint: Blueprint, results: list[str], seed: int
) -> None:
    """The judge reads the goal, the hidden facts and the calls with their results, and
    says whether the calls do what the user asked (no more, no less)."""
    prompt = render(
        "blueprint_check",
        blueprint=blueprint,
        calls=[
            (a.tool, json.dumps(a.arguments, ensure_ascii=False), r[:300])
            for a, r in zip(blueprint.actions, results, strict=True)
        ],
    )
    try:
        verdict = await judge.complete_json(
            [Message(role="user", content=prompt)], Agreement, seed=seed, max_tokens=200
        )
    except Exception as exc:
        raise BlueprintRejected("judge_error", f"{type(exc).__name__}: {exc}") from exc
    if not verdict.agree:
        raise BlueprintRejected("judge_disagrees", verdict.reason or "no reason given")


def signature(goal: str, actions: list[dict[str, Any]]) -> set[str]:
    """Keys under which two blueprints are the same task: their calls, their goal's words."""
    words = " ".join(re.findall(r"\w+", goal.lower()))
    return {f"calls:{_digest(actions)}", f"goal:{_digest(words)}"}


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
