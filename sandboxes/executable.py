"""Tools backed by Python: a stateful class whose ``@tool`` methods become ToolSpecs.

One instance per episode, built from the task's ``initial_state``. Parameter schemas come
from the methods' type hints (through pydantic), descriptions from their docstrings
(first paragraph; ``name: text`` lines under ``Args:`` describe parameters). A method that
raises :class:`~sandboxes.base.ToolFailure` (or anything else) answers the agent with an
error message; the episode goes on. :func:`state_differences` compares a final state with an
expected one, for verifiable rewards.
"""

from __future__ import annotations

import inspect
import json
import random
import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import create_model

from sandboxes.base import Environment, jsonable, result_text
from tool_registry import Provenance, ToolSpec

F = TypeVar("F", bound=Callable[..., Any])
_ARG_LINE = re.compile(r"^\s{2,}(\w+)\s*(?:\([^)]*\))?:\s*(.+)$")


def tool(side_effect: Literal["read", "write"] = "read") -> Callable[[F], F]:
    """Mark a method of a :class:`ToolSet` as a tool the agent may call."""

    def mark(fn: F) -> F:
        fn.__summit_tool__ = side_effect  # type: ignore[attr-defined]
        return fn

    return mark


class ToolSet:
    """Base of stateful tool sets: ``__init__(state)``, ``snapshot()``, ``@tool`` methods."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.load(json.loads(json.dumps(state or self.default_state())))

    @classmethod
    def default_state(cls) -> dict[str, Any]:
        return {}

    def load(self, state: dict[str, Any]) -> None:
        self.data = state

    def snapshot(self) -> dict[str, Any]:
        """A JSON copy of the state (values JSON cannot hold become their nearest JSON)."""
        snapshot: dict[str, Any] = jsonable(self.data)
        return snapshot

    @classmethod
    def sample_state(cls, rng: random.Random) -> dict[str, Any]:
        """An initial state for a new task (what blueprints start from); by default the
        :meth:`default_state`. Override it to give tasks varied records to work on."""
        return cls.default_state()

    @classmethod
    def specs(cls) -> list[ToolSpec]:
        return [spec_of(cls.__name__, fn) for _, fn in tool_methods(cls)]


def tool_methods(cls: type) -> list[tuple[str, Callable[..., Any]]]:
    return [
        (n, f)
        for n, f in inspect.getmembers(cls, inspect.isfunction)
        if hasattr(f, "__summit_tool__")
    ]


def spec_of(owner: str, fn: Callable[..., Any]) -> ToolSpec:
    doc = inspect.getdoc(fn) or ""
    description = doc.split("\n\n")[0].replace("\n", " ").strip()
    arg_docs = {m.group(1): m.group(2) for line in doc.splitlines() if (m := _ARG_LINE.match(line))}
    hints = inspect.get_annotations(fn, eval_str=True)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        if name == "self":
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (hints.get(name, Any), default)
    arguments_model = create_model(f"{fn.__name__}_args", **fields)
    arg_schema: dict[str, Any] = dict(arguments_model.model_json_schema())
    arg_schema.pop("title", None)
    for name, prop in arg_schema.get("properties", {}).items():
        prop.pop("title", None)
        if name in arg_docs:
            prop["description"] = arg_docs[name]
    return ToolSpec(
        name=fn.__name__,
        description=description,
        parameters=arg_schema,
        side_effect=fn.__summit_tool__,  # type: ignore[attr-defined]
        provenance=Provenance(source="python", origin=owner),
    )


class ExecutableEnvironment(Environment):
    """An :class:`Environment` over one :class:`ToolSet` class."""

    def __init__(self, toolset: type[ToolSet]) -> None:
        super().__init__(toolset.specs())
        self.toolset = toolset
        self.instance: ToolSet | None = None

    async def _reset(self, task: dict[str, Any]) -> str:
        self.instance = self.toolset(task.get("initial_state"))
        return f"{len(self.tools)} tools ready: {', '.join(sorted(self.tools))}"

    async def _invoke(self, name: str, arguments: dict[str, Any]) -> str:
        if self.instance is None:
            self.instance = self.toolset(None)
        return result_text(getattr(self.instance, name)(**arguments))

    async def _snapshot(self) -> dict[str, Any]:
        return self.instance.snapshot() if self.instance is not None else {}


def state_differences(actual: Any, expected: Any, path: str = "") -> list[str]:
    """Where ``actual`` departs from ``expected`` (keys absent from ``expected`` are ignored;
    an expected ``null`` also holds where the key is absent: a record the task removes)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path or '/'}: expected an object"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                if value is not None:
                    problems.append(f"{path}/{key}: missing")
            else:
                problems += state_differences(actual[key], value, f"{path}/{key}")
        return problems
    if isinstance(expected, float) or isinstance(actual, float):
        ok = isinstance(actual, int | float) and abs(float(actual) - float(expected)) < 1e-6
        return [] if ok else [f"{path}: expected {expected!r}, got {actual!r}"]
    return [] if actual == expected else [f"{path}: expected {expected!r}, got {actual!r}"]
