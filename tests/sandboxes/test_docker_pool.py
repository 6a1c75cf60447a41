"""The warm pool's promises, with real Docker: a clean run keeps its container warm, the
host deadline holds when a container stops answering, and the pool heals.

Needs a Docker engine, like ``test_docker.py`` (failing instead of skipping when CI=true).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from docker.errors import NotFound

from sandboxes.base import SandboxError
from sandboxes.docker import DockerSandbox, Limits, RunResult

pytestmark = pytest.mark.integration
MAIN = ["python3", "main.py"]


@pytest.fixture(scope="module")
def pool(sandbox_image: str) -> Iterator[DockerSandbox]:
    limits = Limits(timeout_s=5.0, memory_mb=128, pids=32)
    with DockerSandbox(sandbox_image, pool_size=1, limits=limits) as box:
        yield box


def containers(box: DockerSandbox) -> set[str]:
    return {container.id for container in box._live}


def test_a_clean_run_keeps_its_container_warm(pool) -> None:
    before = containers(pool)
    for _ in range(3):
        assert pool.run({"main.py": "print('warm')"}, MAIN).stdout == "warm\n"
    assert containers(pool) == before


def start(box: DockerSandbox, files: dict[str, str]) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(box.run(files, MAIN)), daemon=True)
    thread.start()
    return thread, results


def freeze_idle(box: DockerSandbox, stop: str) -> RunResult:
    (container,) = box._live
    if stop == "pause":
        container.pause()
    else:
        container.kill(signal="SIGSTOP")  # the agent, from outside its namespace
    return box.run({"main.py": "print('hello')"}, MAIN)


def freeze_mid_run(box: DockerSandbox) -> RunResult:
    (container,) = box._live
    thread, results = start(box, {"main.py": "import time\ntime.sleep(1000)"})
    while not any("main.py" in " ".join(p) for p in container.top()["Processes"]):
        assert thread.is_alive()
    container.pause()
    thread.join()
    return results[0]


# A hang guard, not a latency bound: without the host deadline these runs never return.
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "freeze", ["paused-while-idle", "agent-stopped-while-idle", "paused-mid-run"]
)
def test_the_host_deadline_holds_when_the_container_stops_answering(
    sandbox_image: str, freeze: str
) -> None:
    # mid-run, the pause must land before the agent's own deadline: give it ample time
    limits = Limits(timeout_s=10.0 if freeze == "paused-mid-run" else 1.0)
    with DockerSandbox(sandbox_image, pool_size=1, limits=limits) as box:
        (frozen,) = containers(box)
        if freeze == "paused-mid-run":
            result = freeze_mid_run(box)
        else:
            result = freeze_idle(box, "pause" if freeze == "paused-while-idle" else "SIGSTOP")
        assert result.timed_out and not result.ok and not result.oom_killed, result
        assert frozen not in containers(box)
        with pytest.raises(NotFound):
            box.client.containers.get(frozen)
        assert box.run({"main.py": "print('thawed')"}, MAIN).stdout == "thawed\n"


@pytest.mark.parametrize("death", ["killed", "removed", "restarted"])
def test_a_container_that_died_while_idle_is_replaced_before_the_next_run(
    sandbox_image: str, death: str
) -> None:
    with DockerSandbox(sandbox_image, pool_size=1) as box:
        (container,) = box._live
        if death == "removed":
            container.remove(force=True)
        elif death == "killed":
            container.kill()
            container.wait()
        else:  # running again, but with a new agent: the pool's channel is to the old one
            container.restart(timeout=0)
        result = box.run({"main.py": "print('alive')"}, MAIN)
        assert result.ok and result.stdout == "alive\n", result
        assert container.id not in containers(box)


def test_the_pool_heals_after_the_engine_refuses_a_replacement(sandbox_image: str) -> None:
    with DockerSandbox(sandbox_image, pool_size=2) as box:
        box.image = "summit-sandbox:missing"  # the engine refuses to create from it
        for container in list(box._live):
            container.kill()
            container.wait()
        for _ in range(3):
            with pytest.raises(SandboxError, match="summit-sandbox:missing"):
                box.run({"main.py": "print('refused')"}, MAIN)
        box.image = sandbox_image
        from sandboxes.code import run_programs

        results = run_programs(box, ["print('healed')"] * 4)
        assert [r.stdout for r in results] == ["healed\n"] * 4
        assert len(box._live) == 2
