"""Shared fixtures: the embedded endpoint is started once per session (it loads a model);
a module's scratch directory, removed when the module ends (``module_dir``); a command run
as a watched subprocess (``watched``)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAFETY_S = 300.0
"""Only keeps a hung command from hanging the suite; no test asserts how fast anything is."""


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[object]:
    from llm.embedded import EmbeddedServer

    with EmbeddedServer(max_batch=8) as server:
        yield server


@pytest.fixture(scope="module")
def module_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A directory for one module's shared fixtures, removed when the module's tests end.

    Training runs save checkpoints of hundreds of MB each (model and optimizer state); kept
    until the session ends, a whole suite's worth fills a disk. Function-scoped ``tmp_path``
    directories go when their test passes (``tmp_path_retention_policy`` in pyproject.toml).
    """
    path = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    """The sandbox image, built on first use (~1 min); skipped with the reason where no
    Docker engine runs, failing instead when CI=true (CI must exercise it)."""
    import os

    from sandboxes.base import SandboxError

    try:
        from sandboxes.docker import ensure_image

        image = ensure_image()
    except SandboxError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Docker sandbox unavailable in CI: {exc}")
        pytest.skip(f"no Docker sandbox here: {exc}")
    return image


@pytest.fixture(scope="session")
def docker_sandbox(sandbox_image: str) -> Iterator[object]:
    """A small warm pool of the hardened sandbox, shared by the session."""
    from sandboxes.docker import DockerSandbox, Limits

    with DockerSandbox(sandbox_image, pool_size=2, limits=Limits(timeout_s=5.0)) as box:
        yield box


class Watched:
    """``python -m ARGS`` in its own session (as a shell starts it), its output captured
    (so not a terminal), every process it starts recorded while it runs."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        """stderr, line by line, as it comes."""
        self.output = ""
        """stdout, once the command has exited."""
        self.family: dict[int, float] = {}
        """pid → creation time of every process the command started."""
        self._threads = [
            threading.Thread(target=target, daemon=True)
            for target in (self._read, self._drain, self._watch)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, until: Callable[[re.Match[str]], bool] = bool) -> None:
        """Wait while the command runs for a stderr line matching ``pattern`` (and ``until``)."""
        deadline = time.monotonic() + SAFETY_S
        while time.monotonic() < deadline:
            exited = self.proc.poll() is not None
            matches = (re.search(pattern, line) for line in list(self.lines))
            if any(m is not None and until(m) for m in matches):
                return
            if exited:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}; stderr:\n{self.stderr[-4000:]}")

    def finish(self) -> int:
        """The exit status, once the command has exited and its output is read."""
        try:
            self.proc.wait(timeout=SAFETY_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"it did not exit; stderr:\n{self.stderr[-4000:]}") from None
        for thread in self._threads:
            thread.join(timeout=SAFETY_S)
        return self.proc.returncode

    def last_line(self) -> str:
        return [line for line in self.lines if line.strip()][-1].strip()

    def leftovers(self) -> list[str]:
        """The command's processes still alive after it exited (given time to be reaped)."""
        deadline = time.monotonic() + 30
        while True:
            left = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in self._alive()]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL whatever of the command is alive (a failed test's clean-up)."""
        for proc in self._alive():
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def _alive(self) -> list[psutil.Process]:
        alive = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                ours = self.family.get(proc.pid) == proc.create_time()
                grouped = os.getpgid(proc.pid) == self.proc.pid
                if (ours or grouped) and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
        return alive

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        self.output = self.proc.stdout.read()

    def _watch(self) -> None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            while self.proc.poll() is None:
                for child in root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        self.family[child.pid] = child.create_time()
                time.sleep(0.05)


@pytest.fixture
def watched() -> Iterator[Callable[..., Watched]]:
    """Start commands as :class:`Watched`; whatever of them is left is killed afterwards."""
    started: list[Watched] = []

    def start(*args: str) -> Watched:
        started.append(Watched(*args))
        return started[-1]

    yield start
    for command in started:
        command.kill()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a disk the test can fill without filling the machine's."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        why = f"cannot mount a tmpfs here (needs root): {made.stderr.decode().strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Write zeros to ``disk`` until it has no space left."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler
