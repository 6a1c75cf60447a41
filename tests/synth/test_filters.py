"""The pre-judge filter and the judge's own guard, against the scripted world on loopback.

Planted degenerate trajectories are rejected with their own reason and never reach the
judge; planted good ones still reach it and are accepted when it accepts; a judge that
answers garbage is a ``judge_error``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llm import ChatClient
from llm.testing import Reply, ScriptedEndpoint, call
from synth.agents import plan_agents
from synth.filters import DEGENERATE, screen
from synth.judging import decide
from synth.schema import TaskSpec, Trajectory
from synth.tasks import task_rubric
from synth.testing import ScriptedWorld, instance
from synth.tools import build_tools
from synth.verifiable import TaskDraft
from synth.worker import Worker, WorkerSettings

from .conftest import endpoints_for, small_config

GOAL = "Where is my order A-1? I need to know whether it has shipped."
LOOKUP = {"role": "assistant", "content": None, "tool_calls": [call("get_order", {"id": "A-1"})]}
RESULT = {"role": "tool", "tool_call_id": "call_get_order", "content": '{"status": "shipped"}'}


def task() -> TaskSpec:
    draft = TaskDraft(user_goal=GOAL, success_criteria=["the agent reports the order status"])
    return TaskSpec(
        id="task-0123456789ab",
        agent_id="agent-1",
        domain="orders",
        difficulty="single",
        environment="simulated",
        user_goal=GOAL,
        rubric=task_rubric("task-0123456789ab", draft),
    )


def played(*replies: str | None, length_stops: tuple[int, ...] = ()) -> Trajectory:
    """System, user, a tool lookup and its result, then the agent's text ``replies``."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You help customers with their orders."},
        {"role": "user", "content": GOAL},
        LOOKUP,
        RESULT,
    ]
    messages += [{"role": "assistant", "content": r} for r in replies]
    return Trajectory(
        task_id="task-0123456789ab",
        agent_id="agent-1",
        messages=messages,
        tools=[],
        stop_reason="user_satisfied",
        length_stops=list(length_stops),
    )


async def decided(trajectory: Trajectory, world: Any) -> Any:
    with ScriptedEndpoint(world) as server:
        async with ChatClient(server.endpoint(max_retries=0)) as client:
            return await decide(task(), trajectory, client)


DEGENERATE_CASES = {
    "empty_answer": played("   "),
    "fake_tool_output": played(
        'Let me check. <tool_response>{"status": "delivered"}</tool_response> It was delivered.'
    ),
    "degenerate_loop": played("Your order has shipped. Why? " + "Why? " * 40),
    "truncated_answer": played("Your order A-1 has shipped and should arrive", length_stops=(4,)),
    "echoed_prompt": played(GOAL),
    "no_language": played("1. 1. 2. 3. 4. 5. 6. 7. 8. 9."),
}


@pytest.mark.parametrize("answer", ["1. 2. 3. 4. 5.", "- * - * - * 6", "### 1\n### 2"])
def test_a_short_list_of_nothing_is_no_language(answer: str) -> None:
    found = screen(played(answer))
    assert found is not None and found.reason == "no_language"


def test_every_reason_has_a_planted_case() -> None:
    assert set(DEGENERATE_CASES) == set(DEGENERATE)


@pytest.mark.parametrize("reason", sorted(DEGENERATE_CASES))
async def test_a_degenerate_trajectory_is_rejected_before_the_judge(reason: str) -> None:
    world = ScriptedWorld(judge_pass=True)
    record = await decided(DEGENERATE_CASES[reason], world)
    assert record.outcome == "rejected" and record.reason == reason
    assert record.detail.startswith("message ")
    assert world.roles["judge"] == 0 and record.verdict is None


async def test_a_loop_in_an_earlier_turn_is_found_too() -> None:
    trajectory = played("I am sorry. " * 8, "Your order A-1 has shipped.")
    assert screen(trajectory, GOAL) == screen(trajectory)  # not about the prompt
    found = screen(trajectory)
    assert found is not None and found.reason == "degenerate_loop"
    assert found.detail.startswith("message 4:")


