"""Checking code against tests in the Docker sandbox, many programs at a time.

A program is one Python file that defines the solution and runs its tests (HumanEval
style: prompt + completion + test + ``check(entry_point)``); it passes when it exits 0
within the limits. :func:`run_programs` spreads programs over the sandbox's warm pool;
:func:`run_python_tests` checks one solution against assert-based or unittest-style
tests; :func:`extract_code` pulls the code out of a model's answer.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from sandboxes.docker import DockerSandbox, RunResult

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_UNITTEST_MAIN = """
if __name__ == "__main__":
    import sys as _sys, unittest as _unittest
    _result = _unittest.main(exit=False).result
    _sys.exit(0 if _result.wasSuccessful() and _result.testsRun else 1)
"""


def check_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """The HumanEval-style program: the function, its tests, and the call that runs them."""
    return f"{prompt}{completion}\n\n{test}\n\ncheck({entry_point})\n"


def program_with_tests(solution: str, tests: str, entry_point: str | None = None) -> str:
    """One file: the solution, then the tests, then whatever runs them.

    ``tests`` may be bare asserts, a ``check(candidate)`` function (called with
    ``entry_point``), or ``unittest.TestCase`` classes (run, and failing when none ran).
    """
    program = f"{solution}\n\n{tests}\n"
    if "unittest" in tests and "TestCase" in tests:
        program += _UNITTEST_MAIN
    elif entry_point and re.search(r"^def check\(", tests, re.MULTILINE):
        program += f"\ncheck({entry_point})\n"
    return program


def run_python_tests(
    box: DockerSandbox, solution: str, tests: str, entry_point: str | None = None
) -> RunResult:
    """Run ``solution`` against ``tests`` in the sandbox; ``result.ok`` means they passed."""
    return box.run(
        {"main.py": program_with_tests(solution, tests, entry_point)}, ["python3", "main.py"]
    )


def extract_code(text: str) -> str:
    """The code in a model's answer: the longest fenced Python block, else the whole text.

    Fences with another language tag are skipped unless nothing else is there; an
    unterminated fence (a truncated answer) still yields what it holds.
    """
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text or "")]
    python = [b for lang, b in blocks if lang in ("", "python", "py", "python3")]
    chosen = python or [b for _, b in blocks]
    if chosen:
        return max(chosen, key=len).strip("\n")
    return (text or "").strip("\n")


def run_programs(
    box: DockerSandbox, programs: list[str], *, fresh: bool = False
) -> list[RunResult]:
    """Run each program as ``main.py``; results in input order. ``fresh`` uses a new
    container per program instead of the warm pool (for comparison)."""
    run = box.run_fresh if fresh else box.run
    with ThreadPoolExecutor(max_workers=box.pool_size) as pool:
        return list(pool.map(lambda p: run({"main.py": p}, ["python3", "main.py"]), programs))
