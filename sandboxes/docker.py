"""A hardened Docker sandbox for running untrusted code and its tests.

What it covers: no network, memory / CPU / process-count limits, a read-only root with
size-limited tmpfs for the work directory and /tmp, a non-root user with every capability
dropped, a wall-clock timeout enforced twice (by the agent inside; by a host-side deadline
that holds even when the container stops answering, frozen or paused, and replaces it),
results that say what happened (truncation whenever a byte of output is dropped or
replaced, OOM kills as the kernel counted them), and a warm pool of containers that
nothing of a run survives: files in any writable place, IPC objects, processes, or the
limits and priorities programs inherit. A container that cannot be proven clean, or that
died while idle, is replaced; when the engine refuses a new one the run raises
:class:`SandboxError` and a later run asks again. Each container's PID 1 is a small agent
the host talks to over one attach socket, so a run costs a line each way instead of a
``docker exec``. What it does not cover: kernel exploits (it is a container, not a VM),
GPU access, or languages other than those in the image (Python 3 in the default image).

The image is built without a registry (none is reachable here): ``debootstrap`` a minimal
Debian with python3, add the sandbox user, ``docker import`` the tree
(``python -m sandboxes build-image``); where a registry is reachable a Dockerfile build
gives the same image. This is the only module that imports ``docker``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import secrets
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound

from sandboxes.base import SandboxError

log = logging.getLogger(__name__)

IMAGE = "summit-sandbox:latest"
USER = "1000:1000"
WORKDIR = "/work"
GRACE_S = 5.0
"""How long past the timeout the host waits for the agent's answer (the agent kills what
is left and tidies up first) before it gives the container up and replaces it."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 256
    cpus: float = 1.0
    pids: int = 64
    workdir_mb: int = 64
    timeout_s: float = 10.0
    output_bytes: int = 64 * 1024


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    """The command's exit status; 128 + N when signal N ended it, 137 when no answer came."""
    stdout: str
    stderr: str
    timed_out: bool
    """Killed at ``Limits.timeout_s`` by the agent, or no answer by the host's deadline."""
    oom_killed: bool
    """The kernel's OOM killer killed a process of the run (not merely: it exited 137)."""
    duration_s: float
    truncated: bool
    """stdout or stderr is not what the program wrote: bytes past ``Limits.output_bytes``
    dropped, bytes that are not UTF-8 replaced (U+FFFD), or none read (no answer)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def engine() -> docker.DockerClient:
    """The Docker engine, or a SandboxError saying why there is none."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except DockerException as exc:
        raise SandboxError(f"no Docker engine: {exc}") from exc


def image_exists(tag: str = IMAGE) -> bool:
    try:
        engine().images.get(tag)
        return True
    except ImageNotFound:
        return False


def ensure_image(tag: str = IMAGE, *, announce: Callable[[str], None] | None = None) -> str:
    """``tag``, built first when missing (``announce`` is told before the minute it takes).
    Raises :class:`SandboxError` when no engine answers or the build fails."""
    if not image_exists(tag):
        if announce is not None:
            announce(f"building the sandbox image {tag} (about a minute, once) ...")
        build_image(tag)
    return tag


def build_image(tag: str = IMAGE, *, suite: str = "bookworm") -> str:
    """Build the sandbox image without a registry (debootstrap + docker import); returns
    the tag."""
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap is not installed (apt-get install -y debootstrap)")
    with tempfile.TemporaryDirectory(prefix="summit-rootfs-") as tmp:
        root = Path(tmp) / "root"
        command = ["debootstrap", "--variant=minbase", "--include=python3", suite, str(root)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SandboxError(f"debootstrap failed: {done.stderr.strip()[-500:]}")
        with open(root / "etc/passwd", "a") as passwd:
            passwd.write("sandbox:x:1000:1000:sandbox:/work:/bin/sh\n")
        with open(root / "etc/group", "a") as group:
            group.write("sandbox:x:1000:\n")
        (root / "work").mkdir(exist_ok=True)
        archive = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True)
        repository, _, version = tag.partition(":")
        engine().api.import_image(src=str(archive), repository=repository, tag=version or "latest")
    return tag


AGENT_SOURCE = (resources.files("sandboxes") / "container_agent.py").read_text()
"""PID 1 of every container (:mod:`sandboxes.container_agent`), run as ``python3 -c``."""


