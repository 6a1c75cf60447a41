"""The warm pool's promises, with real Docker: a run leaves nothing behind for the next one
(and a clean run keeps its container warm), the host deadline holds when a container
stops answering, and the pool heals.

Needs a Docker engine, like ``test_docker.py`` (failing instead of skipping when CI=true).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from docker.errors import NotFound

from sandboxes.base import SandboxError
from sandboxes.docker import DockerSandbox, Limits, RunResult

pytestmark = pytest.mark.integration
MAIN = ["python3", "main.py"]

# What a run can observe of what earlier runs did: the contents, mode and extended
# attributes of every directory it may write to, the SysV IPC tables, the other processes,
# and the limits, priorities and placement it inherits from the agent.
PROBE = r"""
import ctypes, json, os, platform, resource

def xattrs(path):
    try:
        return sorted(os.listxattr(path))
    except OSError as exc:
        return exc.strerror

places = {}
for root, dirs, _ in os.walk("/"):
    if root in ("/proc", "/sys"):
        dirs[:] = []
    elif os.access(root, os.W_OK):
        names = sorted(set(os.listdir(root)) - ({"main.py"} if root == "/work" else set()))
        places[root] = [names, oct(os.stat(root).st_mode), xattrs(root)]
ipc = {k: open(f"/proc/sysvipc/{k}").read().splitlines()[1:] for k in ("shm", "msg", "sem")}
mine = {1, os.getpid(), os.getppid()}
pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in mine]
limits = [n for n in dir(resource) if n.startswith("RLIMIT_")]
IOPRIO_GET = {"x86_64": 252, "aarch64": 31}[platform.machine()]
print(json.dumps({
    "places": places,
    "ipc": ipc,
    "processes": [open(f"/proc/{p}/cmdline").read() for p in pids],
    "rlimits": {n: resource.getrlimit(getattr(resource, n)) for n in limits},
    "nice": os.getpriority(os.PRIO_PROCESS, 0),
    "ioprio": ctypes.CDLL(None).syscall(IOPRIO_GET, 1, 0),
    "scheduler": [os.sched_getscheduler(0), os.sched_getparam(0).sched_priority],
    "affinity": sorted(os.sched_getaffinity(0)),
    "umask": os.umask(0o022),
}, sort_keys=True))
"""

LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"

# Each leaves something behind by a different route; none may reach the next run.
LEFTOVERS = {
    "files-in-every-writable-place": r"""
import os
for root, dirs, _ in os.walk("/"):
    if root in ("/proc", "/sys"):
        dirs[:] = []
        continue
    for name in ("leak", ".leak"):
        try:
            open(os.path.join(root, name), "w").write("x")
        except OSError:
            pass
home = os.path.expanduser("~")
for place in ("/work", "/tmp", "/dev/shm", "/var/tmp", "/run/lock", "/var/lock", home):
    try:
        os.makedirs(place + "/leak-dir/deeper", exist_ok=True)
        open(place + "/leak-dir/deeper/leak", "w").write("x")
        os.symlink("/etc/passwd", place + "/leak-dir/link")
        os.chmod(place + "/leak-dir", 0)
    except OSError:
        pass
""",
    "writable-roots-changed": r"""
import os
for place in ("/work", "/tmp", "/dev/shm", "/dev/mqueue"):
    for change in (lambda: os.setxattr(place, "user.leak", b"x"), lambda: os.chmod(place, 0o700)):
        try:
            change()
        except OSError:
            pass
""",
    "posix-shared-memory-queues-semaphores": LIBC
    + r"""
import _posixshmem
fd = _posixshmem.shm_open("/leak-shm", os.O_CREAT | os.O_RDWR, 0o600)
os.ftruncate(fd, 4096)
os.write(fd, b"secret")
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
queue = libc.mq_open(b"/leak-mq", os.O_CREAT | os.O_RDWR, 0o600, None)
assert queue >= 0, ctypes.get_errno()
assert libc.mq_send(queue, b"secret", 6, 0) == 0, ctypes.get_errno()
libc.sem_open.restype = ctypes.c_void_p
libc.sem_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint]
assert libc.sem_open(b"/leak-sem", os.O_CREAT, 0o600, 3) not in (None, ctypes.c_void_p(-1).value)
""",
    "sysv-shared-memory-queues-semaphores": LIBC
    + r"""
IPC_CREAT, IPC_PRIVATE = 0o1000, 0
for key in (IPC_PRIVATE, 0x5EC2E7):
    segment = libc.shmget(key, 4096, IPC_CREAT | 0o600)
    libc.shmat.restype = ctypes.c_void_p
    address = libc.shmat(segment, None, 0)
    ctypes.memmove(address, b"secret", 6)
    queue = libc.msgget(key, IPC_CREAT | 0o600)
    message = ctypes.create_string_buffer(b"\x01\x00\x00\x00\x00\x00\x00\x00secret")
    assert libc.msgsnd(queue, message, 6, 0) == 0, ctypes.get_errno()
    assert libc.semget(key, 2, IPC_CREAT | 0o600) >= 0, ctypes.get_errno()
""",
    "soft-limits-lowered": r"""
