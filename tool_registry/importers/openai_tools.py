"""Import OpenAI tool objects: a JSON list of them, a single one, or a file with one per line."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from llm.yamlconf import error_message
from tool_registry.importers import ImportProblem, ImportReport
from tool_registry.importers.function_docs import _entries
from tool_registry.schema_checks import undeclared_required
from tool_registry.spec import Provenance, ToolSpec


def import_openai_tools(path: str | Path) -> ImportReport:
    path = Path(path)
    report = ImportReport()
    provenance = Provenance(source="openai", origin=str(path))
    for where, entry in _entries(path, report):
        function = entry.get("function", entry) if isinstance(entry, dict) else {}
        name = str(function.get("name", "")) if isinstance(function, dict) else ""
        try:
            spec = ToolSpec.from_openai(entry, provenance=provenance)
        except (ValueError, ValidationError) as exc:
            reason = (
                error_message(exc.errors()[0]) if isinstance(exc, ValidationError) else str(exc)
            )
            if isinstance(exc, ValidationError):
                loc = ".".join(str(p) for p in exc.errors()[0]["loc"])
                reason = f"{loc}: {reason}"
            report.problems.append(ImportProblem(where, name, reason))
            continue
        report.specs.append(spec)
        for line in undeclared_required(spec.parameters):
            report.warnings.append(ImportProblem(where, spec.name, f"{line} (kept as it is)"))
    return report