class _Channel:
    """The host end of a container's agent: its stdin and stdout over one attach socket."""

    def __init__(self, container: Any) -> None:
        self.socket = container.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        self.raw = self.socket._sock  # the SDK's documented way to write to an attach socket
        self.buffer = b""

    def waiting(self) -> bool:
        """Whether the agent still waits for a job: between jobs its stream is open and
        silent, so a stream that ended (or says anything) means the agent is gone."""
        poller = select.poll()  # not select.select: it fails on descriptors past 1023
        poller.register(self.raw, select.POLLIN)
        return not poller.poll(0)

    def ask(self, job: dict[str, Any], deadline: float) -> dict[str, Any] | None:
        """Send a job, wait for its answer until ``deadline`` (``time.monotonic()``); None
        when the agent died or missed the deadline."""
        try:
            self.raw.settimeout(max(deadline - time.monotonic(), 0.0))
            self.raw.sendall(json.dumps(job).encode() + b"\n")
            while True:
                line, sep, rest = self.buffer.partition(b"\n")
                if sep:
                    self.buffer = rest
                    answer = json.loads(line)
                    if answer.get("id") == job["id"]:
                        return dict(answer)
                    continue
                header = self._read(8, deadline)  # docker's stream multiplexing
                self.buffer += self._read(int.from_bytes(header[4:], "big"), deadline)
        except (OSError, ValueError):
            return None

    def _read(self, size: int, deadline: float) -> bytes:
        # not docker's read_exactly: it polls without a timeout, so a frozen agent hangs it
        data = b""
        while len(data) < size:
            self.raw.settimeout(max(deadline - time.monotonic(), 0.0))
            chunk = self.raw.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the agent's stream ended")
            data += chunk
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.close()


def remove_containers(labels: dict[str, str]) -> int:
    """Force-remove every sandbox container carrying ``labels``; how many were removed.

    For a job's clean-up after its workers are gone: a worker killed by a signal, the
    kernel or a lost node never closes its pool. No engine, nothing to remove: 0.
    """
    try:
        client = docker.from_env(timeout=30)
        filters = {"label": ["summit=sandbox", *(f"{k}={v}" for k, v in labels.items())]}
        containers = client.containers.list(all=True, filters=filters)
    except (DockerException, OSError):
        return 0
    removed = 0
    for container in containers:
        with contextlib.suppress(DockerException, OSError):
            container.remove(force=True)
            removed += 1
    return removed


