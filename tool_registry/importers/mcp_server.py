"""Import the tools of a real MCP server, started as a subprocess and spoken to over stdio.

The server's ``tools/list`` is converted to ToolSpecs with the command line as provenance
and the server's read-only hint as the side-effect class (no hint: ``write``); the caller
may keep only some tools (``allow`` / ``deny``) and override the side-effect class where a
server publishes no hints (``read_only`` / ``writes``). A
server that crashes, hangs or speaks garbage gives :class:`MCPImportError` within
``timeout_s``: one line with what went wrong, the first line of garbage it printed and
the end of its stderr; the SDK's own traceback per garbage line is not logged. The
subprocess is stopped either way. The server's environment is the SDK's safe default
(``PATH``, ``HOME``, ...) plus ``env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import tempfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llm.yamlconf import error_message
from tool_registry.importers import ImportProblem, ImportReport
from tool_registry.schema_checks import undeclared_required
from tool_registry.spec import Provenance, ToolSpec


class MCPImportError(RuntimeError):
    """The MCP server could not be listed; the message says why and shows its stderr tail."""


async def list_mcp_tools(
    command: list[str],
    timeout_s: float = 30.0,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> list[Any]:
    """The raw tool objects the server lists (paginated ``tools/list`` followed to the end),
    the server started in ``cwd`` with ``env`` added to its environment."""
    from mcp import ClientSession, StdioServerParameters, types
    from mcp.client.stdio import stdio_client

    if not command:
        raise MCPImportError("no MCP server command given")
    params = StdioServerParameters(
        command=command[0], args=command[1:], env=dict(env or {}), cwd=cwd
    )
    garbage = _Garbage()
    with tempfile.TemporaryFile(mode="w+") as errlog, _no_sdk_tracebacks():

        async def run() -> list[Any]:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, message_handler=garbage) as session,
            ):
                await session.initialize()
                tools: list[Any] = []
                cursor = None
                while True:
                    request = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    page = await session.list_tools(params=request)
                    tools.extend(page.tools)
                    cursor = getattr(page, "next_cursor", None) or getattr(page, "nextCursor", None)
                    if not cursor:
                        return tools

        try:
            return await asyncio.wait_for(run(), timeout=timeout_s)
        except TimeoutError as exc:
            raise MCPImportError(
                f"MCP server `{shlex.join(command)}` did not answer within {timeout_s:g}s"
                + garbage.describe()
                + stderr_tail(errlog)
            ) from exc
        # Not the server's doing: the caller cancelled, or the process is being stopped.
        except (MCPImportError, asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        # Whatever the server did wrong (exit, junk, protocol error) is reported as one error;
        # the SDK raises it wrapped in exception groups, hence BaseException.
        except BaseException as exc:
            reason = failure_reason(exc)
            raise MCPImportError(
                f"MCP server `{shlex.join(command)}` failed: {reason}"
                + garbage.describe()
                + stderr_tail(errlog)
            ) from exc


def import_mcp(
    command: list[str],
    timeout_s: float = 30.0,
    *,
    env: Mapping[str, str] | None = None,
    allow: Collection[str] | None = None,
    deny: Collection[str] = (),
) -> ImportReport:
    """ToolSpecs for the server's tools (all, or those ``allow`` names, less those ``deny``
    names); invalid tool schemas are reported, not raised."""
    tools = asyncio.run(list_mcp_tools(command, timeout_s, env=env))
    return import_specs(tools, shlex.join(command), allow=allow, deny=deny)


def import_specs(
    tools: list[Any],
    origin: str,
    *,
    allow: Collection[str] | None = None,
    deny: Collection[str] = (),
    read_only: Collection[str] = (),
    writes: Collection[str] = (),
) -> ImportReport:
    """MCP tool objects (as the SDK lists them) → ToolSpecs with ``origin`` as provenance.

    Only the tools ``allow`` names (default: all) and ``deny`` does not; ``read_only`` and
    ``writes`` set the side-effect class of the tools they name over the server's hints.
    A name in any of these lists that the server does not list raises
    :class:`MCPImportError`: a misspelt deny entry would otherwise offer the agent a tool
    it was meant never to see.
    """
    listed = [tool.name for tool in tools]
    lists = {"allow": allow or (), "deny": deny, "read_only": read_only, "writes": writes}
    for field, names in lists.items():
        _require_listed(field, names, listed)
    report = ImportReport()
    for index, tool in enumerate(tools):
        if (allow is not None and tool.name not in allow) or tool.name in deny:
            continue
        schema = getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None)
        side_effect = _side_effect(tool)
        if tool.name in read_only or tool.name in writes:
            side_effect = "read" if tool.name in read_only else "write"
        try:
            report.specs.append(
                ToolSpec(
                    name=tool.name,
                    description=tool.description or "",
                    parameters=dict(schema or {"type": "object", "properties": {}}),
                    side_effect=side_effect,
                    provenance=Provenance(source="mcp", origin=origin),
                )
            )
        except ValidationError as exc:
            reason = "; ".join(error_message(e) for e in exc.errors())
            report.problems.append(ImportProblem(f"{origin}#{index}", tool.name, reason))
            continue
        for line in undeclared_required(report.specs[-1].parameters):
            report.warnings.append(
                ImportProblem(f"{origin}#{index}", tool.name, f"{line} (kept as it is)")
            )
    return report


def _require_listed(field: str, names: Collection[str], listed: list[str]) -> None:
    unknown = sorted(set(names) - set(listed))
    if unknown:
        raise MCPImportError(
            f"{field}: the server lists no tool named {', '.join(map(repr, unknown))}"
            f" (it lists: {', '.join(sorted(listed)) or 'nothing'})"
        )


def _side_effect(tool: Any) -> str:
    """``read`` only for a tool the server marks read-only. MCP's default is that a tool may
    change its environment; ``destructiveHint: false`` says a write is harmless, not absent."""
    hints = getattr(tool, "annotations", None)
    read_only = getattr(hints, "read_only_hint", getattr(hints, "readOnlyHint", None))
    return "read" if read_only is True else "write"


class _Garbage:
    """The session's message handler: counts what the server wrote that is not JSON-RPC
    (the SDK hands each such line over as an exception) and keeps the first line."""

    def __init__(self) -> None:
        self.lines = 0
        self.first = ""

    async def __call__(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.lines += 1
            if not self.first:
                errors = message.errors() if isinstance(message, ValidationError) else []
                given = errors[0].get("input") if errors else None
                self.first = given if isinstance(given, str) else str(message)

    def describe(self) -> str:
        if not self.lines:
            return ""
        first = " ".join(self.first.split())[:80]
        return f"; it wrote {self.lines} lines that are not JSON-RPC, the first: {first!r}"


class _DropTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None


@contextlib.contextmanager
def _no_sdk_tracebacks() -> Iterator[None]:
    """The MCP SDK logs a full traceback for every line of garbage a server prints; what
    went wrong reaches the caller in :class:`MCPImportError` instead."""
    logger, quiet = logging.getLogger("mcp.client.stdio"), _DropTracebacks()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def failure_reason(exc: BaseException) -> str:
    """One line for what went wrong, looking inside the SDK's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


def stderr_tail(errlog: Any, lines: int = 5) -> str:
    """The last lines the server wrote to ``errlog`` (a file), as a clause for an error."""
    errlog.flush()
    errlog.seek(0)
    text = errlog.read().strip().splitlines()[-lines:]
    return ("; server stderr: " + " | ".join(text)) if text else ""
