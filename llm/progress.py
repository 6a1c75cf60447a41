"""Progress of a long job's stages that reads well on a terminal and in a log file.

On a terminal, Rich's live bars redraw in place. Where output is not a terminal (CI, a log
file, ``nohup``) a live display prints nothing until the end, so :class:`StageProgress`
instead prints one plain line per unfinished stage every ``every_s`` seconds, and one last
line when a stage completes or the display stops::

    12:04:31 trajectories (9/12 kept)  12/16  75%  elapsed 1:20  left ~0:27

It is a :class:`rich.progress.Progress` otherwise (``add_task``, ``advance``, ``update``),
so stages report the same way in both places. Synthesis, training (``rl.callbacks``) and
evaluation use it; ``--progress-every`` on their commands sets the interval. It lives in
``llm``, beside ``yamlconf``, because every command's package may import ``llm``.

Not here: what a stage counts, logging set-up.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task, TaskID

DEFAULT_EVERY_S = 30.0
"""Seconds between progress lines when output is not a terminal."""
EVERY_ENV = "SUMMIT_PROGRESS_EVERY_S"
"""The environment variable the commands read ``--progress-every`` from."""


class StageProgress(Progress):
    """Rich's bars on a terminal; elsewhere a line per stage every ``every_s`` seconds.

    Example::

        with StageProgress(console=Console(stderr=True), every_s=30) as progress:
            bar = progress.add_task("tasks", total=len(items))
            for item in items:
                ...
                progress.advance(bar)
    """

    def __init__(
        self, *columns: str | ProgressColumn, console: Console, every_s: float = DEFAULT_EVERY_S
    ) -> None:
        if every_s <= 0:
            raise ValueError(f"the progress interval must be > 0 seconds, got {every_s}")
        plain = not (console.is_interactive or console.is_jupyter)
        super().__init__(*columns, console=console, transient=False, disable=plain)
        self.every_s = every_s
        self._reported: set[TaskID] = set()
        """Finished stages whose last line has been printed."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        if self.disable and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        super().stop()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.report()

    def report(self) -> None:
        """Print a line for every stage not yet reported finished."""
        for task in self.tasks:
            if task.id in self._reported:
                continue
            if task.finished:
                self._reported.add(task.id)
            self.console.print(
                f"{time.strftime('%H:%M:%S')} {describe(task)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            self.report()


def describe(task: Task) -> str:
    """One line for ``task``: its name, counts, share done, time spent and left, fields."""
    parts = [task.description.strip()]
    if task.total:
        parts += [f"{task.completed:g}/{task.total:g}", f"{task.percentage:.0f}%"]
    else:
        parts.append(f"{task.completed:g}")
    spent = task.finished_time if task.finished else task.elapsed
    if spent is not None:
        parts.append(f"elapsed {_clock(spent)}")
    if not task.finished and task.time_remaining is not None:
        parts.append(f"left ~{_clock(task.time_remaining)}")
    parts += [str(value) for value in task.fields.values() if _shown(value)]
    return "  ".join(parts)


def _shown(value: Any) -> bool:
    return value is not None and value != ""


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
