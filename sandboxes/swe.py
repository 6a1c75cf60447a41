"""Repository-level (SWE-style) environments: fix a bug in a real project, judged by its tests.

One container per episode (:class:`~sandboxes.swe_container.RepoContainer`), started from
the SWE image (``python -m sandboxes build-swe-image``) with the project copied to
``/work/project``. ``reset(task)`` starts it and writes the task's starting files over the
project (the mutated file: ``initial_state = {"project": NAME, "files": {PATH: TEXT}}``).
The agent has four tools: ``run_shell(command)``, ``read_file(path)``,
``edit_file(path, old, new)`` (``old`` must occur exactly once) and
``run_tests(target?)``; what it changes persists for the episode. The state is the set of
files changed since the episode started with their digests (one ``find`` after a call that
can change files; nothing runs for a snapshot). :func:`swe_reward` runs the whole suite at
the end, with the original test files put back: 1.0 iff every test the bug broke passes
again and every test that passed on the original still passes.

What it does not do: isolate the agent's code from the test process (a fix runs in the
process that reports the outcomes; restoring the test files stops edits to the tests, not a
fix written to fake results), or run anything but ``unittest`` suites.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sandboxes.base import Environment, SandboxError, ToolFailure
from sandboxes.swe_container import (
    PROJECT_DIR,
    SWE_IMAGE,
    RepoContainer,
    SuiteRun,
    SWELimits,
)
from tool_registry import Provenance, ToolSpec

READ_CHARS = 64_000
"""The most of a file ``read_file`` returns at once (ask for lines to see the rest)."""


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        parameters={"type": "object", "properties": properties, "required": required},
        side_effect="read" if name == "read_file" else "write",
        category="code",
        domain="software engineering",
        provenance=Provenance(source="python", origin="sandboxes.swe"),
    )


RUN_SHELL = _tool(
    "run_shell",
    "Run a shell command (sh -c) in the project's root, /work/project (no network). Returns "
    "its exit code and the end of its output. Changes persist for the episode.",
    {"command": {"type": "string", "description": "The command line."}},
    ["command"],
)
READ_FILE = _tool(
    "read_file",
    "Read a text file of the project (a path relative to its root), optionally only lines "
    "start_line..end_line (1-based, inclusive).",
    {
        "path": {"type": "string"},
        "start_line": {"type": "integer", "minimum": 1},
        "end_line": {"type": "integer", "minimum": 1},
    },
    ["path"],
)
EDIT_FILE = _tool(
    "edit_file",
    "Replace the text `old` with `new` in a file of the project. `old` must occur exactly "
    "once in the file (include surrounding lines to make it unique).",
    {
        "path": {"type": "string"},
        "old": {"type": "string", "description": "The exact text to replace."},
        "new": {"type": "string", "description": "The text to put in its place."},
    },
    ["path", "old", "new"],
)
RUN_TESTS = _tool(
    "run_tests",
    "Run the project's unittest suite, or only `target` (a test module, class or test id "
    "such as tests.test_stats.MeanTest). Returns the exit code, the failing tests and the "
    "end of unittest's report.",
    {"target": {"type": "string", "description": "A dotted test id; all tests when absent."}},
    [],
)


SWE_TOOLS = (RUN_SHELL, READ_FILE, EDIT_FILE, RUN_TESTS)
"""The tools of a repository episode."""


class BrokenTests(Protocol):
    """What the reward needs of a task's check (``synth.schema.RepoCheck`` is one)."""

    @property
    def failing_tests(self) -> Sequence[str]: ...


