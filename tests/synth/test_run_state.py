"""A run directory whose state files are damaged is refused in one line on resume,
naming the file and line, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from synth.__main__ import app
from synth.config import load_config

DAMAGE = {
    "run.json": (b'{"config_hash": ', 1, "not JSON"),
    "stages.json": (b'{\n  "agents": {\n    "fallback": 0,\n', 4, "not JSON"),
    "agents.jsonl": (b'{"id": "a1"}\n', 1, "agents.jsonl:1"),
    "tasks.jsonl": (b"\n\xff\xfe binary\n", 2, "not a text file"),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_a_damaged_state_file_is_one_line_naming_it_and_nothing_starts(
    tmp_path: Path, name: str
) -> None:
    out = tmp_path / "out"
    config = tmp_path / "job.yaml"
    # an endpoint nobody serves: reaching the preflight would fail differently
    role = {"preset": "vllm", "base_url": "http://127.0.0.1:9/v1"}
    config.write_text(
        yaml.safe_dump(
            {
                "output_dir": str(out),
                "endpoints": {
                    "generator": role,
                    "agent": role,
                    "user": role,
                    "tool_simulator": role,
                    "judge": role,
                },
            }
        )
    )
    out.mkdir()
    digest = load_config(config).content_hash()
    (out / "run.json").write_text(f'{{"config_hash": "{digest}", "starts": 1}}')
    data, line, words = DAMAGE[name]
    (out / name).write_bytes(data)
    result = CliRunner().invoke(app, ["run", str(config)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.stderr
    assert f"{out / name}:{line}" in lines[0] and words in lines[0]
    assert "delete it" in lines[0]
    assert "does not answer" not in result.stderr  # refused before the endpoints were tried
