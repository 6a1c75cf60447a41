"""One container holding one copy of a real project, for one SWE episode or one mutant.

The SWE image (:mod:`sandboxes.swe_image`) keeps each project read-only under
``/opt/swe/projects/<name>`` with what its build learnt in ``/opt/swe/meta/<name>.json``
(where its tests are, the tests that passed). A :class:`RepoContainer` copies one project
to ``/work/project`` and works there: shell commands, file reads and writes, test runs
through :mod:`sandboxes.swe_runner`. The container is hardened like the code sandbox's
(:mod:`sandboxes.docker`): no network, memory / CPU / process limits, a read-only root
with size-limited tmpfs for ``/work`` and ``/tmp``, a non-root user without capabilities.
Every command is cut by ``timeout`` inside the container and by a host deadline that holds
when the container stops answering (then :class:`SandboxError`). Unlike the code sandbox
it keeps what the agent changes between commands (that is the episode), so it is never
pooled: one container, one episode.

It does not talk to the agent or judge anything (:mod:`sandboxes.swe`), and it never
imports ``docker`` itself: the engine comes from :mod:`sandboxes.docker`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shlex
import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sandboxes.base import SandboxError
from sandboxes.docker import USER, DockerException, engine

SWE_IMAGE = "summit-swe:latest"
PROJECTS = "/opt/swe/projects"
META = "/opt/swe/meta"
PROJECT_DIR = "/work/project"
MARKER = "/tmp/.summit-start"
"""Touched once the episode's starting files are written: files newer are the agent's edits."""
MAX_FILE_BYTES = 2_000_000
"""The largest file ``read``/``write`` move (a command line carries a write)."""
GRACE_S = 10.0
"""How long past a command's timeout the host waits before giving the container up."""
RUNNER_SOURCE = (resources.files("sandboxes") / "swe_runner.py").read_text()
ENVIRONMENT = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8", "HOME": "/tmp"}
"""No bytecode: a fix written within the same second as the last run, at the same size,
would otherwise run stale ``.pyc`` files."""
WRAPPER = r"""
out=$(mktemp) && res=$(mktemp) || exit 125
SUMMIT_RESULTS=$res timeout -k 2 "$1" sh -c "$3" >"$out" 2>&1 </dev/null
code=$?
printf '%s %s %s\n' "$code" "$(wc -c <"$out")" "$(wc -c <"$res")"
head -c 8000000 "$res"
tail -c "$2" "$out"
rm -f "$out" "$res"
"""
"""Runs ``$3`` under ``sh -c`` for at most ``$1`` seconds (SIGTERM, SIGKILL 2 s later) with
stdout and stderr in a file; prints ``code size results-size``, the results file
(``$SUMMIT_RESULTS``) and the last ``$2`` bytes of the output."""


@dataclass(frozen=True)
class SWELimits:
    memory_mb: int = 1024
    cpus: float = 1.0
    pids: int = 256
    workdir_mb: int = 256
    command_timeout_s: float = 30.0
    """A ``run_shell`` command's wall-clock limit."""
    test_timeout_s: float = 120.0
    """A test run's wall-clock limit (the whole suite)."""
    output_bytes: int = 8 * 1024
    """How much of a command's output comes back: its last bytes."""


@dataclass(frozen=True)
class Output:
    exit_code: int
    text: str
    """The last ``output_bytes`` of stdout and stderr together, as a terminal shows them."""
    timed_out: bool
    truncated: bool
    duration_s: float
    results: bytes = b""
    """What the command wrote to ``$SUMMIT_RESULTS`` (the test runner's JSON)."""


