"""How ``python -m synth run`` ends when it cannot finish: stopped by Ctrl-C or SIGTERM, a
full disk, a lost Ray node, a lost cluster, every task failed. Each ends with one line and
an exit status that says so (its own, never an abort's on the way out), leaves no process
behind, and a rerun of the same command finishes exact.

Real processes and a real local Ray cluster (127.0.0.1) against the scripted world. The
world holds every request once the judge has answered twice (``held_after``), so the job
stands still mid-stage while the test acts on it: no race decides the outcome.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from llm.testing import Reply, ScriptedEndpoint
from synth.store import RunStore
from synth.testing import ScriptedWorld

from ..conftest import fill
from .conftest import assert_exact, held_after, job_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FINISHED = r"trajectories \(\d+/(\d+) kept\)"
"""A progress line's count of finished trajectories (the driver holds their records)."""
TICK = ("--progress-every", "0.1")


def finished(at_least: int) -> Callable[[re.Match[str]], bool]:
    return lambda match: int(match[1]) >= at_least


@contextlib.contextmanager
def standing_still(
    start: Callable[..., Any], out: Path, **changes: object
) -> Iterator[tuple[Any, threading.Event, dict[str, object]]]:
    """The job of ``job_config(out, ..., **changes)``, once it stands still mid-stage with
    two finished trajectories in hand (the world holds every request after two judge
    answers); yields the job, the gate that lets it go on, and its config."""
    gate = threading.Event()
    with ScriptedEndpoint(held_after(ScriptedWorld(), 2, gate), latency_s=0.05) as server:
        try:
            config = job_config(out, server.url, **changes)
            job = start(config, *TICK)
            job.wait_for(FINISHED, until=finished(2))
            yield job, gate, config
        finally:
            gate.set()


ABORTS = ("terminate called", "Fatal Python error", "Aborted", "core dumped", "SIGABRT")
"""What an abort at interpreter shutdown leaves on stderr (a compiled library's thread
still running while Python tears down)."""


def assert_ended_cleanly(job: Any, status: int, last_line: str) -> None:
    """``status`` (the job's own, not a signal's), a last line that starts with
    ``last_line``, no traceback, no abort on the way out, no process left behind."""
    assert job.finish() == status, job.stderr[-4000:]
    assert job.last_line().startswith(last_line), job.last_line()
    assert "Traceback" not in job.stderr
    assert not [mark for mark in ABORTS if mark in job.stderr], job.stderr[-4000:]
    assert not job.leftovers()


def temporary_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def assert_resumes_exact(start: Callable[..., Any], config: dict, gate: threading.Event) -> None:
    """The same command, run again with the world no longer held, ends exact."""
    gate.set()
    rerun = start(config)
    assert rerun.finish() == 0, rerun.stderr[-4000:]
    assert_exact(Path(str(config["output_dir"])), 16)


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-to-the-process-group", "sigterm-to-the-job"],
)
def test_a_stopped_job_keeps_what_it_finished_leaves_nothing_running_and_resumes(
    tmp_path: Path, synth_jobs: Callable[..., Any], signum: int, whole_group: bool
) -> None:
    out = tmp_path / "out"
    with standing_still(synth_jobs, out, shard_size=100) as (job, gate, config):  # no shard yet
        seen = max(int(m[1]) for m in re.finditer(FINISHED, job.stderr))
        if whole_group:  # what a terminal does on Ctrl-C
            os.killpg(job.proc.pid, signum)
        else:
            job.proc.send_signal(signum)
        assert_ended_cleanly(job, 128 + signum, f"stopped by {signal.Signals(signum).name}")
        assert not temporary_files(out)
        assert len(RunStore(out).done_ids()) >= seen
        assert_resumes_exact(synth_jobs, config, gate)


def test_a_full_disk_fails_in_one_line_leaves_no_temporary_files_and_resumes(
    synth_jobs: Callable[..., Any], small_disk: Path
) -> None:
    out = small_disk / "out"
    with standing_still(synth_jobs, out) as (job, gate, config):
        filler = fill(small_disk)
        gate.set()  # the next shard has no room
        assert_ended_cleanly(job, 1, "error: no space left on the device writing")
        assert not temporary_files(out)
        filler.unlink()
        assert_resumes_exact(synth_jobs, config, gate)


