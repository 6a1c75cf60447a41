"""Importers turn outside tool descriptions into ToolSpecs, one module per source.

Every importer returns an :class:`ImportReport`: the specs it could make and, for each
entry it could not, where and why, and warnings about entries kept as they are (valid,
but odd: a ``required`` name with no property). None of them touches a repository; adding is the
caller's step, so a failed import leaves the repository unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tool_registry.spec import ToolSpec


@dataclass
class ImportProblem:
    where: str
    """File and entry (``tools.jsonl:17`` or ``tools.json[3]``)."""
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.name or '(unnamed)'}: {self.reason}"


@dataclass
class ImportReport:
    specs: list[ToolSpec] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    """Entries that could not be imported (not in ``specs``)."""
    warnings: list[ImportProblem] = field(default_factory=list)
    """Entries imported as they are that a reader should know about."""
    repeated: int = 0
    """Entries that repeated a tool already in ``specs`` (same name and parameters): a
    benchmark lists the same function beside many questions; it is imported once."""
