"""Importers on hand-written collections with every odd type, benchmark rows nesting their
function docs (BFCL's shape, Java and JavaScript type names), and broken entries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from mcp import types

from tool_registry.importers.function_docs import import_function_docs, normalise_schema
from tool_registry.importers.mcp_server import import_specs
from tool_registry.importers.openai_tools import import_openai_tools
from tool_registry.schema_checks import undeclared_required

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BFCL_ROWS = FIXTURES / "bfcl_rows.json"
"""Four rows the way BFCL writes them (JSONL under a .json name): Python, Java and
JavaScript functions, one function beside two questions, one ``function`` object."""

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
    assert names == ["math_factorial", "plot_points", "no_params", "bad_required"]
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
        f"{path}[5]: (unnamed): missing name",
        f"{path}[6]: (unnamed): entry is not an object",
    ]
    jsonschema.validate({"points": [[1.0, 2.0]], "scale": 2}, plot)
    assert report.specs[3].parameters["required"] == ["ghost"]  # kept as it is, and said so
    assert [str(w) for w in report.warnings] == [
        f"{path}[4]: bad_required: parameters.required names undeclared properties ['ghost'] "
        "(kept as it is)"
    ]


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


def test_benchmark_rows_import_every_nested_function_once_naming_their_row() -> None:
    report = import_function_docs(BFCL_ROWS)
    assert not report.problems
    by_name = {s.name: s for s in report.specs}
    assert list(by_name) == [
        "calculate_triangle_area",
        "math_factorial",
        "SettingsCache_put",
        "renderChart",
    ]
    assert report.repeated == 1  # the triangle beside its second question
    origins = {name: spec.provenance.origin for name, spec in by_name.items()}
    assert origins == {
        "calculate_triangle_area": f"{BFCL_ROWS}#simple_0",
        "math_factorial": f"{BFCL_ROWS}#multiple_3",
        "SettingsCache_put": f"{BFCL_ROWS}#java_7",
        "renderChart": f"{BFCL_ROWS}#javascript_2",
    }
    assert by_name["SettingsCache_put"].tags == ("alias:SettingsCache.put",)
    assert [str(w) for w in report.warnings] == [
        f"{BFCL_ROWS}:2.function[1]: math_factorial: parameters.required names undeclared "
        "properties ['precision'] (kept as it is)"
    ]


def test_rows_in_a_pretty_printed_json_list_are_found_at_their_index(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in BFCL_ROWS.read_text().splitlines()]
    rows[2]["function"].append("not a function")
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows, indent=2))
    report = import_function_docs(path)
    assert len(report.specs) == 4 and report.repeated == 1
    assert [str(p) for p in report.problems] == [
        f"{path}[2].function[1]: (unnamed): entry is not an object"
    ]


def test_java_and_javascript_type_names_map_as_bfcl_shows_them_to_a_model() -> None:
    specs = {s.name: s.parameters for s in import_function_docs(BFCL_ROWS).specs}
    assert specs["SettingsCache_put"]["properties"] == {
        "userId": {"type": "integer", "description": "The user."},
        "settings": {"type": "object", "description": "Key to value.", "properties": {}},
        "tags": {"type": "array", "description": "Labels.", "items": {"type": "string"}},
        "weights": {"type": "array", "description": "Weights.", "items": {"type": "number"}},
        "ratio": {"type": "number", "description": "A ratio."},
        "initial": {"type": "string", "description": "One letter."},
        "enabled": {"type": "boolean", "description": "On or off."},
        "extra": {"description": "Anything."},  # any value: untyped
    }
    assert {k: v.get("type") for k, v in specs["renderChart"]["properties"].items()} == {
        "elementId": "string",
        "data": "array",
        "options": "object",
        "animate": "boolean",
        "size": "number",
        "total": "integer",
    }
    for schema in specs.values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    ("name", "json_type"),
    [
        ("HashMap", "object"),
        ("Hashtable", "object"),
        ("ArrayList", "array"),
        ("Array", "array"),
        ("Queue", "array"),
        ("Stack", "array"),
        ("Set", "array"),
        ("String", "string"),
        ("char", "string"),
        ("byte", "integer"),
        ("short", "integer"),
        ("int", "integer"),
        ("long", "integer"),
        ("Bigint", "integer"),
        ("float", "number"),
        ("double", "number"),
        ("number", "number"),
        ("boolean", "boolean"),
        ("Boolean", "boolean"),
        ("dict", "object"),
        ("tuple", "array"),
    ],
)
def test_a_foreign_type_name_maps_to_its_json_type(name: str, json_type: str) -> None:
    assert normalise_schema({"type": name})["type"] == json_type


def test_undeclared_required_reads_schemas_not_the_data_inside_them() -> None:
    schema = {
        "type": "object",
        "properties": {
            "opts": {"type": "object", "properties": {"a": {}}, "required": ["a", "b"]},
            "blob": {"type": "object", "default": {"required": ["not", "a", "schema"]}},
        },
        "anyOf": [{"required": ["c"]}],
        "required": ["opts"],
    }
    assert undeclared_required(schema) == [
        "parameters.anyOf[0].required names undeclared properties ['c']",
        "parameters.properties.opts.required names undeclared properties ['b']",
    ]


def test_the_cli_imports_benchmark_rows_and_prints_each_warning(tmp_path: Path) -> None:
    registry = tmp_path / "tools.jsonl"
    command = ["import", "function-docs", str(BFCL_ROWS), "--registry", str(registry)]
    done = subprocess.run(
        [sys.executable, "-m", "tool_registry", *command, "--strict"],  # warnings don't refuse
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"{registry}: +4 tools (1 duplicates, 0 skipped); 4 in all" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {BFCL_ROWS}:2.function[1]: math_factorial: parameters.required names "
        "undeclared properties ['precision'] (kept as it is)"
    ]
    assert len(registry.read_text().splitlines()) == 4


def test_openai_and_mcp_tools_naming_undeclared_required_are_kept_with_a_warning(
    tmp_path: Path,
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]}
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": schema}}
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([tool]))
    openai = import_openai_tools(path)
    mcp = import_specs([types.Tool(name="f", description="d", inputSchema=schema)], "srv")
    for report in (openai, mcp):
        assert [s.name for s in report.specs] == ["f"] and not report.problems
        assert len(report.warnings) == 1
        assert "'b'" in str(report.warnings[0]) and "kept as it is" in str(report.warnings[0])
