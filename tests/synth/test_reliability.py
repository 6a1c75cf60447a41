"""Nothing is lost and nothing is doubled: a killed actor, an interrupted and resubmitted
``ray job submit`` run. Real Ray (127.0.0.1), real processes, the scripted world."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from llm.testing import ScriptedEndpoint
from synth.store import RunStore
from synth.testing import ScriptedWorld

from .conftest import assert_exact, job_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RAY = str(Path(sys.executable).with_name("ray"))


def test_a_killed_actor_loses_nothing(tmp_path: Path) -> None:
    import ray

    from synth.config import SynthConfig
    from synth.pipeline import run, start_local_ray

    world = ScriptedWorld()
    killed: list[int] = []

    def kill_one_actor_mid_run() -> None:
        deadline = time.monotonic() + 60
        while world.roles["judge"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        for proc in psutil.process_iter(["cmdline"]):
            if any("SynthActor" in part for part in proc.info["cmdline"] or []):
                proc.send_signal(signal.SIGKILL)
                killed.append(proc.pid)
                return

    start_local_ray(num_cpus=2)
    try:
        with ScriptedEndpoint(world, latency_s=0.15) as server:
            config = SynthConfig.model_validate(job_config(tmp_path / "out", server.url))
            killer = threading.Thread(target=kill_one_actor_mid_run)
            killer.start()
            run(config)
            killer.join()
    finally:
        ray.shutdown()
    assert killed, "no actor process was found to kill"
    assert_exact(tmp_path / "out", 16)


LOOPBACK = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""A single-node cluster: Ray otherwise turns 127.0.0.1 into the machine's address and
listens on every interface (see ``synth.pipeline.start_local_ray``)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_cluster(temp: str) -> None:
    """Stop the cluster whose processes name ``temp``, its workers with it (``ray stop``
    would stop every cluster on the machine, other people's included)."""
    heads = []
    for proc in psutil.process_iter(["cmdline"]):
        if temp in " ".join(proc.info["cmdline"] or []):
            heads.append(proc)
    family = list(heads)
    for proc in heads:
        with contextlib.suppress(psutil.Error):
            family += proc.children(recursive=True)
    for proc in family:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(family, timeout=60)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def ray_cluster(tmp_path: Path) -> Iterator[str]:
    """A real head node on 127.0.0.1 with its job server; yields the job server address."""
    dashboard = _free_port()
    env = {**os.environ, **LOOPBACK}
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths live here
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(_free_port()),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard),
            "--num-cpus",
            "2",
            "--include-dashboard",
            "true",
            "--disable-usage-stats",
            "--temp-dir",
            temp,
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=180,
    )
    try:
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        _stop_cluster(temp)


def _ray(*args: str, address: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **LOOPBACK, "RAY_ADDRESS": address}
    return subprocess.run([RAY, *args], capture_output=True, text=True, env=env, timeout=300)


def _wait(job: str, address: str, until: set[str], timeout_s: float = 240) -> str:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = str(client.get_job_status(job).value)
        if state in until:
            return state
        time.sleep(1)
    raise AssertionError(f"job {job} still not in {until}: {client.get_job_logs(job)[-3000:]}")


def test_an_interrupted_job_resubmitted_ends_exact(tmp_path: Path, ray_cluster: str) -> None:
    out = tmp_path / "out"
    workdir = tmp_path / "job"
    workdir.mkdir()
    with ScriptedEndpoint(ScriptedWorld(), latency_s=0.25) as server:
        (workdir / "job.yaml").write_text(yaml.safe_dump(job_config(out, server.url)))

        def submit(job: str) -> subprocess.CompletedProcess[str]:
            entry = [sys.executable, "-m", "synth", "run", "job.yaml"]
            return _ray(
                *("job", "submit", "--no-wait", "--submission-id", job),
                *("--working-dir", str(workdir), "--", *entry),
                address=ray_cluster,
            )

        first = submit("synth-1")
        assert first.returncode == 0, first.stderr
        deadline = time.monotonic() + 180
        while not RunStore(out).shards() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert RunStore(out).shards(), _ray("job", "logs", "synth-1", address=ray_cluster).stdout
        _ray("job", "stop", "synth-1", address=ray_cluster)
        assert _wait("synth-1", ray_cluster, {"STOPPED", "FAILED", "SUCCEEDED"}) != "SUCCEEDED"
        partial = len(RunStore(out).done_ids())
        assert 0 < partial < 16
        second = submit("synth-2")
        assert second.returncode == 0, second.stderr
        state = _wait("synth-2", ray_cluster, {"SUCCEEDED", "FAILED", "STOPPED"})
        logs = _ray("job", "logs", "synth-2", address=ray_cluster).stdout
    assert state == "SUCCEEDED", logs[-3000:]
    assert "reconciled=True" in logs
    assert_exact(out, 16)
