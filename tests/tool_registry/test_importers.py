"""Importers on hand-written collections with every odd type, and broken entries."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from mcp import types

from tool_registry.importers.function_docs import import_function_docs, normalise_schema
from tool_registry.importers.mcp_server import import_specs
from tool_registry.importers.openai_tools import import_openai_tools

ODD = [
    {
        "name": "math.factorial",
        "description": "Factorial of n.",
        "parameters": {
            "type": "dict",
            "properties": {"n": {"type": "integer", "description": "n"}},
            "required": ["n"],
        },
    },
    {
        "name": "plot_points",
        "description": "Plot points.",
        "parameters": {
            "type": "dict",
            "properties": {
                "points": {
                    "type": "array",
                    "items": {"type": "tuple", "items": ["float", "float"]},
                },
                "style": {"type": "string", "enum": ["dot", "line"], "default": "dot"},
                "meta": {"type": "any", "description": "anything"},
                "scale": {"type": "float", "required": True},
                "when": {"type": "string", "format": "date-time"},
                "opts": {"type": "dict", "properties": {"dpi": {"type": "int"}}},
            },
        },
    },
    {"name": "no_params", "description": "Takes nothing."},
    {
        "name": "bad_type",
        "parameters": {"type": "dict", "properties": {"x": {"type": "quaternion"}}},
    },
    {
        "name": "bad_required",
        "parameters": {"type": "dict", "properties": {}, "required": ["ghost"]},
    },
    {"description": "nameless"},
    "not an object",
]


def test_function_docs_normalise_odd_types_and_report_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "docs.json"
    path.write_text(json.dumps(ODD))
    report = import_function_docs(path)
    names = [s.name for s in report.specs]
    assert names == ["math_factorial", "plot_points", "no_params"]
    assert report.specs[0].tags == ("alias:math.factorial",)
    plot = report.specs[1].parameters
    for spec in report.specs:
        jsonschema.Draft202012Validator.check_schema(spec.parameters)
    assert plot["properties"]["points"]["items"] == {
        "type": "array",
        "prefixItems": [{"type": "number"}, {"type": "number"}],
    }
    assert plot["properties"]["meta"] == {"description": "anything"}
    assert plot["required"] == ["scale"]
    assert plot["properties"]["opts"]["properties"]["dpi"] == {"type": "integer"}
    assert plot["properties"]["when"]["format"] == "date-time"
    problems = [str(p) for p in report.problems]
    assert problems == [
        f"{path}[3]: bad_type: parameters.properties.x.type: unknown type 'quaternion'",
        f"{path}[4]: bad_required: parameters.required: names unknown properties ['ghost']",
        f"{path}[5]: (unnamed): missing name",
        f"{path}[6]: (unnamed): entry is not an object",
    ]
    jsonschema.validate({"points": [[1.0, 2.0]], "scale": 2}, plot)


def test_jsonl_with_a_broken_line_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    lines = [json.dumps(ODD[0]), "{broken", json.dumps(ODD[2])]
    path.write_text("\n".join(lines) + "\n")
    report = import_function_docs(path)
    assert [s.name for s in report.specs] == ["math_factorial", "no_params"]
    assert str(report.problems[0]).startswith(f"{path}:2: (unnamed): invalid JSON")


OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "ok",
        "description": "d",
        "parameters": {"type": "object", "properties": {}},
    },
}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(OPENAI_TOOL, indent=2),  # one pretty-printed object
        "\n" + json.dumps([OPENAI_TOOL], indent=2),  # a pretty-printed list
        "\ufeff" + json.dumps([OPENAI_TOOL], indent=2),  # the same with a UTF-8 BOM
        "\ufeff" + (json.dumps(OPENAI_TOOL) + "\n") * 2,  # JSONL with a UTF-8 BOM
    ],
)
def test_pretty_printed_json_and_a_bom_are_not_misread_as_jsonl(tmp_path: Path, text: str) -> None:
    path = tmp_path / "tools.json"
    path.write_text(text, encoding="utf-8")
    report = import_openai_tools(path)
    assert {s.name for s in report.specs} == {"ok"} and not report.problems
    docs = import_function_docs(path)
    assert {s.name for s in docs.specs} == {"ok"} and not docs.problems


@pytest.mark.parametrize("document", [OPENAI_TOOL, [OPENAI_TOOL]])
def test_a_broken_pretty_printed_document_is_one_problem_at_its_line(
    tmp_path: Path, document: object
) -> None:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(document, indent=2).replace('"d"', '"d",,'))
    report = import_openai_tools(path)
    line = 5 if isinstance(document, dict) else 6
    assert [str(p) for p in report.problems] == [
        f"{path}:{line}: (unnamed): invalid JSON: Expecting property name enclosed in double quotes"
    ]


def test_openai_tools_file_with_invalid_entries(tmp_path: Path) -> None:
    bad_schema = {"type": "function", "function": {"name": "bad", "parameters": {"type": 5}}}
    extra = {"type": "function", "function": {"name": "extra", "colour": "red"}}
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([OPENAI_TOOL, bad_schema, extra]))
    report = import_openai_tools(path)
    assert [s.name for s in report.specs] == ["ok"]
    assert report.specs[0].provenance.source == "openai"
    reasons = [p.reason for p in report.problems]
    assert (
        "not a valid JSON Schema" in reasons[0] and reasons[1] == "unknown function fields: colour"
    )


def test_normalise_keeps_json_schema_as_is() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": ["string", "null"]}},
        "required": ["a"],
    }
    assert normalise_schema(schema) == schema


@pytest.mark.parametrize(
    ("hints", "side_effect"),
    [
        (types.ToolAnnotations(readOnlyHint=True), "read"),
        (types.ToolAnnotations(destructiveHint=False), "write"),  # a harmless write is a write
        (types.ToolAnnotations(readOnlyHint=False), "write"),
        (None, "write"),  # MCP's default: a tool may change its environment
    ],
)
def test_only_a_read_only_hint_makes_an_mcp_tool_read(
    hints: types.ToolAnnotations | None, side_effect: str
) -> None:
    tool = types.Tool(name="t", inputSchema={"type": "object"}, annotations=hints)
    (spec,) = import_specs([tool], "server").specs
    assert spec.side_effect == side_effect