@dataclass(frozen=True)
class SuiteRun:
    """The outcome of one run of a project's tests, test by test."""

    exit_code: int
    outcomes: dict[str, str]
    """Test id → ``pass`` | ``fail`` | ``error`` | ``skip``; empty when the run gave none."""
    failures: dict[str, str]
    """Test id → the failure as the test files see it (no line of the code under test)."""
    output: str
    """The tail of unittest's report."""
    timed_out: bool
    duration_s: float

    def not_passing(self, ids: list[str] | tuple[str, ...]) -> list[str]:
        """Those of ``ids`` that did not pass (failed, errored, skipped or never ran)."""
        return [i for i in ids if self.outcomes.get(i) != "pass"]


@dataclass(frozen=True)
class ProjectInfo:
    """A project of the SWE image, as its build recorded it."""

    name: str
    test_dir: str
    """Where ``unittest`` discovers the tests, relative to the project's root."""
    python_path: str = ""
    """A directory to put on ``PYTHONPATH`` (``src`` for a src layout), or empty."""
    passing: tuple[str, ...] = ()
    """The tests that passed on the original project when the image was built."""
    source: str = ""
    """Where the project came from (``more-itertools==10.5.0``, ``fixture``)."""

    @property
    def test_command(self) -> str:
        """The command a person runs from the project's root to run its tests."""
        prefix = f"PYTHONPATH={shlex.quote(self.python_path)} " if self.python_path else ""
        return f"{prefix}python3 -m unittest discover -s {shlex.quote(self.test_dir)} -t ."

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProjectInfo:
        return cls(
            name=str(data["name"]),
            test_dir=str(data["test_dir"]),
            python_path=str(data.get("python_path", "")),
            passing=tuple(data.get("passing", ())),
            source=str(data.get("source", "")),
        )


def run_in(
    container: Any,
    argv: list[str],
    wait_s: float,
    *,
    user: str = USER,
    workdir: str = PROJECT_DIR,
    environment: dict[str, str] | None = None,
) -> tuple[int, bytes, bytes]:
    """``docker exec`` of ``argv``: (exit code, stdout, stderr). The SDK's exec waits without
    a deadline, so it runs on a thread that is given up after ``wait_s``: then, or when the
    engine fails the exec (a dead container), :class:`SandboxError`."""
    answer: dict[str, Any] = {}

    def work() -> None:
        try:
            answer["result"] = container.exec_run(
                argv, user=user, workdir=workdir, environment=environment, demux=True
            )
        except (DockerException, OSError) as exc:  # requests' errors are OSErrors
            answer["error"] = exc

    thread = threading.Thread(target=work, name="swe-exec", daemon=True)
    thread.start()
    thread.join(wait_s)
    if thread.is_alive():
        raise SandboxError(f"the container gave no answer within {wait_s:.0f}s")
    if "error" in answer:
        raise SandboxError(f"the Docker engine failed a command: {answer['error']}")
    result = answer["result"]
    stdout, stderr = result.output
    return int(result.exit_code), stdout or b"", stderr or b""


def bounded(
    container: Any,
    command: str,
    timeout_s: float,
    cap: int,
    *,
    user: str = USER,
    workdir: str = PROJECT_DIR,
    environment: dict[str, str] | None = None,
) -> Output:
    """``command`` under :data:`WRAPPER`: cut at ``timeout_s``, its output's last ``cap``
    bytes back, and what it wrote to ``$SUMMIT_RESULTS``."""
    argv = ["sh", "-c", WRAPPER, "summit", f"{timeout_s:g}", str(cap), command]
    started = time.monotonic()
    code, stdout, stderr = run_in(
        container, argv, timeout_s + GRACE_S, user=user, workdir=workdir, environment=environment
    )
    duration = time.monotonic() - started
    header, _, rest = stdout.partition(b"\n")
    try:
        status, size, results_size = (int(v) for v in header.split())
    except ValueError:
        detail = (stderr or stdout).decode(errors="replace").strip()[-300:]
        raise SandboxError(f"the command wrapper failed (exit {code}): {detail}") from None
    results, tail = rest[:results_size], rest[results_size:]
    return Output(
        exit_code=status,
        text=tail.decode("utf-8", errors="replace"),
        timed_out=status in (124, 137) and duration >= timeout_s,
        truncated=size > cap,
        duration_s=duration,
        results=results,
    )


