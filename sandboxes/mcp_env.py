"""The tools of a real MCP server process, over stdio, with state kept apart per episode.

Many servers keep their state outside the process (files, a database), so a fresh process
is not a fresh state. Each episode therefore gets its own temporary directory, the
server's working directory by default, named to the server by the placeholder
``{episode_dir}`` in its ``command``, ``env`` values and ``cwd`` (and ``{episode_id}``, the
task's id); a task's ``initial_state`` is written there as ``initial_state.json`` for a
server that seeds itself from it. The directory is removed at ``close``. Environments
never share a process, so concurrent episodes of one server see only their own changes.

Without a ``reset_tool`` every ``reset`` starts a new process in a new directory. With one,
the process and its directory live on across this environment's episodes and the reset
tool is called at the start of each (also the first, for state kept elsewhere). Harness
tools (the reset and state tools) are never offered to the agent, nor what ``deny`` names
or ``allow`` leaves out, nor the ``hidden_arguments`` a harness fills (a namespace key).
With a ``state_tool`` or ``state_resource`` the environment's state is what the server
reports (parsed as JSON when it is JSON), so final-state checks work as for tool sets;
with a ``state_reader`` it is what that function reads from the episode's directory (a
digest, when the whole state is too big to carry in every trajectory); without any, it is
only the server and the count of calls. A server that wraps each answer in an envelope
can name the field the agent reads (``result_field``).

A tool that reports an error answers the agent with ``error: ...``. A server that fails to
start, dies or stops answering raises :class:`~sandboxes.base.SandboxError`: the episode is
failed, nothing else is lost, and ``close`` still stops the process. Use one environment
from one task (the MCP client's streams belong to the task that opened them). Not
covered: servers over HTTP, and state a server keeps where no placeholder reaches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ImportString, model_validator

from sandboxes.base import Environment, SandboxError, ToolFailure, jsonable
from tool_registry import ToolSpec
from tool_registry.importers.mcp_server import (
    MCPImportError,
    failure_reason,
    import_specs,
    list_mcp_tools,
    stderr_tail,
)

log = logging.getLogger(__name__)
EPISODE_DIR, EPISODE_ID = "{episode_dir}", "{episode_id}"
INITIAL_STATE_FILE = "initial_state.json"


class MCPServerConfig(BaseModel):
    """How to start one MCP server and which of its tools the agent sees."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] = Field(min_length=1)
    """Command line that starts the server, e.g. ``[python, -m, mcp_server_time]``;
    ``{episode_dir}`` and ``{episode_id}`` in an argument are replaced per episode."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment variables for the server, over the SDK's safe defaults (``PATH``,
    ``HOME``, ...); the placeholders are replaced in values, e.g. ``{episode_dir}/db.sqlite``."""
    cwd: str = EPISODE_DIR
    """The server's working directory; default: the episode's own fresh directory."""
    reset_tool: str | None = None
    """A tool of the server that clears its state (called with no arguments): the process
    is then kept across episodes and this tool called at the start of each."""
    state_tool: str | None = None
    """A tool (no arguments) whose result is the server's state, for final-state checks."""
    state_resource: str | None = None
    """Or a resource URI whose contents are the server's state."""
    state_reader: ImportString[Callable[[Path], dict[str, Any]]] | None = None
    """Or a function ``(episode_dir) -> dict``, given as ``module:function``, that reads the
    state from the files the server keeps in the episode's directory."""
    hidden_arguments: list[str] = Field(default_factory=list)
    """Arguments taken out of every tool's schema the agent sees, and out of every call it
    makes (a harness's namespace key, such as a state key)."""
    result_field: str | None = None
    """A dotted path into a tool's JSON result whose value is what the agent reads, for
    servers that wrap each answer in an envelope; a result without it is passed whole."""
    allow: list[str] | None = None
    """Only these tools are offered to the agent; default: all but the harness tools."""
    deny: list[str] = Field(default_factory=list)
    """Tools never offered to the agent (call logs, admin tools)."""
    read_only: list[str] = Field(default_factory=list)
    """Tools to mark read-only where the server publishes no hint (default: may write)."""
    writes: list[str] = Field(default_factory=list)
    """Tools to mark as writing whatever the server's hints say."""
    timeout_s: float = Field(default=30.0, gt=0)
    """Seconds to wait for the server to start, and for each call."""

    @model_validator(mode="after")
    def _consistent(self) -> MCPServerConfig:
        given = [f for f in ("state_tool", "state_resource", "state_reader") if getattr(self, f)]
        if len(given) > 1:
            raise ValueError(
                "give one of state_tool, state_resource and state_reader, "
                f"not both {given[0]} and {given[1]}"
            )
        for first, second in (("read_only", "writes"), ("allow", "deny")):
            both = set(getattr(self, first) or ()) & set(getattr(self, second) or ())
            if both:
                raise ValueError(f"{first} and {second} both name {', '.join(sorted(both))}")
        harness = set(self.allow or ()) & self.harness_tools()
        if harness:
            raise ValueError(
                f"allow names {', '.join(sorted(harness))}, a harness tool (reset_tool or "
                "state_tool) that is never offered to the agent"
            )
        bad = [k for k in self.env if not k or "=" in k]
        if bad:
            raise ValueError(f"env: {bad[0]!r} is not an environment variable name")
        return self

    def reads_state(self) -> bool:
        """Whether episodes can read the server's state (final-state checks, blueprints)."""
        return bool(self.state_tool or self.state_resource or self.state_reader)

    def harness_tools(self) -> set[str]:
        """The tools the harness calls and the agent never sees."""
        return {t for t in (self.reset_tool, self.state_tool) if t}

    def launch(self, episode_dir: Path, episode_id: str) -> tuple[list[str], dict[str, str], str]:
        """Command, environment and working directory for one episode."""

        def fill(text: str) -> str:
            return text.replace(EPISODE_DIR, str(episode_dir)).replace(EPISODE_ID, episode_id)

        return (
            [anchored(fill(a)) for a in self.command],
            {k: fill(v) for k, v in self.env.items()},
            fill(self.cwd),
        )


