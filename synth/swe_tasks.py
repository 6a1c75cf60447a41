"""Repository tasks from injected bugs: mutate, run the tests, keep what they catch.

:func:`build_swe_tasks` takes a project of the SWE image (:mod:`sandboxes.swe_image`),
enumerates mutants of its source files (:mod:`synth.mutations`), runs the project's tests
on each in one container (a fresh copy of the project per mutant, each run cut at a
timeout scaled from the original's), and keeps the mutants whose tests fail while the
original's pass. Every mutant tried is counted: kept, or dropped with its reason
(:data:`DROP_REASONS`). For each kept mutant the generator model writes the issue from the
failing tests' output alone (:func:`write_issue`): never from the diff or the mutated
source, and the changed lines are struck from that output before it is sent. When the
generator fails, a plain issue is written from the test names and assertion messages.

What it does not do: judge whether an issue is good (the synthesis judge does), or
decide which kept mutants are worth training on beyond "a test catches it".
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel

from llm import ChatClient, LLMError, Message
from rubrics import Criterion, Rubric
from rubrics.render import defuse, nonce
from sandboxes.base import SandboxError
from sandboxes.swe import SWEEnvironment
from sandboxes.swe_container import SWE_IMAGE, RepoContainer, SuiteRun, SWELimits
from synth.mutations import Mutant, mutants
from synth.schema import Checks, RepoCheck, TaskSpec, stable_id
from synth.templates import render

log = logging.getLogger(__name__)

DROP_REASONS = {
    "syntax": "the mutated module does not compile",
    "duplicate": "another mutant of the same file gave the same text",
    "original_fails": "the original project's tests do not all pass, so nothing can be judged",
    "no_failing_test": "every test still passes on the mutant (the tests do not catch it)",
    "timeout": "the tests ran past their timeout on the mutant (an infinite loop, say)",
    "no_results": "the test run gave no results (the runner itself failed)",
    "sandbox": "the container failed while the mutant's tests ran",
}
HEADERS = {"FAIL", "ERROR", "SKIP", "MISSING"}
"""How :func:`failure_report` heads each test's part (its outcome, upper case)."""
REPORT_CHARS = 6000
"""The most of the failing tests' output the issue writer sees."""


class IssueDraft(BaseModel):
    """The generator's issue."""

    title: str
    body: str


@dataclass(frozen=True)
class SWETask:
    """One kept mutant, as the data of a task."""

    project: str
    path: str
    function: str
    operator: str
    description: str
    """What the mutation changed (for reports; the agent and the issue writer never see it)."""
    mutated_source: str
    failing_tests: tuple[str, ...]
    test_command: str
    issue: str
    failure_report: str
    """What the issue was written from: the failing tests' output, changed lines struck."""

    @property
    def origin(self) -> str:
        """``project:module.function:operator`` (``tinyproj:stats.mean:flip_compare``)."""
        parts = self.path.removesuffix(".py").split("/")
        module = ".".join(parts[1:] or parts)
        return f"{self.project}:{module}.{self.function}:{self.operator}"

    def check(self) -> RepoCheck:
        return RepoCheck(
            project=self.project,
            path=self.path,
            mutated_source=self.mutated_source,
            failing_tests=list(self.failing_tests),
            test_command=self.test_command,
        )

    def initial_state(self) -> dict[str, object]:
        """What :class:`~sandboxes.swe.SWEEnvironment` starts the episode from."""
        return {
            "project": self.project,
            "files": {self.path: self.mutated_source},
            "failing_tests": list(self.failing_tests),
        }

    def task_spec(self, agent_id: str, domain: str = "software engineering") -> TaskSpec:
        """The task for the synthesis pipeline (environment ``docker``, ``checks.repo``)."""
        task_id = stable_id("task", "mutation", self.project, self.path, self.mutated_source)
        goal = (
            f"{self.issue}\n\nThe project is checked out at /work/project. Please fix this "
            "bug in the project's code (not in its tests)."
        )
        rubric = Rubric(
            id=f"task.{task_id.removeprefix('task-')}",
            kind="task",
            description=f"Fix the bug reported against {self.project}",
            criteria=[
                Criterion(
                    id="fixed",
                    description="The assistant changed the project's code so that the "
                    "reported behaviour is correct and the project's tests pass.",
                    scale="binary",
                    mandatory=True,
                    weight=2.0,
                ),
                Criterion(
                    id="focused",
                    description="The fix is a small change where the bug is, found by "
                    "reading the code and running the tests, without editing the tests.",
                ),
            ],
        )
        return TaskSpec(
            id=task_id,
            agent_id=agent_id,
            domain=domain,
            difficulty="multi_step",
            environment="docker",
            user_goal=goal,
            initial_state=self.initial_state(),
            rubric=rubric,
            expected_tools=["run_tests", "read_file", "edit_file"],
            checks=Checks(repo=self.check()),
            source="mutation",
            origin=self.origin,
        )


