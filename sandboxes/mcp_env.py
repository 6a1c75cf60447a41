"""The tools of a real MCP server process, one server per episode, over stdio.

``reset`` starts the server and lists its tools; each call goes to ``tools/call`` with a
timeout; a tool that reports an error answers the agent with ``error: ...``. A server
that dies or stops answering raises :class:`~sandboxes.base.SandboxError`: the episode is
failed, nothing else is lost, and ``close`` still stops the process. Use one environment
from one task (the MCP client's streams belong to the task that opened them).
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from typing import Any

from sandboxes.base import Environment, SandboxError, ToolFailure
from tool_registry.importers.mcp_server import import_specs


class MCPEnvironment(Environment):
    def __init__(self, command: list[str], *, timeout_s: float = 30.0) -> None:
        super().__init__([])
        self.command = command
        self.timeout_s = timeout_s
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: Any = None
        self.calls = 0

    async def _reset(self, task: dict[str, Any]) -> str:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        await self.close()
        self.calls = 0
        stack = contextlib.AsyncExitStack()
        params = StdioServerParameters(command=self.command[0], args=self.command[1:])
        try:
            read, write = await stack.enter_async_context(stdio_client(params))
            session = await stack.enter_async_context(ClientSession(read, write))
            await asyncio.wait_for(session.initialize(), self.timeout_s)
            listed = await asyncio.wait_for(session.list_tools(), self.timeout_s)
        except BaseException as exc:
            await stack.aclose()
            if isinstance(exc, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
                raise
            raise SandboxError(
                f"MCP server `{shlex.join(self.command)}` failed to start: {exc}"
            ) from exc
        self._stack, self._session = stack, session
        report = import_specs(listed.tools, shlex.join(self.command))
        self.tools = {s.name: s for s in report.specs}
        return f"MCP tools ready: {', '.join(sorted(self.tools))}"

    async def _invoke(self, name: str, arguments: dict[str, Any]) -> str:
        if self._session is None:
            raise SandboxError("the MCP environment was not reset")
        self.calls += 1
        try:
            result = await asyncio.wait_for(
                self._session.call_tool(name, arguments), self.timeout_s
            )
        except TimeoutError as exc:
            raise SandboxError(
                f"MCP tool {name} did not answer within {self.timeout_s:g}s"
            ) from exc
        except Exception as exc:
            raise SandboxError(f"MCP server failed during {name}: {exc}") from exc
        texts = [getattr(c, "text", "") for c in getattr(result, "content", []) or []]
        text = "\n".join(t for t in texts if t)
        if getattr(result, "is_error", False) or getattr(result, "isError", False):
            raise ToolFailure(text or "the tool reported an error")
        return text

    async def _snapshot(self) -> dict[str, Any]:
        return {"server": shlex.join(self.command), "calls": self.calls}

    async def close(self) -> None:
        stack, self._stack, self._session = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
