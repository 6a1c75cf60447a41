"""The MCP importer against real server processes: a PyPI server, a FastMCP fixture, bad ones."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import pytest

from tool_registry.importers.mcp_server import MCPImportError, import_mcp, list_mcp_tools

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
