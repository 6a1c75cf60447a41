"""Real stateful tool sets for executable environments, each with an expected-state check.

The built-in sets are named (``bank``, ``calendar``, ``files``); a user's own
:class:`~sandboxes.executable.ToolSet` class is named by its import path
(``mypkg.tools:Inventory``) wherever a tool set is named — the synthesis config, RL task
rows, the tool-use gym — and gets everything the built-in ones get. :func:`load_toolset`
resolves either, and refuses a class that could not be played: one that cannot be
imported, is not a ``ToolSet``, has no ``@tool`` method, or has a tool parameter without
a type hint (its schema would accept anything).
"""

from __future__ import annotations

import importlib
import inspect
from functools import cache

from sandboxes.executable import ToolSet, tool_methods
from sandboxes.toolsets.bank import BankLedger
from sandboxes.toolsets.calendar import Calendar
from sandboxes.toolsets.files import FileSystem

TOOLSETS: dict[str, type[ToolSet]] = {
    "bank": BankLedger,
    "calendar": Calendar,
    "files": FileSystem,
}
__all__ = ["TOOLSETS", "BankLedger", "Calendar", "FileSystem", "ToolSetError", "load_toolset"]


class ToolSetError(ValueError):
    """A named tool set cannot be used; the message says which and why."""


@cache
def load_toolset(name: str) -> type[ToolSet]:
    """The tool set ``name``: a built-in name, or ``module.path:ClassName``."""
    if name in TOOLSETS:
        return TOOLSETS[name]
    if ":" not in name:
        known = ", ".join(TOOLSETS)
        raise ToolSetError(
            f"unknown tool set {name!r}; known: {known}, or your own as 'module.path:ClassName'"
        )
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ToolSetError(
            f"tool set {name!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    found = getattr(module, attribute, None)
    if found is None:
        raise ToolSetError(f"tool set {name!r}: module {module_name!r} has no {attribute!r}")
    if not (inspect.isclass(found) and issubclass(found, ToolSet)):
        raise ToolSetError(
            f"tool set {name!r}: {attribute} is not a subclass of sandboxes.executable.ToolSet"
        )
    check_toolset(name, found)
    return found


def check_toolset(name: str, cls: type[ToolSet]) -> None:
    """Refuse a class with no tools or an untyped tool parameter (``ToolSetError``)."""
    methods = tool_methods(cls)
    if not methods:
        raise ToolSetError(f"tool set {name!r}: {cls.__name__} has no @tool method")
    for method_name, fn in methods:
        for parameter in list(inspect.signature(fn).parameters.values())[1:]:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise ToolSetError(
                    f"tool set {name!r}: {method_name} takes *{parameter.name}: a tool's "
                    "parameters must be named and typed"
                )
            if parameter.annotation is inspect.Parameter.empty:
                raise ToolSetError(
                    f"tool set {name!r}: {method_name}({parameter.name}) has no type hint: "
                    "its schema is made from the hints"
                )
    try:
        cls.specs()
    except Exception as exc:
        raise ToolSetError(
            f"tool set {name!r}: its tool schemas cannot be made: {type(exc).__name__}: {exc}"
        ) from exc
