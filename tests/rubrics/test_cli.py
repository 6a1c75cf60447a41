"""`python -m rubrics`: exit codes, messages, rendered prompts (snapshot-tested), schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llm.testing import ScriptedEndpoint

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def rubrics(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rubrics", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_validate_accepts_the_library() -> None:
    result = rubrics("validate", "rubrics/library")
    assert result.returncode == 0 and "ok: 6 rubrics valid" in result.stdout


def test_validate_exits_2_with_file_line_messages(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: t\nkind: task\ndescription: d\nextends: [core]\ncriteria:\n"
        "  - id: x\n    description: y\n    weight: -1\n"
    )
    result = rubrics("validate", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{bad}:8: criteria[0].weight: Input should be greater than 0"


@pytest.mark.parametrize(("rubric", "pair"), [("core", False), ("prescriptive", True)])
def test_rendered_prompts_match_their_snapshots(rubric: str, pair: bool) -> None:
    result = rubrics("render", rubric, *(["--pair"] if pair else []))
    assert result.returncode == 0, result.stderr
    snapshot = SNAPSHOTS / f"{'pair' if pair else 'judge'}_{rubric}.txt"
    if os.environ.get("SUMMIT_UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(result.stdout)
    assert result.stdout == snapshot.read_text(), (
        "prompt changed: rerun with SUMMIT_UPDATE_SNAPSHOTS=1"
    )


def test_render_of_an_unknown_rubric_exits_2() -> None:
    result = rubrics("render", "nosuch")
    assert result.returncode == 2 and "unknown rubric 'nosuch'" in result.stderr


def test_schema_prints_the_editor_schema() -> None:
    result = rubrics("schema")
    schema = json.loads(result.stdout)
    assert schema["title"] == "Rubric" and "criteria" in schema["properties"]


SMALL = (
    "id: small\nkind: task\ndescription: Answers are correct.\npass_threshold: 0.5\n"
    "criteria:\n  - id: correct\n    description: The answer is factually correct.\n"
    "    scale: binary\ntests:\n"
    "  - prompt: What is the capital of France?\n"
    "    a: Paris.\n    b: Berlin.\n    expected: a\n"
    "  - prompt: What is 2 + 2?\n    response: '4'\n    expected_pass: true\n"
)


def test_golden_test_report_names_each_disagreement_and_counts_errors(tmp_path: Path) -> None:
    small = tmp_path / "small.yaml"
    small.write_text(SMALL.replace("kind: task\n", "kind: task\nextends: [core]\n"))

    def critic_knows_paris(request: dict[str, Any]) -> str:
        prompt = request["messages"][0]["content"]
        if "<<<RESPONSE A" not in prompt:
            return "not a verdict"  # the single test's judge call fails
        first = prompt.split("<<<RESPONSE A", 1)[1].split("<<<END RESPONSE A", 1)[0]
        return json.dumps(
            {"reasoning": "Paris is right", "winner": "A" if "Paris" in first else "B"}
        )

    with ScriptedEndpoint(critic_knows_paris) as server:
        result = rubrics("test", str(small), "--json", env={"SUMMIT_EMBEDDED_URL": server.url})
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures == {"agreement": 0.5, "per_rubric": {"small": 0.5}, "tests": 2, "errors": 1}
    assert "small tests[1] (single): expected pass, got error: " in result.stdout
    assert "tests[0]" not in result.stdout
    overall = next(line for line in result.stdout.splitlines() if "overall" in line)
    assert [cell.strip() for cell in overall.split("│")[2:5]] == ["2", "1", "1"]


@pytest.mark.integration
@pytest.mark.slow
def test_golden_tests_run_on_the_embedded_endpoint(tmp_path: Path, embedded_server) -> None:
    small = tmp_path / "small.yaml"
    small.write_text(SMALL)
    result = rubrics(
        "test",
        str(small),
        "--endpoint",
        "embedded",
        "--json",
        "--reasoning-chars",
        "120",
        env={"SUMMIT_EMBEDDED_URL": embedded_server.url},
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["tests"] == 2 and 0.0 <= figures["agreement"] <= 1.0
    assert "small" in figures["per_rubric"]