def anchored(argument: str) -> str:
    """``argument`` made absolute when it names a relative path that exists where the job
    runs, so ``[python, servers/notes.py]`` still starts although the server's working
    directory is the episode's; options, module names and absent paths pass unchanged."""
    if argument.startswith("-") or os.path.isabs(argument):
        return argument
    looks_like_path = os.sep in argument or Path(argument).suffix != ""
    candidate = Path(argument)
    return str(candidate.resolve()) if looks_like_path and candidate.exists() else argument


def offered_specs(server: MCPServerConfig, tools: list[Any]) -> list[ToolSpec]:
    """ToolSpecs of the listed ``tools`` the agent may see under ``server``'s filters and
    overrides; :class:`MCPImportError` when the config names a tool the server lacks."""
    names = sorted(t.name for t in tools)
    for field in ("reset_tool", "state_tool"):
        wanted = getattr(server, field)
        if wanted and wanted not in names:
            raise MCPImportError(
                f"{field}: the server lists no tool named {wanted!r} "
                f"(it lists: {', '.join(names) or 'nothing'})"
            )
    origin = shlex.join(server.command)
    report = import_specs(
        tools,
        origin,
        allow=server.allow,
        deny=[*server.deny, *sorted(server.harness_tools())],
        read_only=server.read_only,
        writes=server.writes,
    )
    for problem in report.problems:
        log.warning("MCP server `%s`: skipped %s", origin, problem)
    if not server.hidden_arguments:
        return report.specs
    return [_without(spec, server.hidden_arguments) for spec in report.specs]