class DockerSandbox:
    """A warm pool of hardened containers. Use as a context manager; thread-safe."""

    def __init__(
        self,
        image: str = IMAGE,
        *,
        pool_size: int = 2,
        limits: Limits = Limits(),
        labels: dict[str, str] | None = None,
    ) -> None:
        """``labels`` go on every container beside ``summit=sandbox``, so that whoever
        started the sandbox can find its containers again (:func:`remove_containers`)
        even when the process that owned the pool died without closing it."""
        self.image, self.limits, self.pool_size = image, limits, pool_size
        self.labels = {"summit": "sandbox", **(labels or {})}
        self.client = engine()
        try:
            self.client.images.get(image)
        except ImageNotFound as exc:
            raise SandboxError(
                f"sandbox image {image} is missing: run `python -m sandboxes build-image`"
            ) from exc
        self._idle: queue.Queue[Any | None] = queue.Queue()
        """Containers waiting for a run; None holds the place of one to start."""
        self._live: dict[Any, _Channel] = {}
        """Every container of this sandbox (pooled or fresh) with its agent's channel."""
        self._lock = threading.Lock()
        try:
            for _ in range(pool_size):
                self._idle.put(self._start())
        except SandboxError:
            self.close()
            raise

    @property
    def containers(self) -> list[Any]:
        """The sandbox's containers now (pooled or running a job): Docker SDK objects, for
        inspection; the sandbox keeps managing them."""
        with self._lock:
            return list(self._live)

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            containers = list(self._live)
        for container in containers:
            self._discard(container)

    def _start(self) -> Any:
        """A new container, its agent attached; SandboxError when the engine refuses."""
        lim = self.limits
        container = None
        try:
            # create, not run: run would try to pull a missing image from a registry
            container = self.client.containers.create(
                self.image,
                command=["python3", "-c", AGENT_SOURCE],
                stdin_open=True,
                network_disabled=True,
                network_mode="none",
                mem_limit=f"{lim.memory_mb}m",
                memswap_limit=f"{lim.memory_mb}m",
                nano_cpus=int(lim.cpus * 1e9),
                pids_limit=lim.pids,
                read_only=True,
                tmpfs={
                    WORKDIR: f"rw,exec,size={lim.workdir_mb}m,uid=1000,gid=1000",
                    "/tmp": "rw,size=16m,uid=1000,gid=1000",
                },
                user=USER,
                working_dir=WORKDIR,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                labels=self.labels,
            )
            container.start()
            channel = _Channel(container)
        except (DockerException, OSError) as exc:  # requests' errors are OSErrors
            if container is not None:
                with contextlib.suppress(DockerException, OSError):
                    container.remove(force=True)
            raise SandboxError(f"the Docker engine refused a sandbox container: {exc}") from exc
        with self._lock:
            self._live[container] = channel
        return container

    def _discard(self, container: Any) -> None:
        with self._lock:
            channel = self._live.pop(container, None)
        if channel is not None:
            channel.close()
        with contextlib.suppress(DockerException, OSError):
            container.remove(force=True)

    def _waiting(self, container: Any | None) -> bool:
        with self._lock:
            channel = self._live.get(container)
        return channel is not None and channel.waiting()

    def run(self, files: dict[str, str], command: list[str] | str) -> RunResult:
        """Write ``files`` under /work and run ``command`` there, within the limits.

        The container comes from the warm pool: one that died while idle is replaced
        first, and one the run may have left unclean is replaced for the next run. Raises
        :class:`SandboxError` when the agent refuses the job (a file outside /work) or the
        engine refuses a new container; a later run asks the engine again.
        """
        slot = self._idle.get()  # a container, or None: start one
        container = None
        try:
            if self._waiting(slot):
                container = slot
            else:
                if slot is not None:
                    self._discard(slot)
                container = self._start()
            result, clean = self._run_in(container, files, command)
            if not clean:
                self._discard(container)
                container = None
            return result
        except SandboxError:
            if container is not None:
                self._discard(container)
                container = None
            raise
        finally:
            self._idle.put(container)

    def run_fresh(self, files: dict[str, str], command: list[str] | str) -> RunResult:
        """Like :meth:`run` but in a new container, removed afterwards (no pool)."""
        container = self._start()
        try:
            return self._run_in(container, files, command)[0]
        finally:
            self._discard(container)

    def _run_in(
        self, container: Any, files: dict[str, str], command: list[str] | str
    ) -> tuple[RunResult, bool]:
        """One job for the container's agent (:mod:`sandboxes.container_agent`); also says
        whether the container is fit for the next run."""
        lim = self.limits
        shell = command if isinstance(command, str) else " ".join(_quote(c) for c in command)
        job = {
            "id": secrets.token_hex(8),
            "files": files,
            "command": shell,
            "timeout": lim.timeout_s,
            "cap": lim.output_bytes,
        }
        with self._lock:
            channel = self._live[container]
        started = time.monotonic()
        # the agent enforces the timeout; this deadline catches an agent that cannot
        answer = channel.ask(job, started + lim.timeout_s + GRACE_S)
        duration = time.monotonic() - started
        if answer is None:
            return self._lost(container, duration), False
        if "error" in answer:
            raise SandboxError(answer["error"])
        result = RunResult(
            int(answer["exit_code"]),
            answer["stdout"],
            answer["stderr"],
            bool(answer["timed_out"]),
            bool(answer["oom_killed"]),
            float(answer["duration_s"]),
            bool(answer["truncated"]),
        )
        # the engine's OOMKilled, which _lost reads, stays set for a container's life: a
        # container is replaced after an OOM kill so that it speaks of one run
        return result, bool(answer["clean"]) and not result.oom_killed

    def _lost(self, container: Any, duration: float) -> RunResult:
        """The agent gave no answer: the container stopped answering (frozen, paused) or
        the program took it down (its memory or process table). Say what is known; the
        container is replaced."""
        oom = False
        with contextlib.suppress(DockerException, OSError):
            container.reload()
            oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
        timed_out = duration >= self.limits.timeout_s
        note = "sandbox: the container's agent gave no answer; the program's output is lost"
        return RunResult(137, "", note, timed_out, oom and not timed_out, duration, True)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
