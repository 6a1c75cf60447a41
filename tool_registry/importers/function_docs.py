"""Import function-doc collections (JSON or JSONL) as used by function-calling datasets.

Entries carry ``name``, ``description`` and ``parameters`` whose types may be written the
Python way (``dict``, ``float``, ``tuple``, ``any``…) or, as in the Java and JavaScript
categories of the Berkeley Function-Calling Leaderboard (BFCL), the way those languages
name them (``HashMap``, ``ArrayList``, ``String``, ``long``, ``Boolean``…), with
``required`` either as a list on the object or as ``required: true`` on a property.
:func:`normalise_schema` rewrites them into valid JSON Schema, mapping each type name as
BFCL does when it shows the function to a model (``HashMap`` → ``object``, ``ArrayList``
→ ``array``, ``char`` → ``string``, ``double`` → ``number``), except ``any``, which stays
untyped: any value, not only the string BFCL's Java checker compares as source text.

A benchmark row that nests its function docs (``{"id", "question", "function": [...]}``,
or one ``function`` object beside the ``question``) contributes every function it lists;
a function listed beside many questions is imported once (same name and parameters), its
origin naming the first row (``file#row-id``). A ``required`` name that no property
declares is valid JSON Schema: kept as it is, and reported as a warning.

An entry that still cannot be used is reported with its reason and the rest are kept.
Names that break OpenAI's rules (``math.factorial``) are rewritten (``math_factorial``)
and the original kept as an ``alias:`` tag.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llm.yamlconf import error_message, read_text
from tool_registry.importers import ImportProblem, ImportReport
from tool_registry.schema_checks import json_problem, undeclared_required
from tool_registry.spec import Provenance, ToolSpec, schema_hash

TYPE_NAMES = {  # looked up in lower case: ``String``, ``Boolean``, ``HashMap`` too
    "dict": "object",
    "object": "object",
    "map": "object",
    "mapping": "object",
    "float": "number",
    "double": "number",
    "number": "number",
    "decimal": "number",
    "int": "integer",
    "integer": "integer",
    "long": "integer",
    "short": "integer",
    "byte": "integer",
    "bigint": "integer",
    "str": "string",
    "string": "string",
    "text": "string",
    "char": "string",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "tuple": "array",
    "set": "array",
    "sequence": "array",
    "arraylist": "array",
    "queue": "array",
    "stack": "array",
    "hashmap": "object",
    "hashtable": "object",
    "none": "null",
    "null": "null",
    "nonetype": "null",
}
ANY = {"any", "anytype", "object_any", "mixed", ""}
KEYWORDS_KEPT = {
    "description",
    "enum",
    "default",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "title",
    "examples",
    "const",
}


class SchemaProblem(ValueError):
    pass


def normalise_schema(node: Any, path: str = "parameters") -> dict[str, Any]:
    """A Python-, Java- or JavaScript-style type description → JSON Schema (raises
    :class:`SchemaProblem` on a type name it does not know)."""
    if isinstance(node, str):
        node = {"type": node}
    if not isinstance(node, dict):
        raise SchemaProblem(f"{path}: expected an object, got {type(node).__name__}")
    out: dict[str, Any] = {k: v for k, v in node.items() if k in KEYWORDS_KEPT}
    kind = node.get("type")
    if isinstance(kind, list):
        out["type"] = [_type_name(k, path) for k in kind if str(k).lower() not in ANY]
    elif kind is not None and str(kind).strip().lower() not in ANY:
        out["type"] = _type_name(kind, path)
    if out.get("type") == "object" or "properties" in node:
        out.setdefault("type", "object")
        properties = node.get("properties") or {}
        if not isinstance(properties, dict):
            raise SchemaProblem(f"{path}.properties: expected an object")
        given = node.get("required")
        required: list[str] = list(given) if isinstance(given, list) else []
        out["properties"] = {}
        for key, sub in properties.items():
            if isinstance(sub, dict) and sub.get("required") is True:
                required = [*required, key]
            out["properties"][key] = normalise_schema(sub, f"{path}.properties.{key}")
        if required:  # names no property declares are kept: see undeclared_required
            out["required"] = list(dict.fromkeys(required))
    if out.get("type") == "array" and "items" in node:
        items = node["items"]
        if isinstance(items, list):  # tuple-style positional items
            out["prefixItems"] = [
                normalise_schema(i, f"{path}.items[{n}]") for n, i in enumerate(items)
            ]
        else:
            out["items"] = normalise_schema(items, f"{path}.items")
    if "enum" in out and not isinstance(out["enum"], list):
        raise SchemaProblem(f"{path}.enum: expected a list")
    return out


def _type_name(kind: Any, path: str) -> str:
    name = str(kind).strip().lower()
    if name not in TYPE_NAMES:
        raise SchemaProblem(f"{path}.type: unknown type {kind!r}")
    return TYPE_NAMES[name]


_BAD_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def to_spec(entry: dict[str, Any], origin: str) -> ToolSpec:
    entry = entry.get("function", entry) if isinstance(entry.get("function"), dict) else entry
    raw_name = entry.get("name") or entry.get("api_name")
    if not isinstance(raw_name, str) or not raw_name.strip():
        raise SchemaProblem("missing name")
    name = _BAD_NAME_CHARS.sub("_", raw_name.strip())[:64]
    parameters = entry.get("parameters", entry.get("arguments", {"type": "object"}))
    problem = json_problem(parameters)  # before normalise_schema recurses into it
    if problem:
        raise SchemaProblem(f"parameters: {problem}")
    schema = normalise_schema(parameters or {"type": "dict", "properties": {}})
    if schema.get("type") != "object":
        raise SchemaProblem("parameters: the top level must be an object")
    tags = (f"alias:{raw_name}",) if name != raw_name else ()
    try:
        return ToolSpec(
            name=name,
            description=str(entry.get("description") or ""),
            parameters=schema,
            tags=tags,
            provenance=Provenance(source="function_docs", origin=origin),
        )
    except ValidationError as exc:
        raise SchemaProblem("; ".join(error_message(e) for e in exc.errors())) from exc


def import_function_docs(path: str | Path) -> ImportReport:
    """Every function of a JSON file (a list, or one object) or JSONL file, whether its
    entries are function docs or benchmark rows nesting them; bad ones reported, the rest
    kept, each tool once."""
    path = Path(path)
    report = ImportReport()
    seen: set[tuple[str, str]] = set()
    for where, entry, origin in _functions(path, report):
        name = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        if not isinstance(entry, dict):
            report.problems.append(ImportProblem(where, "", "entry is not an object"))
            continue
        try:
            spec = to_spec(entry, origin)
        except SchemaProblem as exc:
            report.problems.append(ImportProblem(where, name, str(exc)))
            continue
        key = (spec.name, schema_hash(spec.parameters))
        if key in seen:
            report.repeated += 1
            continue
        seen.add(key)
        report.specs.append(spec)
        for line in undeclared_required(spec.parameters):
            report.warnings.append(ImportProblem(where, spec.name, f"{line} (kept as it is)"))
    return report


def _functions(path: Path, report: ImportReport) -> list[tuple[str, Any, str]]:
    """``(where, function doc, origin)`` for each entry, a benchmark row standing for the
    functions it nests (``row.function[2]``, origin ``file#row-id``)."""
    found: list[tuple[str, Any, str]] = []
    for where, entry in _entries(path, report):
        if not _is_benchmark_row(entry):
            found.append((where, entry, str(path)))
            continue
        row_id = entry.get("id")
        origin = f"{path}#{row_id}" if isinstance(row_id, (str, int)) else where
        nested = entry["function"]
        if isinstance(nested, dict):
            found.append((f"{where}.function", nested, origin))
        else:
            found.extend((f"{where}.function[{n}]", f, origin) for n, f in enumerate(nested))
    return found


def _is_benchmark_row(entry: Any) -> bool:
    """A row nesting function docs: a ``function`` list, or a ``function`` object beside a
    ``question`` (an OpenAI tool's ``function`` object stands beside ``type`` instead)."""
    if not isinstance(entry, dict) or "name" in entry:
        return False
    nested = entry.get("function")
    return isinstance(nested, list) or (isinstance(nested, dict) and "question" in entry)


def _entries(path: Path, report: ImportReport) -> list[tuple[str, Any]]:
    """The entries of one JSON document (a list of them, or a single one) or of JSONL.

    The whole text is read as one document first, so pretty-printed JSON is not taken line
    by line; a UTF-8 BOM is skipped. What cannot be parsed is reported with file and line;
    a file that cannot be read at all (missing, a directory, binary) raises
    :class:`~llm.yamlconf.YamlConfigError`.
    """
    text = read_text(path)
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        if text.lstrip().startswith("["):  # a list, never JSONL: one problem where it broke
            report.problems.append(_invalid(path, exc))
            return []
        entries, problems = _jsonl_entries(path, text)
        # Not one line stood alone: one broken document (pretty-printed), not JSONL.
        report.problems.extend(problems if entries else [_invalid(path, exc)])
        return entries
    if isinstance(data, list):
        return [(f"{path}[{n}]", entry) for n, entry in enumerate(data)]
    first_line = text[: len(text) - len(text.lstrip())].count("\n") + 1
    return [(f"{path}:{first_line}", data)]


def _jsonl_entries(path: Path, text: str) -> tuple[list[tuple[str, Any]], list[ImportProblem]]:
    entries, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append((f"{path}:{number}", json.loads(line)))
        except (json.JSONDecodeError, RecursionError) as exc:
            problems.append(_invalid(path, exc, number))
    return entries, problems


def _invalid(path: Path, exc: Exception, line: int | None = None) -> ImportProblem:
    if isinstance(exc, json.JSONDecodeError):
        return ImportProblem(f"{path}:{line or exc.lineno}", "", f"invalid JSON: {exc.msg}")
    return ImportProblem(f"{path}:{line or 1}", "", "invalid JSON: nested too deeply to read")
