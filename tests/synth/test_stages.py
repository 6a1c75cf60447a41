"""Each synthesis stage on its own, against the scripted world on loopback (no Ray)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from llm.testing import Faults, ScriptedEndpoint
from synth.agents import allocate, plan_agents
from synth.config import EnvironmentMix
from synth.pipeline import settings
from synth.schema import Record
from synth.testing import ScriptedWorld
from synth.tools import build_tools
from synth.worker import Worker, WorkerSettings

from .conftest import endpoints_for, small_config


def test_allocation_follows_the_shares_and_interleaves() -> None:
    kinds = allocate(
        10,
        EnvironmentMix(simulated=0.6, executable=0.2, docker=0.2),
        {"simulated", "executable", "docker"},
    )
    assert kinds.count("simulated") == 6 and kinds.count("executable") == 2
    assert set(kinds[:3]) == {"simulated", "executable", "docker"}


def test_allocation_refuses_a_mix_with_no_usable_kind() -> None:
    with pytest.raises(ValueError, match="no environment kind"):
        allocate(3, EnvironmentMix(simulated=0, executable=0, docker=1), {"simulated"})


async def test_agents_are_distinct_deterministic_and_coherent(tmp_path: Path) -> None:
    config = small_config(tmp_path, agents={"count": 6})
    source = await build_tools(config, tmp_path, None)
    agents = plan_agents(config, source)
    again = plan_agents(config, await build_tools(config, tmp_path, None))
    assert [a.id for a in agents] == [a.id for a in again]
    assert len({a.id for a in agents}) == 6
    for agent in agents:
        if agent.environment == "simulated":
            assert len({t.category for t in agent.tools}) == 1
            assert 2 <= len(agent.tools) <= 4
        else:
            assert agent.toolset in {"bank", "calendar", "files"}


async def test_worker_writes_agents_and_graded_tasks(tmp_path: Path, scripted) -> None:
    config = small_config(tmp_path, tasks={"per_agent": 3})
    agents = plan_agents(config, await build_tools(config, tmp_path, None))
    worker = Worker(endpoints_for(scripted), WorkerSettings(tasks_per_agent=3))
    written, ok, usage = await worker.write_agent(agents[0])
    assert ok and written.name == "Scripted helper" and usage["generator"]["requests"] == 1
    for agent in agents[:2]:
        tasks, failures, _, _ = await worker.make_tasks(agent)
        assert not failures
        assert [t.difficulty for t in tasks] == ["single", "multi_step", "clarify"]
        assert all(t.rubric.kind == "task" and t.rubric.criteria[0].mandatory for t in tasks)
        if agent.environment == "executable":
            assert all(t.checks.expected_state for t in tasks)
            assert "hidden" not in tasks[0].hidden_info
            assert tasks[2].hidden_info  # the clarify task hides a fact
    await worker.aclose()


async def _one_record(
    tmp_path: Path, server: ScriptedEndpoint, kind: str, settings: WorkerSettings | None = None
) -> Record:
    config = small_config(tmp_path, agents={"count": 4})
    agents = [a for a in plan_agents(config, await build_tools(config, tmp_path, None))]
    agent = next(a for a in agents if a.environment == kind)
    worker = Worker(endpoints_for(server), settings or WorkerSettings(tasks_per_agent=1))
    tasks, _, _, _ = await worker.make_tasks(agent)
    record = await worker.run_task(tasks[0], agent)
    await worker.aclose()
    return record


async def test_simulated_task_is_played_and_judged(tmp_path: Path, scripted, world) -> None:
    record = await _one_record(tmp_path, scripted, "simulated")
    assert record.outcome == "accepted" and record.score == 1.0
    roles = [m["role"] for m in record.trajectory.messages]
    assert roles[:4] == ["system", "user", "assistant", "tool"] and roles[-1] == "assistant"
    assert record.trajectory.stop_reason == "user_satisfied"
    assert record.trajectory.final_state == {"orders": {"A-1": "shipped"}, "calls": 1}
    assert {"agent", "user", "tool_simulator", "judge"} <= set(record.usage)
    assert world.roles["judge"] == 1


REFUND = (
    "id: refund\nkind: trajectory\ndescription: Refunds follow the policy.\ncriteria:\n"
    "  - id: window\n    description: Quotes the 30-day refund window.\n    scale: binary\n"
)


async def test_the_judge_uses_the_users_own_rubric_files(tmp_path: Path, scripted) -> None:
    (tmp_path / "refund.yaml").write_text(REFUND)
    judge = {"rubrics": ["trajectory", "refund"], "rubric_files": [str(tmp_path / "refund.yaml")]}
    config = small_config(tmp_path, judge=judge)
    worker_settings = replace(settings(config), tasks_per_agent=1)
    assert [r.id for r in worker_settings.judge.own_rubrics()] == ["refund"]
    record = await _one_record(tmp_path, scripted, "simulated", worker_settings)
    assert record.outcome == "accepted"
    judged = [r for r in scripted.requests if "Quotes the 30-day refund window" in json.dumps(r)]
    assert len(judged) == 1 and "refund.window" in json.dumps(judged[0])


def test_the_demo_config_hash_is_stable() -> None:
    """A new config field must not change the hash of configs that leave it unset: every
    run directory is bound to its hash, and a changed hash refuses to resume. Update the
    value only on purpose, for a change that does alter what a job produces."""
    from synth.config import load_config

    demo = Path(__file__).resolve().parents[2] / "configs" / "synth" / "demo.yaml"
    assert load_config(demo).content_hash() == "de90336aec73b9c4"


def test_the_config_hash_follows_what_the_rubric_files_say(tmp_path: Path) -> None:
    def content_hash(folder: str, text: str) -> str:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "refund.yaml").write_text(text)
        files = [str(tmp_path / folder)]
        judge = {"rubrics": ["refund"], "rubric_files": files}
        return small_config(tmp_path, judge=judge).content_hash()

    first = content_hash("a", REFUND)
    assert content_hash("b", REFUND) == first  # the same rubric elsewhere
    assert content_hash("a", REFUND.replace("30-day", "14-day")) != first


@pytest.mark.parametrize(
    ("with_file", "message"),
    [
        (False, r"(?s)judge.*unknown rubric ids \['refund'\]"),
        (True, r"(?s)judge.*rubric files: .*refund.yaml:7: criteria\[0\].scale"),
    ],
)
def test_judge_rubrics_are_checked_when_the_config_loads(
    tmp_path: Path, with_file: bool, message: str
) -> None:
    (tmp_path / "refund.yaml").write_text(REFUND.replace("scale: binary", "scale: stars"))
    files = [str(tmp_path / "refund.yaml")] if with_file else []
    with pytest.raises(ValidationError, match=message):
        small_config(tmp_path, judge={"rubrics": ["refund"], "rubric_files": files})


async def test_a_failing_judge_rejects_with_the_reason(tmp_path: Path) -> None:
    with ScriptedEndpoint(ScriptedWorld(judge_pass=False)) as server:
        record = await _one_record(tmp_path, server, "simulated")
    assert record.outcome == "rejected" and record.reason == "judge_failed"
    assert record.score == 0.0 and "success_1" in record.detail


async def test_executable_task_is_decided_by_its_final_state(tmp_path: Path, scripted) -> None:
    record = await _one_record(tmp_path, scripted, "executable")
    # The scripted agent calls the first tool with placeholder arguments: the state check,
    # not the (always passing) judge, must reject it.
    assert record.outcome == "rejected" and record.reason == "state_mismatch"
    assert record.verified is False and record.verdict is None
    assert record.detail.startswith("/")  # the path that departs from the expected state


async def test_an_endpoint_that_keeps_failing_becomes_a_rollout_error(tmp_path: Path) -> None:
    faults = Faults(rates={"500": 1.0})
    with ScriptedEndpoint(ScriptedWorld(), faults=faults) as server:
        config = small_config(tmp_path)
        agent = plan_agents(config, await build_tools(config, tmp_path, None))[0]
        worker = Worker(endpoints_for(server), WorkerSettings(tasks_per_agent=1))
        task = await make_one(worker, agent, ScriptedWorld())
        record = await worker.run_task(task, agent)
        await worker.aclose()
    assert record.outcome == "rejected" and record.reason == "rollout_error"
    assert "500" in record.detail and record.trajectory.messages[1]["role"] == "user"


async def make_one(worker: Worker, agent, world: ScriptedWorld):
    with ScriptedEndpoint(world) as healthy:
        other = Worker(endpoints_for(healthy), worker.settings)
        tasks, _, _, _ = await other.make_tasks(agent)
        await other.aclose()
    return tasks[0]


def test_records_become_rows_with_openai_messages(tmp_path: Path) -> None:
    from synth.schema import Trajectory

    trajectory = Trajectory(
        task_id="task-1",
        agent_id="agent-1",
        tools=[{"type": "function"}],
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "ok"},
        ],
    )
    record = Record(
        task_id="task-1",
        agent_id="agent-1",
        domain="d",
        environment="simulated",
        difficulty="single",
        outcome="accepted",
        trajectory=trajectory,
    )
    row = record.to_row()
    assert row["messages"][1]["tool_calls"][0]["function"]["name"] == "f"
    assert row["messages"][1]["content"] == "" and json.loads(row["tools"]) == [
        {"type": "function"}
    ]
