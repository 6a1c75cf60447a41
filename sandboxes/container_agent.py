# mypy: check-untyped-defs
"""PID 1 of every container: a small agent that takes one job per line on its stdin (the
host attaches to it once per container, so a run costs no ``docker exec``) and answers one
JSON line on its stdout. Per job: write the files, run the command under ``sh -c`` with
stdin closed and stdout/stderr in unlinked files (the program cannot reach them by name),
kill it at the deadline, then put the container back as it started, or say it could not
(``clean``): SIGKILL every process left and reap them (as PID 1 it inherits every orphan),
restore its own limits, priorities and CPU placement (a program runs as the same user and
may change them; programs inherit them), remove SysV IPC objects, and empty every
writable mount (work directory, /tmp, /dev/shm with POSIX shared memory and semaphores,
/dev/mqueue), restoring their mode and extended attributes. It makes itself non-dumpable,
so programs cannot open /proc/1/fd to forge its answers; an answer also carries the job's
id, which only the host and the agent know. It installs no signal handler: PID 1 ignores
every signal without one that comes from inside its namespace.

The host runs this file as ``python3 -c SOURCE`` (:data:`sandboxes.docker.AGENT_SOURCE`);
it is never imported on the host: importing it does nothing, running it serves jobs.
"""

import codecs
import contextlib
import ctypes
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time

LIBC = ctypes.CDLL(None)
IOPRIO = {"x86_64": (251, 252), "aarch64": (30, 31), "riscv64": (30, 31)}.get(platform.machine())
RLIMITS = [name for name in dir(resource) if name.startswith("RLIMIT_")]
IPC_RMID = {
    "shm": lambda i: LIBC.shmctl(i, 0, None),
    "msg": lambda i: LIBC.msgctl(i, 0, None),
    "sem": lambda i: LIBC.semctl(i, 0, 0),
}


def attempt(call, *args):
    with contextlib.suppress(OSError, ValueError):
        call(*args)


def settings():
    # what a program can change in the agent and every later program would inherit; the
    # I/O priority is unknown on other architectures, so no run there is proven clean
    return {
        "limits": {n: resource.getrlimit(getattr(resource, n)) for n in RLIMITS},
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "scheduler": (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority),
        "affinity": os.sched_getaffinity(0),
        "ioprio": LIBC.syscall(IOPRIO[1], 1, 0) if IOPRIO else object(),
    }


def restore():
    # a lowered soft limit or I/O priority comes back; a lowered hard limit, a raised nice
    # value or an idle scheduling class cannot, unprivileged, and the container is replaced
    for name, limit in PRISTINE["limits"].items():
        attempt(resource.setrlimit, getattr(resource, name), limit)
    attempt(os.setpriority, os.PRIO_PROCESS, 0, PRISTINE["nice"])
    policy, priority = PRISTINE["scheduler"]
    attempt(os.sched_setscheduler, 0, policy, os.sched_param(priority))
    attempt(os.sched_setaffinity, 0, PRISTINE["affinity"])
    if IOPRIO:
        LIBC.syscall(IOPRIO[0], 1, 0, PRISTINE["ioprio"])


def xattrs(path):
    try:
        return sorted(os.listxattr(path))
    except OSError:
        return None


def writable_places():
    # every mounted directory the program may write to, with its mode and extended
    # attributes (files Docker masks, like /proc/keys, are /dev/null mounted over them)
    places = {}
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            point, options = line.split()[1], line.split()[3].split(",")
            if "rw" in options and os.path.isdir(point) and os.access(point, os.W_OK):
                places[point] = (os.stat(point).st_mode & 0o7777, xattrs(point))
    return places


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def scrub(seconds):
    # kill -1 spares the caller, and PID 1 cannot be SIGKILLed from inside its namespace;
    # the agent's limits come back before it opens anything (a program may have left it
    # no file descriptor)
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        reap()
        restore()
        try:
            if not [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]:
                return True
        except OSError:
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def remove(path):
    # a program may have made a directory unreadable (chmod 000): the agent, its owner
    # as the same user, opens it up again before removing what is inside
    if os.path.islink(path) or not os.path.isdir(path):
        attempt(os.unlink, path)
        return
    try:
        os.chmod(path, 0o700)
        names = os.listdir(path)
    except OSError:
        names = []
    for name in names:
        remove(os.path.join(path, name))
    attempt(os.rmdir, path)


