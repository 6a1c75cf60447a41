"""MCP environments over real server processes."""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from llm import FunctionCall, ToolCall
from sandboxes.base import SandboxError
from sandboxes.executable import state_differences
from sandboxes.mcp_env import MCPEnvironment, MCPServerConfig, list_server_tools
from tool_registry.importers.mcp_server import MCPImportError

FRAGILE = [sys.executable, str(Path(__file__).resolve().parent / "fixtures" / "fragile_server.py")]
pytestmark = pytest.mark.integration


def tc(name: str, arguments: dict) -> ToolCall:
    return ToolCall(id="c", function=FunctionCall(name=name, arguments=json.dumps(arguments)))


async def test_the_time_server_answers_a_call() -> None:
    command = shutil.which("mcp-server-time") or str(
        Path(sys.executable).parent / "mcp-server-time"
    )
    env = MCPEnvironment([command])
    try:
        await env.reset()
        reply = await env.call(tc("get_current_time", {"timezone": "Etc/UTC"}))
    finally:
        await env.close()
    assert json.loads(reply.content)["timezone"] == "Etc/UTC"


async def test_tool_errors_and_bad_arguments_are_messages() -> None:
    env = MCPEnvironment(FRAGILE)
    try:
        observation = await env.reset()
        assert "echo" in observation
        assert (await env.call(tc("echo", {"text": "hi"}))).content == "hi"
        failed = await env.call(tc("fail", {"reason": "disk full"}))
        invalid = await env.call(tc("echo", {"text": 5}))
    finally:
        await env.close()
    assert failed.content.startswith("error:") and "disk full" in failed.content
    assert invalid.content.startswith("error: invalid arguments for echo")
    assert env.calls == 2  # the invalid call never reached the server


async def test_a_crashed_server_fails_the_episode_and_the_next_one_starts_clean() -> None:
    env = MCPEnvironment(FRAGILE, timeout_s=10)
    try:
        await env.reset()
        with pytest.raises(SandboxError):
            await env.call(tc("die", {}))
        await env.reset()
        assert (await env.call(tc("echo", {"text": "again"}))).content == "again"
    finally:
        await env.close()


# ------------------------------------------------------------- state kept per episode
STATEFUL = [
    sys.executable,
    str(Path(__file__).resolve().parent / "fixtures" / "stateful_server.py"),
]


def notes_server(**options: object) -> MCPServerConfig:
    return MCPServerConfig(command=STATEFUL, **options)  # type: ignore[arg-type]


async def notes(env: MCPEnvironment) -> list[str]:
    reply = await env.call(tc("list_notes", {}))
    return list(json.loads(reply.content)["notes"])


async def whoami(env: MCPEnvironment) -> dict:
    return dict(json.loads((await env.call(tc("whoami", {}))).content))


async def test_concurrent_episodes_of_one_server_never_see_each_others_notes() -> None:
    envs = [MCPEnvironment(notes_server(state_tool="dump_state")) for _ in range(6)]
    try:
        await asyncio.gather(*(e.reset({"id": f"ep-{i}"}) for i, e in enumerate(envs)))
        await asyncio.gather(
            *(e.call(tc("add_note", {"text": f"ep-{i}"})) for i, e in enumerate(envs))
        )
        seen = await asyncio.gather(*(notes(e) for e in envs))
        states = await asyncio.gather(*(e.state() for e in envs))
        dirs = {str(e.episode_dir) for e in envs}
    finally:
        await asyncio.gather(*(e.close() for e in envs))
    assert seen == [[f"ep-{i}"] for i in range(6)]
    assert states == [{"notes": [f"ep-{i}"]} for i in range(6)]
    assert len(dirs) == 6


async def test_without_a_reset_tool_each_episode_gets_a_new_process_and_directory() -> None:
    env = MCPEnvironment(notes_server())
    try:
        await env.reset({"id": "first"})
        await env.call(tc("add_note", {"text": "left behind"}))
        first, first_dir = await whoami(env), env.episode_dir
        await env.reset({"id": "second"})
        second = await whoami(env)
        assert await notes(env) == []
    finally:
        await env.close()
    assert first["pid"] != second["pid"] and first["cwd"] != second["cwd"]
    assert first_dir is not None and not first_dir.exists()  # removed with its episode


async def test_the_reset_tool_clears_state_between_episodes_of_one_process(tmp_path: Path) -> None:
    # The notes file lies outside the episode directory, so only the reset tool clears it.
    shared = notes_server(reset_tool="reset_notes", env={"NOTES_FILE": str(tmp_path / "n.json")})
    env = MCPEnvironment(shared)
    try:
        await env.reset({"id": "first"})
        await env.call(tc("add_note", {"text": "left behind"}))
        first = await whoami(env)
        await env.reset({"id": "second"})
        second = await whoami(env)
        assert await notes(env) == []
    finally:
        await env.close()
    assert first["pid"] == second["pid"]  # the same process served both episodes


async def test_state_kept_outside_the_episode_directory_leaks_without_a_reset_tool(
    tmp_path: Path,
) -> None:
    env = MCPEnvironment(notes_server(env={"NOTES_FILE": str(tmp_path / "n.json")}))
    try:
        await env.reset()
        await env.call(tc("add_note", {"text": "left behind"}))
        await env.reset()
        assert await notes(env) == ["left behind"]  # why `reset_tool` exists
    finally:
        await env.close()


