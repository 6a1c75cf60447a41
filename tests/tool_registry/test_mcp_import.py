"""The MCP importer against real server processes: a PyPI server, a FastMCP fixture, bad ones."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import pytest

from tool_registry.importers.mcp_server import (
    MCPImportError,
    import_mcp,
    import_specs,
    list_mcp_tools,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
pytestmark = pytest.mark.integration


def test_real_time_server_from_pypi() -> None:
    command = shutil.which("mcp-server-time") or str(
        Path(sys.executable).parent / "mcp-server-time"
    )
    report = import_mcp([command])
    names = {s.name for s in report.specs}
    assert {"get_current_time", "convert_time"} <= names and not report.problems
    spec = next(s for s in report.specs if s.name == "get_current_time")
    assert spec.parameters["required"] == ["timezone"]
    assert spec.provenance.source == "mcp" and "mcp-server-time" in spec.provenance.origin


def test_fixture_server_written_with_the_sdk() -> None:
    report = import_mcp([sys.executable, str(FIXTURES / "notes_server.py")])
    by_name = {s.name: s for s in report.specs}
    assert set(by_name) == {"add_note", "search_notes"}
    add = by_name["add_note"]
    assert add.description.startswith("Add a note") and add.parameters["required"] == [
        "title",
        "body",
    ]
    assert by_name["search_notes"].parameters["properties"]["limit"]["default"] == 10


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("crash", "fatal: cannot open the database"),
        ("hang", "did not answer within 3s"),
        ("garbage", "MCP server"),
    ],
)
def test_bad_servers_fail_clearly_within_the_timeout(mode: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(MCPImportError, match=message):
        import_mcp([sys.executable, str(FIXTURES / "bad_servers.py"), mode], timeout_s=3)
    assert time.monotonic() - started < 3 + 10  # timeout plus process teardown


async def test_cancelling_an_import_cancels_it_instead_of_failing_it() -> None:
    command = [sys.executable, str(FIXTURES / "bad_servers.py"), "hang"]
    listing = asyncio.create_task(list_mcp_tools(command, timeout_s=30))
    await asyncio.sleep(0.5)
    listing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await listing


STATEFUL = [
    sys.executable,
    str(FIXTURES.parent.parent / "sandboxes" / "fixtures" / "stateful_server.py"),
]


def test_allow_and_deny_lists_choose_the_tools() -> None:
    allowed = import_mcp(STATEFUL, allow=["add_note", "list_notes", "call_log"], deny=["call_log"])
    assert {s.name for s in allowed.specs} == {"add_note", "list_notes"}
    denied = import_mcp(STATEFUL, deny=["reset_notes", "call_log"])
    assert {s.name for s in denied.specs} == {
        "add_note",
        "list_notes",
        "whoami",
        "dump_state",
    }


def test_a_filter_naming_an_unlisted_tool_is_refused() -> None:
    with pytest.raises(MCPImportError, match="deny: the server lists no tool named 'call_logs'"):
        import_mcp(STATEFUL, deny=["call_logs"])


async def test_read_only_flags_override_the_servers_hints() -> None:
    tools = await list_mcp_tools(STATEFUL)
    plain = {s.name: s.side_effect for s in import_specs(tools, "x").specs}
    assert plain["list_notes"] == "write" and plain["whoami"] == "read"
    report = import_specs(tools, "x", read_only=["list_notes"], writes=["whoami"])
    changed = {s.name: s.side_effect for s in report.specs}
    assert changed["list_notes"] == "read" and changed["whoami"] == "write"


def test_env_vars_reach_the_server() -> None:
    exits_with_x = [sys.executable, "-c", "import os, sys; sys.exit(os.environ['X'])"]
    with pytest.raises(MCPImportError, match="marker-123"):
        import_mcp(exits_with_x, timeout_s=10, env={"X": "marker-123"})
