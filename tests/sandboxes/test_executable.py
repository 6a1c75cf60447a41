"""Executable environments: schema checks before running, errors as tool messages, state."""

from __future__ import annotations

import json

import pytest

from llm import FunctionCall, ToolCall
from sandboxes.executable import ExecutableEnvironment, state_differences
from sandboxes.toolsets import BankLedger, Calendar, FileSystem


def call(name: str, arguments: dict | str, call_id: str = "c1") -> ToolCall:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(id=call_id, function=FunctionCall(name=name, arguments=raw))


BANK = {
    "accounts": {
        "checking": {"balance": 100.0, "daily_limit": 80.0},
        "savings": {"balance": 500.0, "daily_limit": 1000.0},
    },
    "transfers": [],
}


async def test_a_transfer_changes_state_and_is_recorded_with_its_diff() -> None:
    env = ExecutableEnvironment(BankLedger)
    await env.reset({"initial_state": BANK})
    reply = await env.call(
        call("transfer", {"source": "savings", "destination": "checking", "amount": 50})
    )
    assert reply.role == "tool" and reply.tool_call_id == "c1"
    assert json.loads(reply.content)["id"] == "tx-1"
    state = await env.state()
    assert state["accounts"]["checking"]["balance"] == 150.0
    record = env.records[-1]
    assert record.error is None and record.state_diff["/accounts/savings/balance"] == [500.0, 450.0]
    expected = {"accounts": {"checking": {"balance": 150.0}, "savings": {"balance": 450.0}}}
    assert state_differences(state, expected) == []
    assert state_differences(state, {"accounts": {"checking": {"balance": 100.0}}}) == [
        "/accounts/checking/balance: expected 100.0, got 150.0"
    ]


@pytest.mark.parametrize(
    ("name", "arguments", "error"),
    [
        (
            "transfer",
            {"source": "checking", "destination": "savings", "amount": 90},
            "error: daily limit 80.00 would be exceeded",
        ),
        (
            "transfer",
            {"source": "checking", "destination": "savings", "amount": -5},
            "error: invalid arguments for transfer: amount: -5 is less than or equal",
        ),
        (
            "transfer",
            {"source": "checking", "amount": 5},
            "error: invalid arguments for transfer: arguments: 'destination' is a required",
        ),
        ("transfer", "{not json", "error: arguments are not valid JSON"),
        ("launch", {}, "error: unknown tool 'launch'"),
        ("get_balance", {"account": "nosuch"}, "error: no account 'nosuch'"),
    ],
)
async def test_bad_calls_become_error_messages_and_change_nothing(
    name: str, arguments, error: str
) -> None:
    env = ExecutableEnvironment(BankLedger)
    await env.reset({"initial_state": BANK})
    before = await env.state()
    reply = await env.call(call(name, arguments))
    assert reply.content.startswith(error)
    assert await env.state() == before and env.records[-1].error


async def test_calendar_refuses_overlaps_and_files_refuse_escapes() -> None:
    cal = ExecutableEnvironment(Calendar)
    await cal.reset()
    ok = await cal.call(
        call(
            "create_event",
            {"title": "standup", "start": "2026-03-02T10:00", "end": "2026-03-02T10:30"},
        )
    )
    clash = await cal.call(
        call(
            "create_event",
            {"title": "review", "start": "2026-03-02T10:15", "end": "2026-03-02T11:00"},
        )
    )
    assert json.loads(ok.content)["id"] == "ev-1"
    assert clash.content.startswith("error: conflicts with ev-1 (standup")
    files = ExecutableEnvironment(FileSystem)
    await files.reset({"initial_state": {"files": {"/a.txt": "hi"}}})
    escape = await files.call(call("read_file", {"path": "/../etc/passwd"}))
    assert escape.content == "error: path '/../etc/passwd' leaves the file system"
    await files.call(call("move_file", {"source": "/a.txt", "destination": "/b/a.txt"}))
    assert await files.state() == {"files": {"/b/a.txt": "hi"}}


def test_tool_specs_come_from_signatures_and_docstrings() -> None:
    spec = {s.name: s for s in Calendar.specs()}["create_event"]
    assert spec.side_effect == "write"
    assert spec.description.startswith("Create an event; fails when it overlaps")
    props = spec.parameters["properties"]
    assert spec.parameters["required"] == ["title", "start", "end"]
    assert props["start"]["description"].startswith("ISO date-time")
    assert props["attendees"]["anyOf"][0] == {"items": {"type": "string"}, "type": "array"}
    assert {s.name: s.side_effect for s in FileSystem.specs()}["read_file"] == "read"


async def test_each_reset_starts_a_fresh_episode() -> None:
    env = ExecutableEnvironment(FileSystem)
    await env.reset()
    await env.call(call("write_file", {"path": "/x", "content": "1"}))
    await env.reset()
    assert await env.state() == {"files": {}} and env.records == []


async def test_the_docs_example_tool_set_works() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "sandboxes.md").read_text()
    block = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)[1]
    namespace: dict = {}
    exec(compile(block, "docs/sandboxes.md", "exec"), namespace)
    env = ExecutableEnvironment(namespace["Inventory"])
    await env.reset({"initial_state": {"stock": {"a1": 3}}})
    assert (await env.call(call("remove", {"sku": "a1", "units": 2}))).content == "1"
    too_many = await env.call(call("remove", {"sku": "a1", "units": 5}))
    assert too_many.content == "error: only 1 of a1 in stock"
