"""What a run leaves behind, used as a user would: the dataset in `datasets` and TRL's
SFTTrainer, the RL prompt set, and report.html rendered by headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from llm.testing import ScriptedEndpoint
from synth.testing import ScriptedWorld

from .conftest import scripted_config

pytestmark = pytest.mark.integration

CHARTS = {"funnel", "rejects", "environments", "domains", "scores", "turns", "tool_calls"}


@pytest.fixture(scope="module")
def finished(module_dir: Path, local_ray) -> Iterator[tuple[Path, dict[str, Any]]]:
    """One scripted run on the local Ray cluster: 6 agents × 2 tasks, some rejected."""
    from synth.pipeline import run

    tmp = module_dir
    with pytest.MonkeyPatch.context() as patch, ScriptedEndpoint(ScriptedWorld()) as server:
        patch.setenv("OPENAI_API_KEY", "scripted")
        config = scripted_config(tmp, server, agents={"count": 6})
        manifest = run(config)
    yield Path(config.output_dir), manifest


def test_the_dataset_loads_with_datasets(finished) -> None:
    from datasets import load_dataset

    out, manifest = finished
    accepted = load_dataset("parquet", data_dir=str(out / "data" / "accepted"), split="train")
    everything = load_dataset("parquet", data_dir=str(out / "data"), split="train")
    assert len(accepted) == manifest.counts.accepted > 0
    assert len(everything) == manifest.counts.trajectories
    assert len(set(everything["id"])) == len(everything)
    row = accepted[0]
    assert row["messages"][0]["role"] == "system"
    calls = [c for m in row["messages"] for c in (m["tool_calls"] or [])]
    assert calls and isinstance(json.loads(calls[0]["function"]["arguments"]), dict)
    assert json.loads(row["tools"])[0]["type"] == "function"


def test_the_rl_prompt_set_has_one_row_per_task(finished) -> None:
    from datasets import load_dataset

    out, manifest = finished
    prompts = load_dataset("parquet", data_files=str(out / "rl_prompts.parquet"), split="train")
    assert len(prompts) == manifest.counts.tasks
    assert [m["role"] for m in prompts[0]["prompt"]] == ["system", "user"]
    assert json.loads(prompts[0]["task"])["id"] == prompts[0]["id"]


def test_the_rl_tool_use_gym_reads_the_exported_tasks_of_every_kind(finished) -> None:
    from rl.gyms.tool_use import read_tasks

    out, _ = finished
    written = [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]
    tasks = read_tasks(out / "rl_prompts.parquet")
    assert sorted(t.task.id for t in tasks) == sorted(t["id"] for t in written) != []
    kinds = {t.task.environment for t in tasks}
    assert len(kinds) > 1 and kinds == {t["environment"] for t in written}
    executable = [t for t in tasks if t.task.environment == "executable"]
    assert executable and all(t.task.checks.expected_state is not None for t in executable)


@pytest.mark.slow
def test_trl_sft_takes_a_step_on_the_dataset_with_the_embedded_model(finished, tmp_path) -> None:
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    from llm.embedded.model import ensure_converted, load_tokenizer

    out, _ = finished
    data = load_dataset("parquet", data_dir=str(out / "data" / "accepted"), split="train")
    data = data.select_columns(["messages", "tools"])
    path = ensure_converted()
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=768,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
    )
    trainer = SFTTrainer(
        model=str(path), args=args, train_dataset=data, processing_class=load_tokenizer(path)
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0
    changed = [n for n, p in trainer.model.named_parameters() if not p.detach().equal(before[n])]
    assert changed, "one SFT step changed no weights"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, int] = {}
        self.trajectories = 0
        self.calls = 0
        self.tool_messages = 0
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "svg" and a.get("data-chart"):
            self._chart = a["data-chart"]
            self.charts[self._chart] = 0
        elif tag == "rect" and self._chart:
            self.charts[self._chart] += 1
        self.trajectories += tag == "details" and "trajectory" in classes
        self.calls += "call" in classes
        self.tool_messages += "msg" in classes and "tool" in classes

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is missing in CI (.ci/run installs Debian's chromium)")
    pytest.skip("no chromium here (apt-get install chromium)")


def test_the_report_renders_in_headless_chromium(finished, tmp_path) -> None:
    out, manifest = finished
    browser = chromium()
    page = (out / "report.html").resolve().as_uri()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    common.append(f"--user-data-dir={tmp_path / 'profile'}")
    dom = subprocess.run(
        [*common, "--dump-dom", page], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    parsed = _Page()
    parsed.feed(dom)
    assert set(parsed.charts) >= CHARTS, f"charts rendered: {sorted(parsed.charts)}"
    assert parsed.charts["funnel"] == 5  # tools, agents, tasks, trajectories, accepted
    assert all(parsed.charts[c] > 0 for c in CHARTS if c != "rejects" or manifest.counts.rejected)
    assert parsed.trajectories == min(12, manifest.counts.trajectories)
    assert parsed.calls > 0 and parsed.tool_messages > 0

    shot = tmp_path / "report.png"
    subprocess.run(
        [*common, "--window-size=1200,2400", f"--screenshot={shot}", page],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    image = Image.open(shot).convert("L")
    low, high = image.getextrema()
    assert image.size == (1200, 2400) and high - low > 100  # drawn, not a blank page