async def test_env_vars_and_episode_placeholders_reach_the_server() -> None:
    config = notes_server(
        env={"EPISODE_TAG": "tag-{episode_id}", "NOTES_FILE": "{episode_dir}/x/n.json"}
    )
    env = MCPEnvironment(config)
    try:
        await env.reset({"id": "task-7"})
        await env.call(tc("add_note", {"text": "hello"}))
        me = await whoami(env)
        assert env.episode_dir is not None
        assert (env.episode_dir / "x" / "n.json").exists()
        assert me == {"pid": me["pid"], "cwd": str(env.episode_dir), "tag": "tag-task-7"}
    finally:
        await env.close()


async def test_harness_and_denied_tools_are_never_offered_to_the_agent() -> None:
    config = notes_server(reset_tool="reset_notes", state_tool="dump_state", deny=["call_log"])
    env = MCPEnvironment(config)
    try:
        observation = await env.reset()
        refused = await env.call(tc("reset_notes", {}))
    finally:
        await env.close()
    assert set(env.tools) == {"add_note", "list_notes", "whoami"}
    assert {t["function"]["name"] for t in env.openai_tools()} == set(env.tools)
    assert "reset_notes" not in observation
    assert refused.content.startswith("error: unknown tool 'reset_notes'")


async def test_an_allow_list_keeps_only_the_tools_it_names() -> None:
    env = MCPEnvironment(notes_server(allow=["list_notes"]))
    try:
        await env.reset()
    finally:
        await env.close()
    assert set(env.tools) == {"list_notes"}


async def test_read_only_flags_can_be_set_where_the_server_gives_no_hints() -> None:
    env = MCPEnvironment(notes_server(read_only=["list_notes"], writes=["whoami"]))
    try:
        await env.reset()
    finally:
        await env.close()
    effects = {name: env.tools[name].side_effect for name in ("add_note", "list_notes", "whoami")}
    assert effects == {"add_note": "write", "list_notes": "read", "whoami": "write"}


@pytest.mark.parametrize(
    "state", [{"state_tool": "dump_state"}, {"state_resource": "notes://state"}]
)
async def test_the_server_state_feeds_the_snapshot_and_final_state_checks(
    state: dict[str, str],
) -> None:
    env = MCPEnvironment(notes_server(**state))
    try:
        await env.reset({"initial_state": {"notes": ["seed"]}})
        await env.call(tc("add_note", {"text": "new"}))
        final = await env.state()
    finally:
        await env.close()
    assert final == {"notes": ["seed", "new"]}
    assert env.records[0].state_diff == {"/notes": [["seed"], ["seed", "new"]]}
    assert state_differences(final, {"notes": ["seed", "new"]}) == []
    assert state_differences(final, {"notes": ["seed"]}) != []


async def test_without_a_state_tool_the_snapshot_names_the_server_and_counts_calls() -> None:
    env = MCPEnvironment(notes_server())
    try:
        await env.reset()
        await env.call(tc("add_note", {"text": "x"}))
        state = await env.state()
    finally:
        await env.close()
    assert state == {"server": shlex.join(STATEFUL), "calls": 1}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"state_tool": "dump_state", "state_resource": "notes://state"}, "not both"),
        ({"read_only": ["whoami"], "writes": ["whoami"]}, "read_only and writes both name whoami"),
        ({"allow": ["add_note", "reset_notes"], "reset_tool": "reset_notes"}, "harness tool"),
        ({"env": {"A=B": "c"}}, "not an environment variable name"),
        ({"command": []}, "command"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"resett_tool": "reset_notes"}, "resett_tool"),
    ],
)
def test_bad_config_values_are_refused_with_what_is_wrong(options: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MCPServerConfig.model_validate({"command": STATEFUL, **options})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reset_tool": "wipe"}, "reset_tool: the server lists no tool named 'wipe'"),
        ({"state_tool": "dump"}, "state_tool: the server lists no tool named 'dump'"),
        ({"deny": ["call_logs"]}, "deny: the server lists no tool named 'call_logs'"),
        ({"read_only": ["list"]}, "read_only: the server lists no tool named 'list'"),
    ],
)
async def test_names_the_server_does_not_list_fail_the_start_clearly(
    options: dict, message: str
) -> None:
    env = MCPEnvironment(notes_server(**options))
    try:
        with pytest.raises(SandboxError, match=message):
            await env.reset()
        assert env.episode_dir is None  # the failed start cleaned up after itself
    finally:
        await env.close()


async def test_a_relative_server_path_fails_with_the_servers_own_complaint() -> None:
    env = MCPEnvironment(["python3", "no_such_server.py"], timeout_s=10)
    with pytest.raises(SandboxError, match=r"failed to start.*no_such_server\.py"):
        await env.reset()
    await env.close()


async def test_a_relative_script_path_is_found_from_where_the_job_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = Path(STATEFUL[-1])
    monkeypatch.chdir(script.parent.parent)
    relative = f"{script.parent.name}/{script.name}"
    env = MCPEnvironment(MCPServerConfig(command=[sys.executable, relative]), timeout_s=20)
    try:
        await env.reset()
        assert "add_note" in env.tools
        assert env.episode_dir is not None and Path(str(env.episode_dir)).is_dir()
    finally:
        await env.close()


async def test_listing_a_server_offers_what_its_episodes_will_offer() -> None:
    config = notes_server(
        reset_tool="reset_notes",
        deny=["call_log"],
        read_only=["list_notes"],
        env={"NOTES_FILE": "{episode_dir}/n.json"},
    )
    specs = await list_server_tools(config)
    assert {s.name: s.side_effect for s in specs} == {
        "add_note": "write",
        "list_notes": "read",
        "whoami": "read",
        "dump_state": "read",
    }
    with pytest.raises(MCPImportError, match="state_tool: the server lists no tool named 'x'"):
        await list_server_tools(notes_server(state_tool="x"))
