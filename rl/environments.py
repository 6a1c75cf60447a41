"""TRL ``environment_factory`` adapters over the sandboxes' executable environments.

TRL finds an environment's tools by listing the public functions of its *class*, renders
their schemas from type hints and Google-style docstrings, calls ``reset(**row)`` before
each roll-out and the tools by keyword during it. :func:`environment_class` builds one
such class per tool set (``sandboxes.toolsets.TOOLSETS``): one generated method per
``@tool``, whose signature and docstring come from the tool's ToolSpec, and whose call
goes through :class:`sandboxes.executable.ExecutableEnvironment` — so arguments are
checked against the real JSON Schema and every failure comes back to the model as an
``error: ...`` tool message, never an exception. After each call the instance's
``state`` attribute holds the world's state; verifiers read it (attributes are not tools).

The environment does not define ``get_reward``: TRL would add it as an extra reward of
fixed weight 1 that cannot see the final answer. The tool-use gym's verifier reads the
environment through TRL's ``environments`` reward argument instead (see ``docs/rl.md``).

Not here: simulated or MCP environments (they need a model or a process per episode).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
from collections.abc import Callable
from typing import Any, ClassVar

from llm import FunctionCall, ToolCall
from sandboxes.executable import ExecutableEnvironment, ToolSet
from sandboxes.toolsets import TOOLSETS
from tool_registry import ToolSpec

_PY_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


class ToolEnvironment:
    """Base of the generated classes; one instance per concurrent roll-out (TRL pools them)."""

    toolset: ClassVar[type[ToolSet]]

    def __init__(self) -> None:
        self.world = ExecutableEnvironment(self.toolset)
        self.task: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.calls = 0
        self._ids = itertools.count()

    def reset(self, **row: Any) -> str | None:
        """Start an episode from a dataset row: its ``task`` column (JSON) carries the
        TaskSpec whose ``initial_state`` seeds the world. Adds nothing to the prompt."""
        payload = json.loads(row.get("task") or "{}")
        self.task = payload.get("task") or {}
        asyncio.run(self.world.reset({"initial_state": self.task.get("initial_state") or None}))
        self.state = asyncio.run(self.world.state())
        self.calls = 0
        return None

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        call = ToolCall(
            id=f"call_{next(self._ids)}",
            function=FunctionCall(name=name, arguments=json.dumps(arguments, default=str)),
        )
        message = asyncio.run(self.world.call(call))
        self.state = asyncio.run(self.world.state())
        self.calls += 1
        return str(message.content)


def environment_class(name: str) -> type[ToolEnvironment]:
    """The TRL environment class for tool set ``name`` (``bank``, ``calendar``, ``files``)."""
    if name not in TOOLSETS:
        raise KeyError(f"unknown tool set {name!r}; known: {', '.join(sorted(TOOLSETS))}")
    return _classes(name)


_CACHE: dict[str, type[ToolEnvironment]] = {}


def _classes(name: str) -> type[ToolEnvironment]:
    # One class per tool set, made once: TRL tells environments apart by exact type.
    if name not in _CACHE:
        toolset = TOOLSETS[name]
        members: dict[str, Any] = {"toolset": toolset, "__doc__": f"Tools of the {name} set."}
        for spec in toolset.specs():
            members[spec.name] = tool_method(spec)
        _CACHE[name] = type(f"{toolset.__name__}Environment", (ToolEnvironment,), members)
    return _CACHE[name]


def tool_method(spec: ToolSpec) -> Callable[..., str]:
    """A method with ``spec``'s name, typed signature and Google docstring, calling the world."""

    def method(self: ToolEnvironment, **arguments: Any) -> str:
        return self._call(spec.name, arguments)

    properties: dict[str, Any] = spec.parameters.get("properties") or {}
    required = set(spec.parameters.get("required") or [])
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    lines = []
    for arg, schema in properties.items():
        kind = _PY_TYPES.get(str(schema.get("type")), str)
        annotation = kind if arg in required else kind | None
        default = inspect.Parameter.empty if arg in required else None
        parameters.append(
            inspect.Parameter(
                arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
        annotations[arg] = annotation
        description = " ".join(str(schema.get("description") or f"The {arg}.").split())
        if schema.get("enum"):
            description += f" (choices: {json.dumps(schema['enum'])})"
        lines.append(f"    {arg}: {description}")
    annotations["return"] = str
    method.__name__ = method.__qualname__ = spec.name
    method.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    summary = " ".join((spec.description or spec.name).split())
    method.__doc__ = summary + ("\n\nArgs:\n" + "\n".join(lines) if lines else "")
    return method