async def test_an_agent_whose_last_act_was_a_tool_call_has_an_empty_answer() -> None:
    trajectory = played()
    found = screen(trajectory)
    assert found is not None and found.reason == "empty_answer"


GOOD_ANSWERS = [
    "Your order A-1 has shipped; it left our warehouse this morning.",
    '{"order": "A-1", "status": "shipped"}',
    "Here it is:\n```python\ndef status(order):\n    return order['status']\n```",
    "150.00",
    "12:30 PM",
]


@pytest.mark.parametrize("answer", GOOD_ANSWERS)
async def test_a_good_trajectory_reaches_the_judge_and_is_accepted(answer: str) -> None:
    world = ScriptedWorld(judge_pass=True)
    record = await decided(played(answer), world)
    assert world.roles["judge"] == 1
    assert record.outcome == "accepted" and record.reason == "" and record.score == 1.0


async def test_a_good_trajectory_the_judge_fails_is_judge_failed() -> None:
    record = await decided(played(GOOD_ANSWERS[0]), ScriptedWorld(judge_pass=False))
    assert record.outcome == "rejected" and record.reason == "judge_failed"


def judge_answering(rationale: str, reasoning: str = "The agent looked it up.") -> Any:
    """A world whose judge gives top scores with ``rationale`` for every criterion."""
    world = ScriptedWorld()

    def respond(request: dict[str, Any]) -> Reply | str:
        fmt = (request.get("response_format") or {}).get("json_schema") or {}
        if fmt.get("name") != "JudgeAnswer":
            return world(request)
        value = instance(fmt["schema"], fmt["schema"].get("$defs", {}), high=True)
        value["reasoning"] = reasoning
        for entry in value["scores"].values():
            entry["reasoning"] = rationale
        return json.dumps(value)

    return respond


@pytest.mark.parametrize(
    ("rationale", "reasoning", "problem"),
    [
        ("Fine.", "1. 1. 2. 3. 4. 5. 6. 7.", "reasoning is degenerate (no_language)"),
        ("1. 1. 2. 3. …", "The agent looked it up.", "is degenerate (no_language)"),
        ("Why? " * 12, "The agent looked it up.", "is degenerate (repetition)"),
        ("Yes.", "The agent looked it up.", "does not address its criterion"),
    ],
)
async def test_a_judge_answering_garbage_is_a_judge_error(
    rationale: str, reasoning: str, problem: str
) -> None:
    record = await decided(played(GOOD_ANSWERS[0]), judge_answering(rationale, reasoning))
    assert record.outcome == "rejected" and record.reason == "judge_error"
    assert problem in record.detail and record.score is None


async def test_a_reply_cut_at_the_token_limit_is_recorded_and_rejected(tmp_path: Path) -> None:
    world = ScriptedWorld()

    def cut_off(request: dict[str, Any]) -> Reply | str:
        if request.get("tools") and request["messages"][-1].get("role") == "tool":
            return Reply(content="Your order has shipped and it will", finish_reason="length")
        return world(request)

    config = small_config(tmp_path)
    agents = plan_agents(config, await build_tools(config, tmp_path, None))
    agent = next(a for a in agents if a.environment == "simulated")
    with ScriptedEndpoint(cut_off) as server:
        worker = Worker(endpoints_for(server), WorkerSettings(tasks_per_agent=1))
        tasks, _, _, _ = await worker.make_tasks(agent)
        record = await worker.run_task(tasks[0], agent)
        await worker.aclose()
    cut = len(record.trajectory.messages) - 1
    assert record.trajectory.messages[cut]["content"].endswith("it will")
    assert record.trajectory.length_stops == [cut]
    assert record.outcome == "rejected" and record.reason == "truncated_answer"
    assert world.roles["judge"] == 0


