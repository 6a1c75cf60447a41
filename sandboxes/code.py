"""Checking code against tests in the Docker sandbox, many programs at a time.

A program is one Python file that defines the solution and runs its tests (HumanEval
style: prompt + completion + test + ``check(entry_point)``); it passes when it exits 0
within the limits. :func:`run_programs` spreads programs over the sandbox's warm pool.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sandboxes.docker import DockerSandbox, RunResult


def check_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """The HumanEval-style program: the function, its tests, and the call that runs them."""
    return f"{prompt}{completion}\n\n{test}\n\ncheck({entry_point})\n"


def run_programs(
    box: DockerSandbox, programs: list[str], *, fresh: bool = False
) -> list[RunResult]:
    """Run each program as ``main.py``; results in input order. ``fresh`` uses a new
    container per program instead of the warm pool (for comparison)."""
    run = box.run_fresh if fresh else box.run
    with ThreadPoolExecutor(max_workers=box.pool_size) as pool:
        return list(pool.map(lambda p: run({"main.py": p}, ["python3", "main.py"]), programs))