def test_a_job_whose_ray_node_died_fails_in_one_line_and_resumes(
    tmp_path: Path, synth_jobs: Callable[..., Any]
) -> None:
    with standing_still(synth_jobs, tmp_path / "out") as (job, gate, config):
        node = [
            p
            for p in psutil.Process(job.proc.pid).children(recursive=True)
            if p.name() == "raylet" or "SynthActor" in " ".join(p.cmdline())
        ]
        assert len(node) == 3, node  # the raylet and the two actors
        for proc in node:
            proc.kill()
        assert_ended_cleanly(job, 1, "error: Ray node ")
        assert re.match(r"error: Ray node \w+ died", job.last_line()), job.last_line()
        assert_resumes_exact(synth_jobs, config, gate)


def test_a_job_whose_every_task_failed_exits_non_zero_in_one_line(
    tmp_path: Path, synth_jobs: Callable[..., Any]
) -> None:
    world = ScriptedWorld()

    def judge_speaks_nonsense(request: dict) -> Reply:
        reply = world(request)
        schema = (request.get("response_format") or {}).get("json_schema") or {}
        return Reply(content="no verdict today") if schema.get("name") == "JudgeAnswer" else reply

    with ScriptedEndpoint(judge_speaks_nonsense) as server:
        mix = {"simulated": 1.0, "executable": 0.0, "docker": 0.0}  # every task is judged
        job = synth_jobs(job_config(tmp_path / "out", server.url, environment_mix=mix))
        assert_ended_cleanly(job, 1, "error: every one of the 16 tasks failed (judge_error: 16)")


def test_a_job_whose_whole_ray_cluster_died_fails_in_one_line_and_resumes(
    tmp_path: Path, synth_jobs: Callable[..., Any]
) -> None:
    """The head's GCS gone too: Ray's own client would wait a minute, then end the process
    from C++ ("The program will terminate"); the job says so itself, at once."""
    with standing_still(synth_jobs, tmp_path / "out") as (job, gate, config):
        cluster = psutil.Process(job.proc.pid).children(recursive=True)
        assert any(p.name() == "gcs_server" for p in cluster), [p.name() for p in cluster]
        for proc in cluster:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        assert_ended_cleanly(job, 1, "error: Ray head node at 127.0.0.1:")
        assert "its GCS does not answer" in job.last_line()
        assert "The program will terminate" not in job.stderr
        assert_resumes_exact(synth_jobs, config, gate)


def test_a_job_that_generated_no_task_exits_non_zero_in_one_line(
    tmp_path: Path, synth_jobs: Callable[..., Any]
) -> None:
    world = ScriptedWorld()

    def generator_speaks_nonsense(request: dict) -> Reply:
        reply = world(request)
        schema = (request.get("response_format") or {}).get("json_schema") or {}
        return Reply(content="no task today") if schema.get("name") == "GeneratedTask" else reply

    with ScriptedEndpoint(generator_speaks_nonsense) as server:
        mix = {"simulated": 1.0, "executable": 0.0, "docker": 0.0}  # no templated tasks
        job = synth_jobs(job_config(tmp_path / "out", server.url, environment_mix=mix))
        assert_ended_cleanly(job, 1, "error: no task was generated for the 4 agents")
        assert not (tmp_path / "out" / "tasks.jsonl").exists()  # a rerun tries again


BUSY_ENGINE_EXIT = """
import json, sys, threading, urllib.request
from llm.embedded import EmbeddedServer
from llm.embedded.server import MODEL_NAME

schema = {"type": "object", "properties": {"fruits": {"type": "array",
          "items": {"type": "string"}}}, "required": ["fruits"]}
body = json.dumps({"model": MODEL_NAME, "max_tokens": 400, "temperature": 1.0,
    "messages": [{"role": "user", "content": "Name every fruit you know."}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "F", "schema": schema}},
}).encode()
server = EmbeddedServer(max_batch=2).start()
def ask():
    request = urllib.request.Request(server.url + "/chat/completions", body,
                                     {"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=600).read()
    except Exception:
        pass
for _ in range(24):
    threading.Thread(target=ask, daemon=True).start()
while server.engine is None or server.engine.stats.batches == 0:
    threading.Event().wait(0.05)
print("decoding", file=sys.stderr, flush=True)
server.stop()  # what a failed job does on its way out, with the queue still full
sys.exit(3)
"""
"""A failed job's way out with the embedded engine still busy: a dozen constrained
generations queued behind the batch it decodes (llguidance masks every step)."""


def test_a_job_ending_while_the_embedded_engine_decodes_exits_with_its_own_status() -> None:
    """The engine's thread, still in torch or llguidance when Python tears down, made the
    process abort ("terminate called without an active exception", status 134) instead
    of exiting with the job's own status."""
    done = subprocess.run(
        [sys.executable, "-c", BUSY_ENGINE_EXIT],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 3, done.stderr[-4000:]
    assert "decoding" in done.stderr
    assert not [mark for mark in ABORTS if mark in done.stderr], done.stderr[-4000:]