def world_writing(name: str, **fields: Any) -> Any:
    """The scripted world, except that its ``name`` answers (AgentDraft, GeneratedTask)
    carry ``fields``."""
    world = ScriptedWorld()

    def respond(request: dict[str, Any]) -> Reply | str:
        fmt = (request.get("response_format") or {}).get("json_schema") or {}
        reply = world(request)
        if fmt.get("name") != name or not isinstance(reply, Reply):
            return reply
        return json.dumps({**json.loads(reply.content or "{}"), **fields})

    return respond


@pytest.mark.parametrize(
    "system_prompt",
    [
        "1. 2. 3. 4. 5. 6. 7. 8. 9. 10. 11. 12.",
        "You are helpful. " * 12,
        "You help. <|im_start|>user\nhi<|im_end|> and more text",
    ],
)
async def test_a_degenerate_generated_system_prompt_falls_back_to_the_template(
    tmp_path: Path, system_prompt: str
) -> None:
    config = small_config(tmp_path)
    agent = plan_agents(config, await build_tools(config, tmp_path, None))[0]
    with ScriptedEndpoint(world_writing("AgentDraft", system_prompt=system_prompt)) as server:
        worker = Worker(endpoints_for(server), WorkerSettings(tasks_per_agent=1))
        written, ok, _ = await worker.write_agent(agent)
        await worker.aclose()
    assert not ok and written.system_prompt == agent.system_prompt
    assert written.system_prompt.startswith("You are ")


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"user_goal": "Why? " * 20}, "user_goal is degenerate (repetition)"),
        ({"user_goal": "1. 2. 3. 4. 5."}, "user_goal is degenerate (no_language)"),
        (
            {"success_criteria": ["reports the status", "</tool_response> ok"]},
            "success_criteria[1] is degenerate (role_markers)",
        ),
    ],
)
async def test_a_degenerate_generated_task_is_rejected_and_counted(
    tmp_path: Path, fields: dict[str, Any], problem: str
) -> None:
    from synth.manifest import build_manifest
    from synth.report import write_report
    from synth.store import RunStore

    config = small_config(tmp_path)
    agents = plan_agents(config, await build_tools(config, tmp_path, None))
    agent = next(a for a in agents if a.environment == "simulated")
    with ScriptedEndpoint(world_writing("GeneratedTask", **fields)) as server:
        worker = Worker(endpoints_for(server), WorkerSettings(tasks_per_agent=2))
        tasks, failures, _, _ = await worker.make_tasks(agent)
        await worker.aclose()
    assert tasks == [] and len(failures) == 2
    assert all(f": DegenerateTask: {problem}" in f for f in failures)
    store = RunStore(tmp_path / "run")
    store.write_shard([])
    manifest = build_manifest(
        store,
        name="t",
        config_hash="h",
        endpoints={},
        stages={"tasks": {"failures": failures}},
        tools=1,
        agents=[agent],
        tasks=[],
    )
    assert manifest.counts.tasks_degenerate == 2
    html = write_report(store, manifest).read_text()
    assert "<td>tasks_degenerate</td><td>2</td>" in html


async def test_the_report_lists_trajectories_rejected_by_rule(tmp_path: Path) -> None:
    from synth.manifest import build_manifest
    from synth.report import write_report
    from synth.store import RunStore

    records = []
    for reason, trajectory in DEGENERATE_CASES.items():
        record = await decided(trajectory, ScriptedWorld())
        assert record.reason == reason
        records.append(record.model_copy(update={"task_id": f"task-{reason}"}))
    store = RunStore(tmp_path / "run")
    store.write_shard(records)
    manifest = build_manifest(
        store,
        name="t",
        config_hash="h",
        endpoints={},
        stages={},
        tools=1,
        agents=[],
        tasks=[],
    )
    assert manifest.rejected_by_reason == {reason: 1 for reason in DEGENERATE}
    html = write_report(store, manifest).read_text()
    for reason in DEGENERATE:
        assert f"<td>{reason}</td><td>1</td>" in html
    assert "<td>judge_error</td><td>0</td>" in html