class SWEEnvironment(Environment):
    """A project in a container, for one episode at a time; ``close`` removes the container."""

    def __init__(
        self,
        image: str = SWE_IMAGE,
        *,
        limits: SWELimits | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """``labels`` go on the container beside ``summit=sandbox``, so that
        ``sandboxes.docker.remove_containers`` finds it after a lost worker."""
        super().__init__(list(SWE_TOOLS))
        self.image, self.labels = image, labels
        self.limits = limits or SWELimits()
        self.box: RepoContainer | None = None
        self._edited: dict[str, str] = {}
        self._broken: list[str] = []
        """The tests the task's bug broke (``initial_state.failing_tests``)."""

    async def _reset(self, task: dict[str, Any]) -> str:
        state = task.get("initial_state") or {}
        project = state.get("project")
        if not isinstance(project, str):
            raise SandboxError("an SWE task names its project: initial_state.project")
        files = dict(state.get("files") or {})
        await self.close()
        self.box = await asyncio.to_thread(
            RepoContainer.start, project, image=self.image, limits=self.limits, labels=self.labels
        )
        box = self.box
        for path, text in files.items():
            try:
                await asyncio.to_thread(box.write, str(path), str(text))
            except ValueError as exc:
                raise SandboxError(f"cannot start the episode: {exc}") from exc
        await asyncio.to_thread(box.mark_start)
        self._edited = {}
        self._broken = [str(t) for t in state.get("failing_tests") or []]
        return (
            f"The project {project} is checked out at {PROJECT_DIR} (no network). Its tests "
            f"run with `{box.project.test_command}` (or the run_tests tool). Tools: "
            "run_shell, read_file, edit_file, run_tests."
        )

    @property
    def container(self) -> RepoContainer:
        if self.box is None:
            raise SandboxError("the SWE environment has no episode: call reset(task) first")
        return self.box

    async def _invoke(self, name: str, arguments: dict[str, Any]) -> str:
        box = self.container
        if name == "read_file":
            return await self._read(box, arguments)
        if name == "edit_file":
            answer = await self._edit(
                box, str(arguments["path"]), arguments["old"], arguments["new"]
            )
        elif name == "run_shell":
            command = str(arguments["command"])
            if not command.strip():
                raise ToolFailure("command is empty")
            output = await self._guarded(box.shell, command)
            answer = json.dumps(
                {
                    "exit_code": output.exit_code,
                    "timed_out": output.timed_out,
                    "output": output.text,
                    "truncated": output.truncated,
                }
            )
        else:
            target = arguments.get("target")
            run = await self._guarded(box.run_tests, (str(target),) if target else ())
            answer = json.dumps(tests_summary(run))
        self._edited = await self._guarded(box.changed)
        return answer

    async def _snapshot(self) -> dict[str, Any]:
        project = self.box.project.name if self.box is not None else None
        return {"project": project, "edited": dict(self._edited)}

    async def final_state(self) -> dict[str, Any]:
        """The state, and where the task names the tests its bug broke, the reward the
        whole suite gives (``reward``, ``reward_reason``: :func:`swe_reward`)."""
        state = await self.state()
        if self._broken and self.box is not None:
            state["reward"], state["reward_reason"] = await swe_reward(self, _Broken(self._broken))
        return state

    async def close(self) -> None:
        box, self.box = self.box, None
        if box is not None:
            await asyncio.to_thread(box.close)

    async def final_tests(self) -> SuiteRun:
        """The whole suite as the judge runs it: the original test files put back first."""
        box = self.container
        await self._guarded(box.restore_tests)
        return await self._guarded(box.run_tests)

    # ------------------------------------------------------------------ helpers
    async def _guarded(self, call: Any, *args: Any) -> Any:
        """``call`` on a thread; the container is removed when it stops answering."""
        try:
            return await asyncio.to_thread(call, *args)
        except SandboxError:
            await self.close()
            raise

    async def _read(self, box: RepoContainer, arguments: dict[str, Any]) -> str:
        path = str(arguments["path"])
        text = await self._file(box, path)
        start, end = arguments.get("start_line"), arguments.get("end_line")
        if start is not None or end is not None:
            lines = text.splitlines(keepends=True)
            first = int(start or 1)
            if first > len(lines):
                raise ToolFailure(f"{path} has {len(lines)} lines; start_line is {first}")
            text = "".join(lines[first - 1 : int(end or len(lines))])
        if len(text) > READ_CHARS:
            shown = text[:READ_CHARS]
            lines_shown = shown.count("\n")
            return f"{shown}\n[... truncated after line {lines_shown}: ask for start_line]"
        return text

    async def _edit(self, box: RepoContainer, path: str, old: Any, new: Any) -> str:
        old, new = str(old), str(new)
        if not old:
            raise ToolFailure("old is empty: give the exact text to replace")
        text = await self._file(box, path)
        count = text.count(old)
        if count != 1:
            where = "does not occur" if count == 0 else f"occurs {count} times"
            raise ToolFailure(
                f"old {where} in {path}; it must occur exactly once "
                "(copy it exactly, with surrounding lines to make it unique)"
            )
        try:
            await self._guarded(box.write, path, text.replace(old, new, 1))
        except ValueError as exc:
            raise ToolFailure(str(exc)) from None
        lines = old.count("\n") + 1, new.count("\n") + 1
        return f"edited {path}: replaced {lines[0]} line(s) with {lines[1]}"

    async def _file(self, box: RepoContainer, path: str) -> str:
        try:
            return str(await self._guarded(box.read, path))
        except (FileNotFoundError, ValueError) as exc:
            raise ToolFailure(str(exc)) from None


def tests_summary(run: SuiteRun, listed: int = 20) -> dict[str, Any]:
    """What ``run_tests`` tells the agent: counts, the first failing ids, the report's end."""
    failing = sorted(i for i, o in run.outcomes.items() if o in ("fail", "error"))
    return {
        "exit_code": run.exit_code,
        "timed_out": run.timed_out,
        "passed": sum(o == "pass" for o in run.outcomes.values()),
        "failing": failing[:listed],
        "more_failing": max(len(failing) - listed, 0),
        "output": run.output,
    }


def grade(run: SuiteRun, broken: Sequence[str], passing: Sequence[str]) -> tuple[float, str]:
    """1.0 iff every test of ``broken`` and of ``passing`` (the original's) passes in ``run``;
    else 0.0 with the reason. A test skipped or absent counts as not passing."""
    if run.timed_out:
        return 0.0, f"the tests timed out ({run.duration_s:.0f}s)"
    if not run.outcomes:
        return 0.0, f"the tests did not run (exit {run.exit_code}): {run.output.strip()[-300:]}"
    still = run.not_passing(tuple(broken))
    if still:
        return 0.0, f"{len(still)} of the {len(broken)} broken tests still fail: {_ids(still)}"
    regressed = run.not_passing(tuple(t for t in passing if t not in set(broken)))
    if regressed:
        return 0.0, f"{len(regressed)} tests that passed on the original fail: {_ids(regressed)}"
    return 1.0, f"the {len(broken)} broken tests pass and no other test fails"


async def swe_reward(env: SWEEnvironment, check: BrokenTests) -> tuple[float, str]:
    """The episode's reward and its reason: the whole suite run in the episode's container
    (original test files put back), graded by :func:`grade` against the tests the bug broke
    (``check.failing_tests``) and those that passed when the image was built. Raises
    :class:`SandboxError` when the container fails (the judging, not the agent, failed).

    >>> score, reason = await swe_reward(env, task.checks.repo)  # doctest: +SKIP
    """
    run = await env.final_tests()
    return grade(run, list(check.failing_tests), env.container.project.passing)


@dataclass(frozen=True)
class _Broken:
    failing_tests: Sequence[str]


def _ids(ids: list[str], shown: int = 5) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more
