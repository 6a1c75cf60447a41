"""Progress where output is not a terminal: a line per unfinished stage at a steady
interval (``--progress-every``), instead of a live display that prints nothing useful."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from llm.progress import StageProgress
from llm.testing import ScriptedEndpoint
from synth.testing import ScriptedWorld

from .conftest import held_after, job_config

STAMPED = re.compile(r"^\d\d:\d\d:\d\d ", re.MULTILINE)
TRAJECTORIES = re.compile(r"^\d\d:\d\d:\d\d trajectories .*/16 ", re.MULTILINE)


def lines_of(buffer: io.StringIO, stage: str) -> list[str]:
    return [line for line in buffer.getvalue().splitlines() if f" {stage}" in line]


def advance_until_two_lines(console: Console) -> io.StringIO:
    """A stage half done, held until two intervals have passed or the safety time."""
    buffer = console.file
    assert isinstance(buffer, io.StringIO)
    with StageProgress(console=console, every_s=0.01) as progress:
        bar = progress.add_task("tasks", total=4)
        progress.advance(bar, 2)
        deadline = time.monotonic() + 2  # on a terminal no line ever comes
        while len(lines_of(buffer, "tasks")) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    return buffer


def test_off_a_terminal_a_stage_prints_a_line_at_every_interval() -> None:
    buffer = advance_until_two_lines(Console(file=io.StringIO(), force_terminal=False))
    lines = lines_of(buffer, "tasks")
    assert len(lines) >= 2
    assert all(STAMPED.match(line) and "2/4  50%" in line for line in lines), lines


def test_on_a_terminal_the_bars_print_no_lines() -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True, force_interactive=True)
    buffer = advance_until_two_lines(terminal)
    assert not STAMPED.search(buffer.getvalue())


@pytest.mark.integration
def test_a_job_logging_to_a_file_prints_its_stage_progress_every_interval(
    tmp_path: Path, synth_jobs: Callable[..., Any]
) -> None:
    gate = threading.Event()
    world = held_after(ScriptedWorld(), 2, gate)  # mid-stage until two lines are out
    with ScriptedEndpoint(world, latency_s=0.05) as server:
        try:
            job = synth_jobs(job_config(tmp_path / "out", server.url), "--progress-every", "0.1")
            job.wait_for(TRAJECTORIES.pattern, until=lambda _: two_lines(job))
        finally:
            gate.set()
        assert job.finish() == 0, job.stderr[-4000:]
    assert re.search(r"trajectories \(\d+/16 kept\)  16/16  100%", job.stderr)


def two_lines(job: Any) -> bool:
    return len(TRAJECTORIES.findall(job.stderr)) >= 2
