"""Importers turn outside tool descriptions into ToolSpecs, one module per source.

Every importer returns an :class:`ImportReport`: the specs it could make and, for each
entry it could not, where and why. None of them touches a repository; adding is the
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