def test_run(output: Output) -> SuiteRun:
    """The runner's results from a command's :class:`Output` (none when it was cut short)."""
    try:
        data = json.loads(output.results) if output.results else {}
    except ValueError:
        data = {}
    return SuiteRun(
        exit_code=output.exit_code,
        outcomes=dict(data.get("outcomes", {})),
        failures=dict(data.get("failures", {})),
        output=output.text,
        timed_out=output.timed_out,
        duration_s=output.duration_s,
    )


def runner_command(test_dir: str, ids: list[str] | tuple[str, ...] = ()) -> str:
    """The shell command that runs the tests through :mod:`sandboxes.swe_runner`."""
    words = ["python3", "-c", RUNNER_SOURCE, test_dir, *ids]
    return " ".join(shlex.quote(w) for w in words)


class RepoContainer:
    """A started container with one project copied to :data:`PROJECT_DIR`. Blocking calls;
    the environment runs them on threads."""

    def __init__(self, container: Any, project: ProjectInfo, limits: SWELimits) -> None:
        self.container, self.project, self.limits = container, project, limits
        self.environment = dict(ENVIRONMENT)
        if project.python_path:
            self.environment["PYTHONPATH"] = f"{PROJECT_DIR}/{project.python_path}"

    @classmethod
    def start(
        cls,
        project: str,
        *,
        image: str = SWE_IMAGE,
        limits: SWELimits = SWELimits(),
        labels: dict[str, str] | None = None,
    ) -> RepoContainer:
        """A new container of ``image`` with ``project`` copied in; :class:`SandboxError`
        when the engine refuses it or the image has no such project."""
        client = engine()
        container = None
        try:
            # create, not run: run would try to pull a missing image from a registry
            container = client.containers.create(
                image,
                command=["sleep", "infinity"],
                init=True,  # reaps the orphans of the agent's commands
                network_disabled=True,
                network_mode="none",
                mem_limit=f"{limits.memory_mb}m",
                memswap_limit=f"{limits.memory_mb}m",
                nano_cpus=int(limits.cpus * 1e9),
                pids_limit=limits.pids,
                read_only=True,
                tmpfs={
                    "/work": f"rw,exec,size={limits.workdir_mb}m,uid=1000,gid=1000",
                    "/tmp": "rw,exec,size=64m,uid=1000,gid=1000",
                },
                user=USER,
                working_dir="/work",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                labels={"summit": "sandbox", "summit.kind": "swe", **(labels or {})},
            )
            container.start()
        except (DockerException, OSError) as exc:
            _remove(container)
            raise SandboxError(f"the Docker engine refused an SWE container: {exc}") from exc
        try:
            info = cls._project_info(container, project)
            box = cls(container, info, limits)
            box.restore_project()
        except BaseException:
            _remove(container)
            raise
        return box

    @staticmethod
    def _project_info(container: Any, name: str) -> ProjectInfo:
        code, stdout, _ = run_in(container, ["cat", f"{META}/{name}.json"], 60, workdir="/")
        if code != 0:
            _, listing, _ = run_in(container, ["ls", META], 60, workdir="/")
            known = ", ".join(p.removesuffix(".json") for p in listing.decode().split()) or "none"
            raise SandboxError(f"the SWE image has no project {name!r} (it has: {known})")
        return ProjectInfo.from_json(json.loads(stdout))

    # ------------------------------------------------------------------ commands
    def shell(self, command: str, timeout_s: float | None = None) -> Output:
        """``sh -c command`` in the project's root, cut at the command timeout."""
        limit = timeout_s if timeout_s is not None else self.limits.command_timeout_s
        return bounded(
            self.container,
            command,
            limit,
            self.limits.output_bytes,
            environment=self.environment,
        )

    def run_tests(
        self, ids: list[str] | tuple[str, ...] = (), timeout_s: float | None = None
    ) -> SuiteRun:
        """The project's tests (all, or those of ``ids``), test by test."""
        limit = timeout_s if timeout_s is not None else self.limits.test_timeout_s
        return test_run(self.shell(runner_command(self.project.test_dir, ids), limit))

    def read(self, path: str) -> str:
        """The whole text of ``path`` (relative to the project's root, or absolute);
        :class:`FileNotFoundError` or :class:`ValueError` (too large, not text) otherwise."""
        script = 'test -f "$1" || exit 3; [ "$(wc -c <"$1")" -le "$2" ] || exit 4; cat "$1"'
        argv = ["sh", "-c", script, "read", path, str(MAX_FILE_BYTES)]
        code, stdout, stderr = run_in(self.container, argv, 60)
        if code == 3:
            raise FileNotFoundError(f"no file {path}")
        if code == 4:
            raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        if code != 0:
            raise ValueError(f"cannot read {path}: {stderr.decode(errors='replace').strip()}")
        try:
            return stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not UTF-8 text") from None

    def write(self, path: str, text: str) -> None:
        """Write ``text`` to ``path`` (directories made); :class:`ValueError` when it cannot."""
        data = base64.b64encode(text.encode("utf-8")).decode("ascii")
        if len(data) > MAX_FILE_BYTES * 4 // 3 + 4:
            raise ValueError(f"the text for {path} is larger than {MAX_FILE_BYTES} bytes")
        chunks = [data[i : i + 100_000] for i in range(0, len(data), 100_000)] or [""]
        script = 'f=$1; shift; mkdir -p "$(dirname "$f")" && printf %s "$@" | base64 -d >"$f"'
        code, _, stderr = run_in(self.container, ["sh", "-c", script, "write", path, *chunks], 60)
        if code != 0:
            raise ValueError(f"cannot write {path}: {stderr.decode(errors='replace').strip()}")

    def restore_project(self) -> None:
        """The project's original files back in :data:`PROJECT_DIR` (anything else there goes)."""
        script = 'rm -rf "$2" && cp -r "$1" "$2" && touch "$3"'
        source = f"{PROJECTS}/{self.project.name}"
        code, _, stderr = run_in(
            self.container,
            ["sh", "-c", script, "copy", source, PROJECT_DIR, MARKER],
            120,
            workdir="/",
        )
        if code != 0:
            raise SandboxError(f"cannot copy the project in: {stderr.decode(errors='replace')}")

    def restore_tests(self) -> None:
        """The project's original test files back (an agent's edits to them undone)."""
        tests = f"{PROJECT_DIR}/{self.project.test_dir}"
        script = 'rm -rf "$2" && cp -r "$1" "$2"'
        source = f"{PROJECTS}/{self.project.name}/{self.project.test_dir}"
        code, _, stderr = run_in(self.container, ["sh", "-c", script, "tests", source, tests], 120)
        if code != 0:
            raise SandboxError(f"cannot restore the tests: {stderr.decode(errors='replace')}")

    def mark_start(self) -> None:
        """From now on, files changed count as edits (:meth:`changed`)."""
        run_in(self.container, ["touch", MARKER], 60)

    def changed(self) -> dict[str, str]:
        """Files changed since :meth:`mark_start` → the first 16 hex digits of their sha256."""
        script = (
            'find . -type f -newer "$1" ! -path "*/__pycache__/*" -print0 | xargs -0 -r sha256sum'
        )
        _, stdout, _ = run_in(self.container, ["sh", "-c", script, "changed", MARKER], 60)
        found = {}
        for line in stdout.decode(errors="replace").splitlines():
            digest, _, path = line.partition("  ")
            if path:
                found[path.removeprefix("./")] = digest[:16]
        return dict(sorted(found.items()))

    def close(self) -> None:
        _remove(self.container)


def _remove(container: Any) -> None:
    if container is not None:
        with contextlib.suppress(DockerException, OSError):
            container.remove(force=True)
