"""The dependency rule of ARCHITECTURE.md, enforced with import-linter; the benchmarks'
output contract (one JSON line)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("llm", "tool_registry", "sandboxes", "rubrics", "synth", "rl")


def lint_imports(config: Path, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    command = [
        sys.executable,
        "-c",
        "from importlinter.cli import lint_imports_command as m; m()",
        str(config),
    ]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_packages_keep_the_dependency_rule() -> None:
    result = lint_imports(ROOT / "pyproject.toml", ROOT, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 6 kept, 0 broken." in result.stdout


def test_a_forbidden_import_is_caught(tmp_path: Path) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    for module in ("pipeline", "actors", "__main__"):  # named by the rl contract
        (tmp_path / "synth" / f"{module}.py").write_text("")
    (tmp_path / "llm" / "leak.py").write_text("import synth\n")
    (tmp_path / "rl" / "leak.py").write_text("import synth.pipeline\n")
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    result = lint_imports(config, tmp_path, tmp_path)
    assert result.returncode != 0
    assert "llm.leak -> synth" in result.stdout
    assert "rl.leak -> synth.pipeline" in result.stdout


def json_prints(source: str) -> list[ast.Call]:
    """The ``print(json.dumps(...))`` calls in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
            inner = node.args[0] if node.args else None
            if isinstance(inner, ast.Call) and ast.unparse(inner.func) == "json.dumps":
                found.append(inner)
    return found


@pytest.mark.parametrize("bench", sorted(p.name for p in (ROOT / "bench").glob("*.py")))
def test_a_benchmark_prints_its_figures_as_one_json_line(bench: str) -> None:
    """`bench/*.py --json` ends with one JSON object on one line (what a script reads with
    `tail -1`): a benchmark with figures prints them with json.dumps and no indent."""
    source = (ROOT / "bench" / bench).read_text()
    assert '"--json"' in source, f"bench/{bench} takes no --json"
    calls = json_prints(source)
    assert calls, f"bench/{bench} takes --json but prints no json.dumps"
    assert not [c for c in calls if any(k.arg == "indent" for k in c.keywords)], (
        f"bench/{bench} prints its JSON over several lines (indent=)"
    )


def test_the_json_line_check_sees_an_indented_object() -> None:
    (call,) = json_prints("import json\nprint(json.dumps({'a': 1}, indent=2))\n")
    assert [k.arg for k in call.keywords] == ["indent"]


# Registries that import their built-in entries on first use: the entries import the
# registry's base, the registry imports the entries (inside a function, on purpose).
REGISTRY_CIRCLES = [
    {"rl.gyms", "rl.gyms.base", "rl.gyms.code", "rl.gyms.instructions", "rl.gyms.judged"}
    | {"rl.gyms.math", "rl.gyms.tool_use"},
    {"rl.domains", "rl.tau2"},
]


def import_circles(graph: Any) -> list[set[str]]:
    """The strongly connected sets of modules of ``graph`` (a grimp graph) larger than one."""
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[set[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in edges[module]:
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            circle = set()
            while True:
                member = stack.pop()
                circle.add(member)
                if member == module:
                    break
            if len(circle) > 1:
                circles.append(circle)

    for module in sorted(edges):
        if module not in order:
            visit(module)
    return circles


def test_no_module_imports_itself_in_a_circle() -> None:
    """Imports flow one way inside packages too (function-level imports included), but
    for the registries named above."""
    import grimp

    circles = import_circles(grimp.build_graph(*PACKAGES))
    assert [sorted(c) for c in circles if c not in REGISTRY_CIRCLES] == []