def wipe(root, mode, names):
    try:
        if os.stat(root).st_mode & 0o7777 != mode:
            os.chmod(root, mode)
        for name in set(xattrs(root) or ()) - set(names or ()):
            os.removexattr(root, name)
        for name in os.listdir(root):
            remove(os.path.join(root, name))
        return not os.listdir(root) and xattrs(root) == names
    except (OSError, RecursionError):
        return False


def ipc_ids(kind):
    with open(f"/proc/sysvipc/{kind}") as table:
        return [int(line.split()[1]) for line in list(table)[1:]]


def tidy():
    # SysV objects belong to no file; their creator, the program, is the agent's user
    try:
        for kind, remove_one in IPC_RMID.items():
            for ident in ipc_ids(kind):
                remove_one(ident)
        if any(ipc_ids(kind) for kind in IPC_RMID) or settings() != PRISTINE:
            return False
    except OSError:
        return False
    return all([wipe(root, *PLACES[root]) for root in PLACES])


def oom_kills():
    # the kernel's count of OOM kills in the container's memory cgroup (v1, else v2)
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        try:
            with open(path) as counters:
                for line in counters:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except OSError:
            pass
    return None


def capture(handle, cap):
    # at most cap bytes of output, decoded; whole when no byte was dropped or replaced
    size = handle.seek(0, 2)
    handle.seek(0)
    data = handle.read(cap)
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=size <= cap)
    return text, size <= cap and text.encode() == data


def doomed():
    # the program, not the agent, is what the OOM killer should take (the child is
    # dumpable again so it may write its own /proc entry; exec would make it so anyway)
    LIBC.prctl(4, 1, 0, 0, 0)
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")
    except OSError:
        pass


def run(job):
    try:
        for name, text in job["files"].items():
            path = os.path.realpath(os.path.join("/work", name))
            if not path.startswith("/work/"):
                raise ValueError(f"{name!r} is outside the work directory")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as handle:
                handle.write(text)
    except (OSError, ValueError) as exc:
        return {"error": f"could not write files: {exc}"}
    kills = oom_kills()
    with tempfile.TemporaryFile(dir="/tmp") as out, tempfile.TemporaryFile(dir="/tmp") as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            ["sh", "-c", job["command"]],
            cwd="/work",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=doomed,
        )
        timed_out = False
        try:
            code = proc.wait(job["timeout"])
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            code = proc.wait()
        duration = time.monotonic() - started
        clean = scrub(2.0)
        (stdout, whole_out), (stderr, whole_err) = (capture(f, job["cap"]) for f in (out, err))
    return {
        "exit_code": 128 - code if code < 0 else code,
        "stdout": stdout,
        "stderr": stderr,
        "timed_out": timed_out,
        "duration_s": duration,
        "truncated": not (whole_out and whole_err),
        "oom_killed": kills is not None and oom_kills() != kills,
        "clean": clean and tidy(),
    }


PRISTINE: dict = {}  # the agent's settings as it started (main fills both)
PLACES: dict = {}  # writable mount point -> (mode, extended attributes)


def main():
    global PRISTINE, PLACES
    LIBC.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python's handler would let kill -INT 1 end it
    PRISTINE, PLACES = settings(), writable_places()
    for line in sys.stdin.buffer:
        job = json.loads(line)
        try:
            answer = run(job)
        except Exception as exc:  # noqa: BLE001 - the host replaces this container on any error
            answer = {"error": f"sandbox agent: {exc!r}"}
        answer["id"] = job["id"]
        sys.stdout.buffer.write(json.dumps(answer).encode() + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
