"""The Environment interface every place an agent acts in implements.

``reset(task) -> observation``, ``call(tool_call) -> tool message``, ``state() -> dict``,
``close()``; async. Arguments are validated against the tool's JSON Schema before anything
runs, and every failure — unknown tool, bad JSON, invalid arguments, the tool raising —
comes back to the agent as a tool message that starts with ``error:``, never as an
exception that ends the roll-out. Every call is recorded (:class:`CallRecord`).

Subclasses implement ``_reset``, ``_invoke`` and ``_snapshot``; they do nothing at import
or construction time beyond storing their arguments.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from llm import Message, ToolCall
from tool_registry import ToolSpec

log = logging.getLogger(__name__)


class SandboxError(Exception):
    """The environment itself failed (not the agent's call): a crashed server, a dead container."""


class ToolFailure(Exception):
    """Raised by a tool to report a failure the agent should see (``error: <message>``)."""


@dataclass
class CallRecord:
    name: str
    arguments: str
    result: str
    error: str | None
    latency_s: float
    state_diff: dict[str, Any] = field(default_factory=dict)


class Environment(ABC):
    """A set of tools with state, for one episode at a time."""

    def __init__(self, tools: list[ToolSpec]) -> None:
        self.tools = {t.name: t for t in tools}
        self.records: list[CallRecord] = []

    # ----------------------------------------------------------------- interface
    async def reset(self, task: Mapping[str, Any] | None = None) -> str:
        """Start an episode; ``task`` may carry ``initial_state``. Returns an observation."""
        self.records = []
        return await self._reset(dict(task or {}))

    async def call(self, tool_call: ToolCall) -> Message:
        """Run one tool call and return the ``tool`` message for the agent."""
        started = time.perf_counter()
        before = await self.state()
        name, raw = tool_call.function.name, tool_call.function.arguments
        error = self._check(name, raw)
        if error is None:
            try:
                result = await self._invoke(name, json.loads(raw or "{}"))
            except ToolFailure as exc:
                error = str(exc)
            except SandboxError:
                raise
            except Exception as exc:  # noqa: BLE001 - a tool's bug is the agent's error message
                error = f"{type(exc).__name__}: {exc}"
        text = f"error: {error}" if error is not None else result
        after = await self.state()
        self.records.append(
            CallRecord(name, raw, text, error, time.perf_counter() - started, diff(before, after))
        )
        return Message(role="tool", tool_call_id=tool_call.id, content=text)

    async def state(self) -> dict[str, Any]:
        """The environment's state as JSON-able data."""
        return await self._snapshot()

    async def close(self) -> None:  # noqa: B027 - optional hook; most environments hold nothing
        """Release what the episode holds (processes, containers)."""

    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.to_openai() for t in self.tools.values()]

    # ------------------------------------------------------------ for subclasses
    @abstractmethod
    async def _reset(self, task: dict[str, Any]) -> str: ...

    @abstractmethod
    async def _invoke(self, name: str, arguments: dict[str, Any]) -> str: ...

    @abstractmethod
    async def _snapshot(self) -> dict[str, Any]: ...

    # ------------------------------------------------------------------ helpers
    def _check(self, name: str, raw: str) -> str | None:
        spec = self.tools.get(name)
        if spec is None:
            return f"unknown tool {name!r}; available: {', '.join(sorted(self.tools))}"
        try:
            arguments = json.loads(raw or "{}")
        except json.JSONDecodeError as exc:
            return f"arguments are not valid JSON: {exc.msg}"
        if not isinstance(arguments, dict):
            return "arguments must be a JSON object"
        # Draft 7, the draft ToolSpec checks schemas against: under 2020-12 a Draft-7 tuple
        # (`items: [...]`) is not even a schema, and validating with it raises.
        validator = jsonschema.Draft7Validator(spec.parameters)
        try:
            problem = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
        except Exception as exc:  # noqa: BLE001 - a schema that cannot be applied (bad $ref, regex)
            log.warning("tool %s: its parameters schema cannot be applied: %s", name, exc)
            return f"cannot check arguments for {name}: {type(exc).__name__}: {exc}"
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path) or "arguments"
            return f"invalid arguments for {name}: {where}: {problem.message}"
        return None


def diff(before: Any, after: Any, path: str = "") -> dict[str, Any]:
    """``{path: [old, new]}`` for every value that changed (dicts compared key by key)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: dict[str, Any] = {}
        for key in sorted(set(before) | set(after), key=str):
            out.update(diff(before.get(key), after.get(key), f"{path}/{key}"))
        return out
    return {} if before == after else {path or "/": [before, after]}
