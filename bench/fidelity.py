"""Fidelity: rewards that cannot be gamed, checkers that agree with their reference,
filters that do not trust a weak judge, MCP episodes that never see each other's state.

Four measurements, each in its own module beside this one (run alone with ``--quick``
too), gathered into one table against their targets:

- ``fidelity_ifeval``: our instruction-following checkers against IFEval's reference
  implementation on generated responses, per family and overall (target >= 0.99 on the
  families both implement, after the deviations documented in docs/rl.md);
- ``fidelity_rewards``: the highest reward any gym gives a degenerate completion (empty,
  whitespace, prompt echo, truncated, looping, role markers), judges scripted to accept
  everything (target 0);
- ``fidelity_filters``: planted degenerate and good trajectories decided by the synthesis
  judge stage with the embedded model as judge (target 0 degenerate accepted);
- ``fidelity_mcp``: state leaks across concurrent and consecutive episodes of a stateful
  MCP server (target 0).

    python bench/fidelity.py [--quick] [--json] [--only ifeval,rewards,filters,mcp]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

PARTS = ("ifeval", "rewards", "filters", "mcp")
TARGETS: dict[str, tuple[str, str]] = {
    "ifeval_agreement": ("ifeval", ">= 0.99"),
    "ifeval_families_shared": ("ifeval", "-"),
    "ifeval_families_total": ("ifeval", "-"),
    "degenerate_max_reward": ("rewards", "0"),
    "degenerate_trajectories_accepted": ("filters", "0"),
    "good_trajectories_accepted": ("filters", "as high as the judge allows"),
    "mcp_state_leaks": ("mcp", "0"),
}


def run_part(name: str, quick: bool, console: Console) -> tuple[dict[str, Any], float]:
    """``measure(quick)`` of ``bench/fidelity_<name>.py``; an error is reported, not raised."""
    start = time.perf_counter()
    console.print(f"[bold]fidelity_{name}[/bold] …")
    try:
        module = importlib.import_module(f"fidelity_{name}")
        result = dict(module.measure(quick))
    except Exception as exc:  # noqa: BLE001 - one broken part must not hide the others
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    return result, time.perf_counter() - start


def table(results: dict[str, dict[str, Any]], seconds: dict[str, float]) -> Table:
    out = Table(title="Fidelity")
    for column in ("measure", "value", "target", "part (s)"):
        out.add_column(column)
    for key, (part, target) in TARGETS.items():
        if part not in results:
            continue
        value = results[part].get(key, results[part].get("error", "missing"))
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        out.add_row(key, shown, target, f"{part} ({seconds[part]:.0f})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer cases, same measures")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    args = parser.parse_args()
    wanted = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; known: {', '.join(PARTS)}")
    console = Console(stderr=args.json)
    results: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for part in wanted:
        results[part], seconds[part] = run_part(part, args.quick, console)
    console.print(table(results, seconds))
    for part, result in results.items():
        detail = {k: v for k, v in result.items() if k not in TARGETS}
        if detail:
            console.print(f"[bold]{part}[/bold] detail: {json.dumps(detail, default=str)[:2000]}")
    if args.json:
        flat: dict[str, Any] = {}
        for result in results.values():
            flat.update({k: v for k, v in result.items() if k in TARGETS or k == "error"})
        flat["parts"] = results
        print(json.dumps(flat, default=str))
    if any("error" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
