"""`python -m tool_registry`: imports into a file, stats, export, and exit code 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tool_registry", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_stats_and_export_round_trip(tmp_path: Path) -> None:
    registry = tmp_path / "tools.jsonl"
    docs = tmp_path / "docs.json"
    docs.write_text(
        json.dumps(
            [
                {
                    "name": "add",
                    "description": "Add two numbers.",
                    "parameters": {
                        "type": "dict",
                        "properties": {"a": {"type": "float"}, "b": {"type": "float"}},
                    },
                },
                {
                    "name": "broken",
                    "parameters": {"type": "dict", "properties": {"x": {"type": "blob"}}},
                },
            ]
        )
    )
    first = cli("import", "function-docs", str(docs), "--registry", str(registry))
    assert first.returncode == 0, first.stderr
    assert "+1 tools (0 duplicates, 1 skipped); 1 in all" in first.stdout
    assert "skipped:" in first.stderr and "unknown type 'blob'" in first.stderr
    again = cli("import", "function-docs", str(docs), "--registry", str(registry))
    assert "+0 tools (1 duplicates, 1 skipped); 1 in all" in again.stdout
    exported = tmp_path / "tools.json"
    assert cli("export", "--registry", str(registry), "--out", str(exported)).returncode == 0
    openai_import = cli("import", "openai", str(exported), "--registry", str(tmp_path / "b.jsonl"))
    assert openai_import.returncode == 0 and "+1 tools" in openai_import.stdout
    stats = json.loads(cli("stats", "--registry", str(registry), "--json").stdout)
    assert stats["tools"] == 1 and stats["by_source"] == {"function_docs": 1}


def test_strict_import_writes_nothing_on_any_bad_entry(tmp_path: Path) -> None:
    registry = tmp_path / "tools.jsonl"
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"name": "ok"}\n{"name": "bad", "parameters": {"type": "blob"}}\n')
    result = cli("import", "function-docs", str(docs), "--registry", str(registry), "--strict")
    assert result.returncode == 2 and "nothing written" in result.stderr
    assert not registry.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import", "openai", "nosuch.json"), "nosuch.json: no such file"),
        (("stats", "--registry", "nosuch.jsonl"), "no such repository"),
        (("export", "--registry", "{registry}", "--format", "xml"), "unknown format 'xml'"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    registry = tmp_path / "tools.jsonl"
    registry.write_text("")
    result = cli(*(a.format(registry=registry) for a in args))
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.integration
def test_a_crashing_mcp_server_leaves_the_repository_unchanged(tmp_path: Path) -> None:
    registry = tmp_path / "tools.jsonl"
    good = cli(
        "import",
        "mcp",
        "--registry",
        str(registry),
        "--",
        sys.executable,
        str(FIXTURES / "notes_server.py"),
    )
    assert good.returncode == 0, good.stderr
    before = registry.read_text()
    bad = cli(
        "import",
        "mcp",
        "--registry",
        str(registry),
        "--timeout",
        "3",
        "--",
        sys.executable,
        str(FIXTURES / "bad_servers.py"),
        "crash",
    )
    assert bad.returncode == 2 and "cannot open the database" in bad.stderr
    assert registry.read_text() == before


def test_evolve_rejects_a_bad_config_with_file_line_and_field(tmp_path: Path) -> None:
    config = tmp_path / "evolve.yaml"
    config.write_text("domains_per_category: 3\ntools_per_domian: 4\n")
    result = cli("evolve", "--config", str(config), "--registry", str(tmp_path / "t.jsonl"))
    assert result.returncode == 2
    assert f"{config}:2: tools_per_domian: unknown field" in result.stderr


def test_mcp_import_takes_env_allow_and_deny(tmp_path: Path) -> None:
    registry = tmp_path / "tools.jsonl"
    server = str(Path(__file__).parent / "fixtures" / "notes_server.py")
    denied = cli(
        "import", "mcp", "--registry", str(registry), "--deny", "add_note", "--env", "A=b",
        "--", sys.executable, server,
    )  # fmt: skip
    assert denied.returncode == 0, denied.stderr
    names = {json.loads(line)["name"] for line in registry.read_text().splitlines()}
    assert "add_note" not in names and "search_notes" in names
    bad = cli("import", "mcp", "--registry", str(registry), "--env", "NOVALUE", "--", "x")
    assert bad.returncode != 0
    assert "--env 'NOVALUE': give NAME=VALUE" in bad.stderr