import os, resource
for name in dir(resource):
    if name.startswith("RLIMIT_"):
        for pid in (1, os.getpid(), os.getppid()):
            soft, hard = resource.prlimit(pid, getattr(resource, name))
            lower = 1 << 30 if soft == resource.RLIM_INFINITY else max(soft // 2, 1)
            try:
                resource.prlimit(pid, getattr(resource, name), (lower, hard))
            except (OSError, ValueError):
                pass
""",
    "hard-limits-lowered": r"""
import resource
for limit, value in ((resource.RLIMIT_NOFILE, 512), (resource.RLIMIT_NPROC, 4000),
                     (resource.RLIMIT_FSIZE, 1 << 30), (resource.RLIMIT_STACK, 1 << 22)):
    resource.prlimit(1, limit, (value, value))
""",
    "reniced": r"""
import os
os.setpriority(os.PRIO_PROCESS, 1, 5)
os.setpriority(os.PRIO_PGRP, 0, 10)
os.setpriority(os.PRIO_USER, os.getuid(), 15)
""",
    "ioniced": LIBC
    + r"""
import platform
IOPRIO_SET = {"x86_64": 251, "aarch64": 30}[platform.machine()]
WHO_PROCESS, WHO_PGRP, WHO_USER = 1, 2, 3
IDLE, BEST_EFFORT = 3 << 13, (2 << 13) | 7
assert libc.syscall(IOPRIO_SET, WHO_PROCESS, 1, IDLE) == 0, ctypes.get_errno()
assert libc.syscall(IOPRIO_SET, WHO_PGRP, 0, BEST_EFFORT) == 0, ctypes.get_errno()
assert libc.syscall(IOPRIO_SET, WHO_USER, os.getuid(), IDLE) == 0, ctypes.get_errno()
""",
    "rescheduled": r"""
import os
os.sched_setaffinity(1, {min(os.sched_getaffinity(1))})
os.sched_setscheduler(1, os.SCHED_IDLE, os.sched_param(0))
""",
    "processes-left-running": r"""
import os, signal, subprocess, time
subprocess.Popen(["sleep", "1000"])
subprocess.Popen(["sh", "-c", "trap '' HUP TERM INT; exec sleep 1000"], start_new_session=True)
if os.fork() == 0:  # a daemon: double fork, own session, its parent gone
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 3)
        time.sleep(1000)
    os._exit(0)
stopped = subprocess.Popen(["sleep", "1000"])
os.kill(stopped.pid, signal.SIGSTOP)
if os.fork() == 0:  # a zombie: exits while its parent never waits
    os._exit(0)
time.sleep(0.2)
""",
}


@pytest.fixture(scope="module")
def pool(sandbox_image: str) -> Iterator[DockerSandbox]:
    limits = Limits(timeout_s=5.0, memory_mb=128, pids=32)
    with DockerSandbox(sandbox_image, pool_size=1, limits=limits) as box:
        yield box


def probe(result: RunResult) -> dict[str, object]:
    assert result.ok, result
    return dict(json.loads(result.stdout))


def containers(box: DockerSandbox) -> set[str]:
    return {container.id for container in box.containers}


def test_a_clean_run_keeps_its_container_warm(pool) -> None:
    before = containers(pool)
    for _ in range(3):
        assert pool.run({"main.py": "print('warm')"}, MAIN).stdout == "warm\n"
    assert containers(pool) == before


@pytest.mark.parametrize("leftover", list(LEFTOVERS))
def test_nothing_a_run_leaves_behind_reaches_the_next_run(pool, leftover: str) -> None:
    clean = probe(pool.run_fresh({"main.py": PROBE}, MAIN))
    pool.run({"main.py": LEFTOVERS[leftover]}, MAIN)
    assert probe(pool.run({"main.py": PROBE}, MAIN)) == clean


def start(box: DockerSandbox, files: dict[str, str]) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(box.run(files, MAIN)), daemon=True)
    thread.start()
    return thread, results


def freeze_idle(box: DockerSandbox, stop: str) -> RunResult:
    (container,) = box.containers
    if stop == "pause":
        container.pause()
    else:
        container.kill(signal="SIGSTOP")  # the agent, from outside its namespace
    return box.run({"main.py": "print('hello')"}, MAIN)


def freeze_mid_run(box: DockerSandbox) -> RunResult:
    (container,) = box.containers
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
        (container,) = box.containers
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
        for container in box.containers:
            container.kill()
            container.wait()
        for _ in range(3):
            with pytest.raises(SandboxError, match="summit-sandbox:missing"):
                box.run({"main.py": "print('refused')"}, MAIN)
        box.image = sandbox_image
        from sandboxes.code import run_programs

        results = run_programs(box, ["print('healed')"] * 4)
        assert [r.stdout for r in results] == ["healed\n"] * 4
        assert len(box.containers) == 2


def test_a_pool_its_owner_never_closed_is_swept_by_its_label(sandbox_image: str) -> None:
    from sandboxes.docker import remove_containers

    label = {"summit.run": "sweep-test"}
    box = DockerSandbox(sandbox_image, pool_size=2, labels=label)  # its owner "dies" here
    other = DockerSandbox(sandbox_image, pool_size=1, labels={"summit.run": "another-run"})
    try:
        assert remove_containers(label) == 2
        assert remove_containers(label) == 0  # nothing of that run is left
        # another run's containers are not touched, and still run programs
        assert other.run({"main.py": "print('still here')"}, MAIN).stdout == "still here\n"
    finally:
        other.close()
        box.close()
