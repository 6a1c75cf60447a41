"""Blueprints validated by execution (``synth.blueprints``), and tool sets by import path.

The generator is the scripted endpoint on loopback: it reads the initial state out of
the blueprint prompt and answers a blueprint built from it, so the replay runs on the
real tool set; every reject reason is reached, and each rejected blueprint falls back.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm.testing import Reply, ScriptedEndpoint
from sandboxes.executable import ExecutableEnvironment, state_differences
from sandboxes.toolsets import BankLedger, ToolSetError, load_toolset
from synth.agents import plan_agents
from synth.blueprints import REJECT_REASONS, BlueprintCall, changes, replay
from synth.config import load_config
from synth.schema import AgentSpec, BlueprintCounts, TaskSpec
from synth.testing import ScriptedWorld, instance
from synth.tools import build_tools
from synth.worker import Worker, WorkerSettings

from .conftest import endpoints_for, small_config

HERE = Path(__file__).resolve().parent
Make = Callable[[dict[str, Any], str], Any]


def blueprint_world(make: Make, *, agree: Any = True) -> Callable[[dict[str, Any]], Reply]:
    """The scripted world, but a blueprint request is answered by ``make(state,
    difficulty)`` (a dict, or a string sent as it is) and the judge's agreement by
    ``agree`` (a bool, or a string sent as it is)."""
    world = ScriptedWorld()

    def respond(request: dict[str, Any]) -> Reply:
        fmt = (request.get("response_format") or {}).get("json_schema") or {}
        prompt = str(request["messages"][-1]["content"])
        if fmt.get("name") in ("Blueprint", "StatefulBlueprint"):
            marker = "before the task starts (JSON):\n"
            state = json.loads(prompt.split(marker)[1].split("\n")[0]) if marker in prompt else {}
            difficulty = prompt.split("Difficulty: ")[1].split(" ")[0]
            made = make(state, difficulty)
            return Reply(content=made if isinstance(made, str) else json.dumps(made))
        if fmt.get("name") == "Agreement":
            if isinstance(agree, str):
                return Reply(content=agree)
            return Reply(content=json.dumps({"agree": agree, "reason": "scripted"}))
        return world(request)

    return respond


def transfer(state: dict[str, Any], difficulty: str) -> dict[str, Any]:
    """A sound blueprint: move 50 between the first two accounts of the state."""
    source, target = sorted(state["accounts"])[:2]
    return {
        "user_goal": f"Please move 50 from {source} to {target}.",
        "user_persona": "a careful saver",
        "hidden_info": {},
        "success_criteria": [f"50 moved from {source} to {target} once"],
        "actions": [
            {
                "tool": "transfer",
                "arguments": {"source": source, "destination": target, "amount": 50},
            }
        ],
    }


def with_actions(*actions: dict[str, Any], **fields: Any) -> Make:
    def make(state: dict[str, Any], difficulty: str) -> dict[str, Any]:
        made = transfer(state, difficulty)
        source, target = sorted(state["accounts"])[:2]
        filled = json.loads(
            json.dumps(list(actions)).replace("SOURCE", source).replace("TARGET", target)
        )
        return {**made, "actions": filled or made["actions"], **fields}

    return make


MOVE = {
    "tool": "transfer",
    "arguments": {"source": "SOURCE", "destination": "TARGET", "amount": 50},
}


async def agent_of(tmp_path: Path, toolset: str = "bank", **config: Any) -> AgentSpec:
    settings = small_config(
        tmp_path,
        environment_mix={"simulated": 0.0, "executable": 1.0, "docker": 0.0},
        tools={"toolsets": [toolset]},
        **config,
    )
    return plan_agents(settings, await build_tools(settings, tmp_path, None))[0]


async def tasks_for(
    agent: AgentSpec,
    responder: Callable[[dict[str, Any]], Reply],
    difficulties: tuple[str, ...] = ("single",),
    kinds: tuple[str, ...] = ("executable",),
) -> tuple[list[TaskSpec], list[str], dict[str, Any], ScriptedEndpoint]:
    settings = WorkerSettings(
        tasks_per_agent=len(difficulties),
        difficulties=difficulties,  # type: ignore[arg-type]
        blueprints=kinds,  # type: ignore[arg-type]
    )
    with ScriptedEndpoint(responder) as server:
        worker = Worker(endpoints_for(server), settings)
        try:
            tasks, failures, counts, _ = await worker.make_tasks(agent)
        finally:
            await worker.aclose()
    return tasks, failures, counts, server


async def test_the_replayed_state_becomes_the_tasks_check(tmp_path: Path) -> None:
    agent = await agent_of(tmp_path)
    [task], failures, counts, _ = await tasks_for(agent, blueprint_world(transfer))
    assert not failures and counts == BlueprintCounts(tried=1, kept=1)
    assert task.source == "blueprint" and task.origin and task.origin.startswith("blueprint:")
    assert task.user_persona == "a careful saver" and task.expected_tools == ["transfer"]
    source, target = sorted(task.initial_state["accounts"])[:2]
    assert task.checks.actions == [
        {"tool": "transfer", "arguments": {"source": source, "destination": target, "amount": 50}}
    ]
    # The check is what the tool set itself does with the call, nothing else.
    ledger = BankLedger(task.initial_state)
    ledger.transfer(source=source, destination=target, amount=50)
    assert task.checks.expected_state == changes(task.initial_state, ledger.snapshot())
    before = task.initial_state["accounts"][source]["balance"]
    assert task.checks.expected_state["accounts"][source]["balance"] == before - 50
    assert state_differences(ledger.snapshot(), task.checks.expected_state) == []
    assert state_differences(task.initial_state, task.checks.expected_state)  # not done yet


def hidden_target(state: dict[str, Any], difficulty: str) -> dict[str, Any]:
    made = transfer(state, difficulty)
    source, target = sorted(state["accounts"])[:2]
    return {
        **made,
        "user_goal": f"Pay 50 from {source} to my landlord.",
        "hidden_info": {"landlord's account": target},
    }


async def test_a_clarify_blueprint_needs_a_hidden_fact_its_calls_use(tmp_path: Path) -> None:
    agent = await agent_of(tmp_path)
    [task], _, counts, _ = await tasks_for(agent, blueprint_world(hidden_target), ("clarify",))
    assert counts.kept == 1 and task.source == "blueprint" and task.hidden_info
    [task], _, counts, _ = await tasks_for(agent, blueprint_world(transfer), ("clarify",))
    assert counts.rejected_by_reason == {"difficulty_mismatch": 1} and task.source == "template"


def degenerate_goal(state: dict[str, Any], difficulty: str) -> dict[str, Any]:
    return {**transfer(state, difficulty), "user_goal": "<|im_start|>assistant Move 50 now"}


REJECTS: dict[str, tuple[Make, Any]] = {
    "unknown_tool": (with_actions({"tool": "wire_money", "arguments": {}}), True),
    "invalid_arguments": (
        with_actions({**MOVE, "arguments": {**MOVE["arguments"], "amount": "lots"}}),
        True,
    ),
    "call_failed": (
        with_actions({**MOVE, "arguments": {**MOVE["arguments"], "source": "nobody-0"}}),
        True,
    ),
    "no_effect": (with_actions({"tool": "get_balance", "arguments": {"account": "SOURCE"}}), True),
    "difficulty_mismatch": (with_actions(MOVE, MOVE), True),
    "judge_disagrees": (transfer, False),
    "judge_error": (transfer, "this is not JSON"),
    "generation_failed": (lambda state, difficulty: "no blueprint here", True),
    "degenerate": (degenerate_goal, True),
}


@pytest.mark.parametrize("reason", sorted(REJECTS))
async def test_every_reject_reason_is_counted_and_the_template_stands_in(
    tmp_path: Path, reason: str
) -> None:
    make, agree = REJECTS[reason]
    agent = await agent_of(tmp_path)
    [task], failures, counts, _ = await tasks_for(agent, blueprint_world(make, agree=agree))
    assert counts == BlueprintCounts(tried=1, kept=0, rejected_by_reason={reason: 1})
    assert not failures
    assert task.source == "template" and task.checks.expected_state  # the fallback
    assert task.checks.actions is None


def test_the_reasons_the_tests_reach_are_all_the_reasons() -> None:
    assert set(REJECTS) | {"duplicate"} == set(REJECT_REASONS)


async def test_a_repeated_blueprint_is_a_duplicate(tmp_path: Path) -> None:
    def same_goal(state: dict[str, Any], difficulty: str) -> dict[str, Any]:
        return {**transfer(state, difficulty), "user_goal": "Move 50 to my other account."}

    agent = await agent_of(tmp_path)
    tasks, _, counts, _ = await tasks_for(agent, blueprint_world(same_goal), ("single", "single"))
    assert counts == BlueprintCounts(tried=2, kept=1, rejected_by_reason={"duplicate": 1})
    assert [t.source for t in tasks] == ["blueprint", "template"]  # in index order


async def test_a_simulated_blueprint_is_replayed_through_the_tool_simulator(
    tmp_path: Path,
) -> None:
    settings = small_config(
        tmp_path, environment_mix={"simulated": 1.0, "executable": 0.0, "docker": 0.0}
    )
    agent = plan_agents(settings, await build_tools(settings, tmp_path, None))[0]
    tool = agent.tools[0]

    def make(state: dict[str, Any], difficulty: str) -> dict[str, Any]:
        assert state == {}  # the generator writes the state itself
        return {
            "user_goal": f"Please run {tool.name} for my order A-1.",
            "user_persona": "a shop owner",
            "success_criteria": ["the order is handled"],
            "actions": [{"tool": tool.name, "arguments": instance(tool.parameters, {})}],
            "initial_state": {"orders": {"id": "A-1", "status": "new"}},
        }

    [task], _, counts, _ = await tasks_for(agent, blueprint_world(make), kinds=("simulated",))
    assert counts == BlueprintCounts(tried=1, kept=1) and task.source == "blueprint"
    assert task.initial_state == {"orders": {"id": "A-1", "status": "new"}}
    # The scripted simulator answers every call with the update {"calls": 1}.
    assert task.checks.expected_state == {"calls": 1}


async def test_a_user_tool_set_named_by_import_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    agent = await agent_of(tmp_path, "user_tools:Inventory")
    assert agent.toolset == "user_tools:Inventory" and agent.domain == "inventory"
    assert {t.name for t in agent.tools} == {"get_item", "restock"}
    restock = next(t for t in agent.tools if t.name == "restock")
    assert restock.parameters["properties"]["quantity"]["type"] == "integer"

    def make(state: dict[str, Any], difficulty: str) -> dict[str, Any]:
        sku = sorted(state["items"])[0]
        return {
            "user_goal": f"Restock {sku} with 5 units.",
            "user_persona": "a warehouse lead",
            "success_criteria": [f"{sku} has 5 more units"],
            "actions": [{"tool": "restock", "arguments": {"sku": sku, "quantity": 5}}],
        }

    [task], _, counts, _ = await tasks_for(agent, blueprint_world(make))
    assert counts.kept == 1 and task.source == "blueprint"
    sku = sorted(task.initial_state["items"])[0]
    quantity = task.initial_state["items"][sku]["quantity"]
    assert task.checks.expected_state == {"items": {sku: {"quantity": quantity + 5}}}
    # The worker plays it in the user's class, like a built-in set.
    worker = Worker({}, WorkerSettings())
    env = worker.environment(agent, 0)
    assert isinstance(env, ExecutableEnvironment) and env.toolset.__name__ == "Inventory"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("no_such_module_here:Inventory", "cannot import 'no_such_module_here'"),
        ("user_tools:Missing", "has no 'Missing'"),
        ("user_tools:NotATool", "not a subclass of sandboxes.executable.ToolSet"),
        ("user_tools:Untyped", "restock(sku) has no type hint"),
        ("user_tools:Toolless", "has no @tool method"),
        ("bankk", "unknown tool set 'bankk'"),
    ],
)
def test_a_tool_set_that_cannot_be_played_is_refused_with_file_line_and_field(
    tmp_path: Path, monkeypatch, name: str, why: str
) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    config = tmp_path / "synth.yaml"
    config.write_text(f"name: mine\ntools:\n  toolsets:\n    - {name}\n")
    with pytest.raises(Exception) as caught:
        load_config(config)
    message = str(caught.value)
    assert str(config) in message and ":4" in message and "tools.toolsets" in message
    assert why in message
    with pytest.raises(ToolSetError, match="tool set"):
        load_toolset(name)


async def test_replay_reports_what_changed_and_removed(tmp_path: Path) -> None:
    from sandboxes.toolsets import FileSystem

    state = FileSystem.sample_state(random.Random(3))
    first, second = sorted(state["files"])[:2]
    actions = [
        BlueprintCall(tool="delete_file", arguments={"path": first}),
        BlueprintCall(tool="write_file", arguments={"path": "/new.txt", "content": "hi"}),
    ]
    expected, results = await replay(ExecutableEnvironment(FileSystem), state, actions)
    assert expected == {"files": {first: None, "/new.txt": "hi"}} and len(results) == 2
    after = {"files": {second: state["files"][second], "/new.txt": "hi"}}
    assert state_differences(after, expected) == []  # a removed file: absent holds
    assert state_differences(state, expected)  # the first file is still there


def test_blueprint_counts_add_up_across_agents() -> None:
    counts = (
        BlueprintCounts()
        .plus(BlueprintCounts(tried=3, kept=1, rejected_by_reason={"no_effect": 2}))
        .plus(BlueprintCounts(tried=2, kept=1, rejected_by_reason={"no_effect": 1, "x": 1}))
        .plus(BlueprintCounts())
    )
    assert counts.tried == 5 and counts.kept == 2
    assert list(counts.rejected_by_reason.items()) == [("no_effect", 3), ("x", 1)]


NOTES_SERVER = [
    sys.executable,
    str(HERE.parent / "sandboxes" / "fixtures" / "stateful_server.py"),
]


@pytest.mark.integration
async def test_an_mcp_blueprint_is_replayed_on_a_fresh_server(tmp_path: Path) -> None:
    """A real MCP server (a process per episode) whose state a harness tool reads: the
    generator is shown that state, and the replay's change becomes the check."""
    from sandboxes.mcp_env import MCPServerConfig, list_server_tools

    def server(**state: str) -> MCPServerConfig:
        return MCPServerConfig(
            command=NOTES_SERVER, env={"NOTES_FILE": "{episode_dir}/n.json"}, **state
        )

    reading = server(state_tool="dump_state")
    agent = AgentSpec(
        id="agent-notes",
        name="notes-desk",
        domain="notes",
        environment="mcp",
        system_prompt="You keep notes.",
        persona="tidy",
        tools=await list_server_tools(reading),
        mcp_command=NOTES_SERVER,
    )
    shown: list[dict[str, Any]] = []

    def make(state: dict[str, Any], difficulty: str) -> dict[str, Any]:
        shown.append(state)
        return {
            "user_goal": "Note down that I must buy milk.",
            "user_persona": "a forgetful cook",
            "success_criteria": ["a note says buy milk"],
            "actions": [{"tool": "add_note", "arguments": {"text": "buy milk"}}],
        }

    async def play(config: MCPServerConfig) -> tuple[TaskSpec, dict[str, Any]]:
        settings = WorkerSettings(
            tasks_per_agent=1,
            difficulties=("single",),
            blueprints=("mcp",),
            mcp_servers={"notes": config},
        )
        with ScriptedEndpoint(blueprint_world(make)) as endpoint:
            worker = Worker(endpoints_for(endpoint), settings)
            try:
                [task], _, counts, _ = await worker.make_tasks(agent)
            finally:
                await worker.aclose()
        return task, counts

    task, counts = await play(reading)
    assert counts == BlueprintCounts(tried=1, kept=1) and shown == [{"notes": []}]
    assert task.source == "blueprint" and task.checks.expected_state == {"notes": ["buy milk"]}
    # a server whose state cannot be read writes no blueprint: a judge-checked task
    task, counts = await play(server())
    assert counts == BlueprintCounts() and task.source == "generated"
