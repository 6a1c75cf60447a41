"""IFEval fidelity: our instruction checkers against Google's, per family and overall.

Generated responses (compliant, non-compliant and edge cases; ``rl/gyms/ifeval_cases.py``)
are checked by our constraint and by IFEval's checker for the same instruction (the
``if-verifiable`` package, with an offline Punkt model). Raw agreement counts every
disagreement; agreement after deviations counts a disagreement as agreed only when one of
the family's documented rules (``docs/rl.md``, ``rl/gyms/ifeval_reference.py``) applies to
the response, and says how many each rule explained.

Target: >= 0.99 after the documented deviations on every family both implement.

    python bench/fidelity_ifeval.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rl.gyms.constraints import FAMILIES  # noqa: E402
from rl.gyms.ifeval_cases import generate  # noqa: E402
from rl.gyms.ifeval_reference import REFERENCE_IDS, explained, reference_check  # noqa: E402


def measure(quick: bool) -> dict[str, object]:
    """Agreement with IFEval on 2,000 generated responses (5,000 without ``quick``)."""
    cases = generate(2_000 if quick else 5_000, seed=0)
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    rules: Counter[str] = Counter()
    for case in cases:
        family = str(case.constraint.kind)
        ours, theirs = case.constraint.check(case.text), reference_check(case.constraint, case.text)
        row = totals[family]
        row["cases"] += 1
        row["ours_pass"] += ours
        if ours == theirs:
            row["agree"] += 1
            continue
        names = explained(case.constraint, case.text)
        row["explained"] += bool(names)
        rules.update(names[:1])
    families = {
        family: {
            "cases": row["cases"],
            "ours_pass_rate": round(row["ours_pass"] / row["cases"], 3),
            "raw": round(row["agree"] / row["cases"], 4),
            "after_deviations": round((row["agree"] + row["explained"]) / row["cases"], 4),
        }
        for family, row in sorted(totals.items())
    }
    count = sum(row["cases"] for row in totals.values())
    agree = sum(row["agree"] for row in totals.values())
    explained_total = sum(row["explained"] for row in totals.values())
    return {
        "ifeval_agreement": round((agree + explained_total) / count, 4),
        "ifeval_agreement_raw": round(agree / count, 4),
        "ifeval_families_shared": len(set(REFERENCE_IDS) & set(FAMILIES)),
        "ifeval_families_total": len(FAMILIES),
        "ifeval_responses": count,
        "ifeval_lowest_family": min(families.values(), key=lambda r: r["after_deviations"])[
            "after_deviations"
        ],
        "ifeval_families": families,
        "ifeval_disagreements_by_rule": dict(rules.most_common()),
    }


def _table(figures: dict[str, object]) -> Table:
    table = Table(title="IFEval agreement per family (generated responses)")
    for column in ("family", "cases", "ours pass", "raw", "after deviations"):
        table.add_column(column, justify="left" if column == "family" else "right")
    families = figures["ifeval_families"]
    assert isinstance(families, dict)
    for family, row in families.items():
        table.add_row(
            family,
            str(row["cases"]),
            f"{row['ours_pass_rate']:.2f}",
            f"{row['raw']:.3f}",
            f"{row['after_deviations']:.3f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 responses, not 5,000")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    args = parser.parse_args()
    figures = measure(args.quick)
    console = Console()
    console.print(_table(figures))
    console.print(
        f"overall: {figures['ifeval_agreement']} after deviations, "
        f"{figures['ifeval_agreement_raw']} raw, on {figures['ifeval_responses']} responses; "
        f"families shared {figures['ifeval_families_shared']} of "
        f"{figures['ifeval_families_total']}; disagreements by rule: "
        f"{figures['ifeval_disagreements_by_rule']}"
    )
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
