"""The dependency rule of ARCHITECTURE.md, enforced with import-linter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