async def build_swe_tasks(
    project: str,
    client: ChatClient | None,
    *,
    image: str = SWE_IMAGE,
    seed: int = 0,
    per_function: int | None = 2,
    max_mutants: int | None = None,
    files: list[str] | None = None,
    limits: SWELimits | None = None,
    mutant_timeout_s: float | None = None,
) -> tuple[list[SWETask], Counter[str]]:
    """The kept tasks of ``project`` and the count of dropped mutants by reason
    (:data:`DROP_REASONS`); every mutant tried is in one or the other.

    ``files``: the source files to mutate (relative to the project's root); by default every
    ``.py`` file of its packages outside the tests. ``client``: the generator that writes
    the issues (None: plain issues). ``mutant_timeout_s``: a mutant's test run limit
    (default: five times the original's, at least 10 s, at most the limits'). Raises
    :class:`SandboxError` when no container starts.

    >>> tasks, dropped = await build_swe_tasks("tinyproj", client, max_mutants=20)  # doctest: +SKIP
    """
    box = await asyncio.to_thread(
        RepoContainer.start, project, image=image, limits=limits or SWELimits()
    )
    try:
        sources = {p: await asyncio.to_thread(box.read, p) for p in files or _source_files(box)}
        candidates = list(_limited(_all_mutants(sources, seed, per_function), max_mutants))
        original = await asyncio.to_thread(box.run_tests)
        passing = box.project.passing
        if original.timed_out or original.not_passing(passing):
            log.warning("%s: the original's tests fail; no mutant can be judged", project)
            return [], Counter({"original_fails": len(candidates)})
        timeout = mutant_timeout_s or min(
            max(10.0, 5 * original.duration_s), box.limits.test_timeout_s
        )
        tasks: list[SWETask] = []
        dropped: Counter[str] = Counter()
        seen: set[tuple[str, str]] = set()
        for mutant in candidates:
            reason, run = await _try(box, mutant, sources, seen, timeout)
            if reason is not None or run is None:
                dropped[reason or "no_results"] += 1
                continue
            failing = tuple(run.not_passing(passing))
            report = failure_report(failing, run, sources[mutant.path], mutant.source)
            issue = await write_issue(client, project, report, failing, seed=seed)
            tasks.append(
                SWETask(
                    project=project,
                    path=mutant.path,
                    function=mutant.function,
                    operator=mutant.operator,
                    description=mutant.description,
                    mutated_source=mutant.source,
                    failing_tests=failing,
                    test_command=box.project.test_command,
                    issue=issue,
                    failure_report=report,
                )
            )
        return tasks, dropped
    finally:
        await asyncio.to_thread(box.close)


async def _try(
    box: RepoContainer,
    mutant: Mutant,
    sources: dict[str, str],
    seen: set[tuple[str, str]],
    timeout: float,
) -> tuple[str | None, SuiteRun | None]:
    """Why ``mutant`` is dropped (and None), or None and its test run."""
    try:
        compile(mutant.source, mutant.path, "exec")
    except (SyntaxError, ValueError):
        return "syntax", None
    if (mutant.path, mutant.source) in seen or mutant.source == sources[mutant.path]:
        return "duplicate", None
    seen.add((mutant.path, mutant.source))
    try:
        await asyncio.to_thread(box.restore_project)
        await asyncio.to_thread(box.write, mutant.path, mutant.source)
        run = await asyncio.to_thread(box.run_tests, (), timeout)
    except SandboxError as exc:
        log.warning("mutant %s: %s", mutant.description, exc)
        return "sandbox", None
    if run.timed_out:
        return "timeout", None
    if not run.outcomes:
        return "no_results", None
    if not run.not_passing(box.project.passing):
        return "no_failing_test", None
    return None, run


