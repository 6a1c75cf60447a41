"""Executable bank tasks and a scripted agent that solves the ones it is told to, for the
tests of rl.trials, rl.rejection and rl.agentic_eval (a real loopback server, no mocks)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from llm.testing import Reply, call
from sandboxes.toolsets import TOOLSETS
from synth.schema import AgentSpec, Difficulty, TaskSpec, stable_id
from synth.tasks import task_rubric
from synth.verifiable import TOOLSET_TASKS

BANK = AgentSpec(
    id="agent-bank",
    name="Bank helper",
    domain="bank",
    environment="executable",
    system_prompt="You move money between the user's accounts with the tools, then say so.",
    persona="a careful bank clerk",
    tools=TOOLSETS["bank"].specs(),
    toolset="bank",
)
GOAL = re.compile(r"Transfer ([\d.]+) from ([\w-]+) to ([\w-]+)")


def bank_tasks(count: int, difficulty: Difficulty = "single") -> list[TaskSpec]:
    """``count`` single-transfer bank tasks whose expected final state decides them."""
    tasks = []
    for index in range(count):
        task_id = stable_id("task", "bank-test", index)
        draft = TOOLSET_TASKS["bank"](random.Random(task_id), "single")
        tasks.append(
            TaskSpec(
                id=task_id,
                agent_id=BANK.id,
                domain="bank",
                difficulty=difficulty,
                environment="executable",
                user_goal=draft.user_goal,
                initial_state=draft.initial_state,
                rubric=task_rubric(task_id, draft),
                expected_tools=draft.expected_tools,
                checks=draft.checks,
            )
        )
    return tasks


def write_source(
    folder: Path, tasks: list[TaskSpec], agents: tuple[AgentSpec, ...] = (BANK,)
) -> dict[str, str]:
    """The tasks and agents as JSONL files in ``folder``; the task source block naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    items: Sequence[AgentSpec | TaskSpec]
    for name, items in (("agents.jsonl", agents), ("tasks.jsonl", tasks)):
        lines = "".join(json.dumps(i.model_dump(mode="json")) + "\n" for i in items)
        (folder / name).write_text(lines)
    return {"agents": str(folder / "agents.jsonl"), "tasks": str(folder / "tasks.jsonl")}


class BankAgent:
    """Responder for ``ScriptedEndpoint`` playing every role: the user is satisfied after
    the first answer; the agent transfers what the goal says, except for goals in
    ``wrong`` (one more than asked) and, in ``flaky``, on odd seeds; then it says it is done.
    ``seeds`` records the seed of every first agent request, by goal."""

    def __init__(self, wrong: Collection[str] = (), flaky: Collection[str] = ()) -> None:
        self.wrong, self.flaky = set(wrong), set(flaky)
        self.seeds: dict[str, list[int]] = {}

    def __call__(self, request: dict[str, Any]) -> Reply:
        schema = (request.get("response_format") or {}).get("json_schema") or {}
        if schema.get("name") == "UserTurn":
            return Reply(content=json.dumps({"message": "Thanks.", "status": "satisfied"}))
        if not request.get("tools"):
            return Reply(content="pong")
        messages = request["messages"]
        if messages[-1]["role"] == "tool":
            return Reply(content="Done: I made the transfer you asked for.")
        goal = messages[1]["content"]
        found = GOAL.search(goal)
        assert found, goal
        self.seeds.setdefault(goal, []).append(request["seed"])
        amount = float(found[1])
        if goal in self.wrong or (goal in self.flaky and request["seed"] % 2):
            amount += 1
        arguments = {"source": found[2], "destination": found[3], "amount": amount}
        return Reply(tool_calls=[call("transfer", arguments)])


def role(url: str) -> dict[str, Any]:
    """A role block on the scripted server (the ``vllm`` preset needs no key)."""
    return {"preset": "vllm", "base_url": url}
