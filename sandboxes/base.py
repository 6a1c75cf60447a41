"""The Environment interface every place an agent acts in implements.

``reset(task) -> observation``, ``call(tool_call) -> tool message``, ``state() -> dict``,
``close()``; async. Arguments are validated against the tool's JSON Schema before anything
runs, and every failure — unknown tool, bad JSON, invalid arguments, the tool raising —
comes back to the agent as a tool message that starts with ``error:``, never as an
exception that ends the roll-out. Every call is recorded (:class:`CallRecord`). A result
that is not text is rendered as JSON by :func:`result_text`, which turns what JSON cannot
hold (decimals, dates, sets, bytes, other libraries' numbers, any object) into the nearest
JSON value or its text, so a result never fails to serialise.

Subclasses implement ``_reset``, ``_invoke`` and ``_snapshot``; they do nothing at import
or construction time beyond storing their arguments.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import fractions
import json
import logging
import numbers
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

    async def final_state(self) -> dict[str, Any]:
        """The state a finished episode is judged on, read before ``close``: the
        :meth:`state`, and, for an environment whose check needs the live episode (a
        repository's test suite), that check's result beside it."""
        return await self.state()

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


def result_text(value: Any) -> str:
    """What the agent reads for a tool's result: text as it is, anything else as JSON
    (through :func:`jsonable`, so it never raises).

    >>> result_text({"total": decimal.Decimal("19.90"), "tags": {"b", "a"}})
    '{"total": 19.9, "tags": ["a", "b"]}'
    """
    if isinstance(value, str):
        return value
    return json.dumps(jsonable(value), ensure_ascii=False)


def jsonable(value: Any, _seen: frozenset[int] = frozenset()) -> Any:
    """``value`` with everything JSON cannot hold replaced by the nearest JSON value:
    exact numbers of other types become JSON numbers (text when a float would change
    them: ``"1/3"``), dates ISO text, sets sorted lists, bytes UTF-8 text (else
    ``base64:...``), dict keys text, a container inside itself ``"<cycle>"``, and any
    other object its ``str``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if id(value) in _seen:
        return "<cycle>"
    inner = _seen | {id(value)}
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v, inner) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, inner) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v, inner) for v in value), key=_order)
    if isinstance(value, numbers.Number):
        return _number(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(data).decode("ascii")
    return _other(value, inner)


def _other(value: Any, seen: frozenset[int]) -> Any:
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value, seen)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, seen)
    for method in ("model_dump", "tolist"):  # pydantic models; numpy arrays and scalars
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                return jsonable(convert(), seen)
            except Exception:  # noqa: BLE001 - an odd object: fall back to its text
                continue
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the result
        return object.__repr__(value)


def _number(value: numbers.Number) -> Any:
    """A JSON number when one holds ``value`` exactly, else its text."""
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, decimal.Decimal):
        as_float = float(value)
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, numbers.Rational):
        try:
            as_float = float(value)
        except OverflowError:
            return str(value)
        return as_float if fractions.Fraction(as_float) == value else str(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


def _key(key: Any) -> str:
    plain = jsonable(key)
    return plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False)


def _order(item: Any) -> tuple[str, str]:
    """Sort key for set members of mixed types: by type name, then by JSON text."""
    return type(item).__name__, json.dumps(item, sort_keys=True, ensure_ascii=False)