def _without(spec: ToolSpec, hidden: list[str]) -> ToolSpec:
    """``spec`` with the ``hidden`` arguments gone from its schema."""
    parameters = dict(spec.parameters)
    parameters["properties"] = {
        k: v for k, v in (parameters.get("properties") or {}).items() if k not in hidden
    }
    if "required" in parameters:
        parameters["required"] = [r for r in parameters["required"] if r not in hidden]
    return spec.model_copy(update={"parameters": parameters})


async def list_server_tools(server: MCPServerConfig) -> list[ToolSpec]:
    """The tools an agent of ``server`` will be offered, listed from a server started as
    for an episode (in a scratch directory, removed after); :class:`MCPImportError`
    when it cannot be listed or the config names a tool it lacks."""
    with tempfile.TemporaryDirectory(prefix="summit-mcp-") as scratch:
        command, env, cwd = server.launch(Path(scratch), "listing")
        Path(cwd).mkdir(parents=True, exist_ok=True)
        tools = await list_mcp_tools(command, server.timeout_s, env=env, cwd=cwd)
    return offered_specs(server, tools)


class MCPEnvironment(Environment):
    def __init__(
        self, server: MCPServerConfig | list[str], *, timeout_s: float | None = None
    ) -> None:
        super().__init__([])
        config = server if isinstance(server, MCPServerConfig) else MCPServerConfig(command=server)
        if timeout_s is not None:
            config = config.model_copy(update={"timeout_s": timeout_s})
        self.server = config
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: Any = None
        self.episode_dir: Path | None = None
        self.calls = 0

    @property
    def command(self) -> list[str]:
        return self.server.command

    @property
    def timeout_s(self) -> float:
        return self.server.timeout_s

    async def _reset(self, task: dict[str, Any]) -> str:
        self.calls = 0
        if self._session is not None and self.server.reset_tool:
            try:
                self._write_initial_state(task)
                await self._harness_call(self.server.reset_tool)
                return self._observation()
            except SandboxError as exc:
                log.warning("%s; starting the server afresh", exc)
        await self.close()
        self.episode_dir = Path(tempfile.mkdtemp(prefix="summit-mcp-"))
        self._write_initial_state(task)
        try:
            await self._start(str(task.get("id") or uuid.uuid4().hex[:12]))
            if self.server.reset_tool:
                await self._harness_call(self.server.reset_tool)
        except BaseException:
            await self.close()
            raise
        return self._observation()

    async def _start(self, episode_id: str) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        assert self.episode_dir is not None
        command, env, cwd = self.server.launch(self.episode_dir, episode_id)
        Path(cwd).mkdir(parents=True, exist_ok=True)
        params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=cwd)
        stack = contextlib.AsyncExitStack()
        errlog = stack.enter_context(tempfile.TemporaryFile(mode="w+"))  # noqa: SIM115 - the stack closes it
        try:
            read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
            session = await stack.enter_async_context(ClientSession(read, write))
            await asyncio.wait_for(session.initialize(), self.timeout_s)
            listed = await asyncio.wait_for(session.list_tools(), self.timeout_s)
        except BaseException as exc:
            reason = failure_reason(exc) + stderr_tail(errlog)
            await stack.aclose()
            if isinstance(exc, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
                raise
            raise SandboxError(
                f"MCP server `{shlex.join(command)}` failed to start: {reason}"
            ) from exc
        self._stack, self._session = stack, session
        self._offer(listed.tools)

    def _offer(self, tools: list[Any]) -> None:
        """Keep the tools the agent may see; a config naming absent tools fails the start."""
        try:
            self.tools = {s.name: s for s in offered_specs(self.server, tools)}
        except MCPImportError as exc:
            raise SandboxError(str(exc)) from exc

    def _observation(self) -> str:
        return f"MCP tools ready: {', '.join(sorted(self.tools))}"

    def _write_initial_state(self, task: dict[str, Any]) -> None:
        assert self.episode_dir is not None
        path = self.episode_dir / INITIAL_STATE_FILE
        if task.get("initial_state"):
            path.write_text(json.dumps(jsonable(task["initial_state"]), ensure_ascii=False))
        else:
            path.unlink(missing_ok=True)

    async def _invoke(self, name: str, arguments: dict[str, Any]) -> str:
        self.calls += 1
        hidden = self.server.hidden_arguments
        result = await self._call(name, {k: v for k, v in arguments.items() if k not in hidden})
        text = _field(_result_text(result), self.server.result_field)
        if getattr(result, "is_error", False):
            raise ToolFailure(text or "the tool reported an error")
        return text

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        if self._session is None:
            raise SandboxError("the MCP environment was not reset")
        try:
            return await asyncio.wait_for(self._session.call_tool(name, arguments), self.timeout_s)
        except TimeoutError as exc:
            raise SandboxError(
                f"MCP tool {name} did not answer within {self.timeout_s:g}s"
            ) from exc
        except Exception as exc:
            raise SandboxError(f"MCP server failed during {name}: {exc}") from exc

    async def _harness_call(self, name: str) -> Any:
        """A harness tool: its failure is the environment's, not the agent's."""
        result = await self._call(name, {})
        if getattr(result, "is_error", False):
            raise SandboxError(f"the server's {name} failed: {_result_text(result)}")
        return result

    async def _snapshot(self) -> dict[str, Any]:
        state = await self.server_state()
        if state is None:
            return {"server": shlex.join(self.command), "calls": self.calls}
        return state if isinstance(state, dict) else {"state": state}

    async def server_state(self) -> Any:
        """What the configured state tool or resource reports (JSON parsed); ``None``
        when neither is configured or no server runs."""
        if self._session is None:
            return None
        if self.server.state_tool:
            result = await self._harness_call(self.server.state_tool)
            return _parsed(_result_text(result), getattr(result, "structured_content", None))
        if self.server.state_resource:
            return _parsed(await self._read_resource(self.server.state_resource), None)
        if self.server.state_reader is not None and self.episode_dir is not None:
            try:
                return await asyncio.to_thread(self.server.state_reader, self.episode_dir)
            except Exception as exc:
                raise SandboxError(f"state_reader failed: {type(exc).__name__}: {exc}") from exc
        return None

    async def _read_resource(self, uri: str) -> str:
        try:
            result = await asyncio.wait_for(self._session.read_resource(uri), self.timeout_s)
        except TimeoutError as exc:
            raise SandboxError(f"MCP resource {uri} did not answer in {self.timeout_s:g}s") from exc
        except Exception as exc:
            raise SandboxError(f"state_resource {uri}: {exc}") from exc
        return "\n".join(getattr(c, "text", "") or "" for c in result.contents)

    async def close(self) -> None:
        stack, self._stack, self._session = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
        episode_dir, self.episode_dir = self.episode_dir, None
        if episode_dir is not None:
            shutil.rmtree(episode_dir, ignore_errors=True)


def _result_text(result: Any) -> str:
    """The text parts of a tool result; structured content as JSON when there is no text;
    other parts (images, resources) named by kind so the agent knows they were there."""
    parts = []
    for content in getattr(result, "content", None) or []:
        text = getattr(content, "text", None)
        if text is not None:
            parts.append(text)
        else:
            kind = getattr(content, "mime_type", None) or getattr(content, "type", "content")
            parts.append(f"[{kind}]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        return json.dumps(jsonable(structured), ensure_ascii=False)
    return "\n".join(parts)


def _field(text: str, path: str | None) -> str:
    """The value at the dotted ``path`` of the JSON ``text`` (JSON unless it is a string);
    ``text`` itself when there is no path, it is not JSON or the path is not in it."""
    if path is None:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return text
        value = value[key]
    return value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)


def _parsed(text: str, structured: Any) -> Any:
    """JSON when the text is JSON, else the structured content, else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return jsonable(structured) if structured is not None else text