def _source_files(box: RepoContainer) -> list[str]:
    """The project's package modules: ``.py`` files beside an ``__init__.py``, not tests."""
    output = box.shell("find . -name '*.py' -not -path '*/__pycache__/*' | sort", 60)
    paths = [p.removeprefix("./") for p in output.text.split()]
    packages = {p.rsplit("/", 1)[0] for p in paths if p.endswith("/__init__.py")}
    tests = box.project.test_dir.rstrip("/") + "/"
    return [
        p for p in paths if "/" in p and p.rsplit("/", 1)[0] in packages and not p.startswith(tests)
    ]


def _all_mutants(sources: dict[str, str], seed: int, per_function: int | None) -> Iterator[Mutant]:
    for path, source in sources.items():
        try:
            yield from mutants(source, path, seed=seed, per_function=per_function)
        except SyntaxError:
            log.warning("%s does not parse; no mutants from it", path)


def _limited(items: Iterator[Mutant], limit: int | None) -> Iterator[Mutant]:
    for count, item in enumerate(items):
        if limit is not None and count >= limit:
            return
        yield item


def changed_lines(original: str, mutated: str) -> set[str]:
    """The stripped lines that differ between the two texts (both sides)."""
    diff = difflib.ndiff(original.splitlines(), mutated.splitlines())
    return {d[2:].strip() for d in diff if d[:2] in ("- ", "+ ") and d[2:].strip()}


def failure_report(failing: tuple[str, ...], run: SuiteRun, original: str, mutated: str) -> str:
    """The failing tests' output for the issue writer: each test's report (test-file frames
    and the exception, :mod:`sandboxes.swe_runner`), with any line that holds a changed line
    of the source struck (defence in depth: the runner already leaves project code out)."""
    struck = changed_lines(original, mutated)
    parts = []
    for test_id in failing:
        text = run.failures.get(test_id) or "(did not run: its module or class failed first)"
        kept = [line for line in text.splitlines() if not any(s in line for s in struck)]
        parts.append(
            f"{run.outcomes.get(test_id, 'missing').upper()}: {test_id}\n" + "\n".join(kept)
        )
    report = "\n\n".join(parts)
    return report if len(report) <= REPORT_CHARS else report[:REPORT_CHARS] + "\n[...]"


async def write_issue(
    client: ChatClient | None,
    project: str,
    report: str,
    failing: tuple[str, ...],
    *,
    seed: int = 0,
) -> str:
    """The issue text, written by ``client`` from ``report`` alone; :func:`plain_issue`
    when there is no client or it fails."""
    if client is None:
        return plain_issue(project, report, failing)
    prompt = render("swe_issue", project=project, report=defuse(report), nonce=nonce(report))
    try:
        draft = await client.complete_json(
            [Message(role="user", content=prompt)], IssueDraft, seed=seed, max_tokens=600
        )
    except LLMError as exc:
        log.warning("the issue writer failed (%s); writing a plain issue", exc)
        return plain_issue(project, report, failing)
    if not draft.title.strip() or not draft.body.strip():
        return plain_issue(project, report, failing)
    return f"{draft.title.strip()}\n\n{draft.body.strip()}"


def plain_issue(project: str, report: str, failing: tuple[str, ...]) -> str:
    """An issue built from the failing tests' names and messages (never the diff)."""
    messages = [
        line.strip()
        for line in report.splitlines()
        if line.strip()
        and not line.startswith((" ", "Traceback", "- ", "+ ", "? "))
        and line.split(":")[0] not in HEADERS
    ]
    names = ", ".join(failing[:5]) + (f" and {len(failing) - 5} more" if len(failing) > 5 else "")
    lines = [f"{len(failing)} test(s) of {project} fail: {names}", "", "Failures:"]
    lines += [f"- {m}" for m in dict.fromkeys(messages)][:10]
    return "\n".join(lines)


def swe_yield(tasks: list[SWETask], dropped: Counter[str]) -> float:
    """Kept mutants over mutants tried (0.0 when none was tried)."""
    tried = len(tasks) + sum(dropped.values())
    return len(tasks) / tried if tried else 0.0


async def swe_env_seconds(task: SWETask, *, image: str = SWE_IMAGE) -> float:
    """Seconds to build one SWE environment from a warm image: container start, project
    copied, mutation applied (what ``reset`` costs an episode). The container is removed."""
    env = SWEEnvironment(image)
    try:
        started = time.perf_counter()
        await env.reset({"initial_state": task.initial_state()})
        return time.perf_counter() - started
    finally:
        await env.close()
