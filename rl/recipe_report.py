"""The recipe's final report: every metric after every evaluated stage.

``summarize`` flattens each evaluation's results (``python -m rl eval --json``) into
``metric -> value`` — ``agentic/<group>/pass@k`` and ``pass^k`` for the overall row, each
environment kind and each difficulty, ``gym/<name>/pass@k`` and ``mean_score`` where the
gyms were evaluated — and writes them side by side, one column per stage, as
``summary.json``, ``summary.md`` and ``summary.png`` in the run directory.

Not here: running anything; confidence intervals (``bench/recipe.py`` computes them from
the trials themselves).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm.files import atomic_write

GROUPS = ("by_environment", "by_difficulty")


def flatten(results: dict[str, Any]) -> dict[str, float]:
    """One evaluation's results as ``{metric: value}`` (metrics without a value left out)."""
    metrics: dict[str, float] = {}
    agentic = results.get("agentic") or {}
    rows = {"overall": agentic.get("overall") or {}}
    for group in GROUPS:
        for name, row in (agentic.get(group) or {}).items():
            rows[f"{group.removeprefix('by_')}={name}"] = row
    for name, row in rows.items():
        for key, value in row.items():
            if key.startswith(("pass@", "pass^")) and value is not None:
                metrics[f"agentic/{name}/{key}"] = float(value)
    for gym, row in results.items():
        if gym == "agentic" or not isinstance(row, dict):
            continue
        for key, value in row.items():
            if (key.startswith("pass@") or key == "mean_score") and value is not None:
                metrics[f"gym/{gym}/{key}"] = float(value)
    return metrics


def summarize(evaluations: dict[str, dict[str, Any]], run_dir: str | Path) -> dict[str, Any]:
    """``{"stages": [...], "metrics": {metric: {stage: value}}}``, written as JSON, a
    Markdown table and a plot into ``run_dir``."""
    run_dir = Path(run_dir)
    stages = list(evaluations)
    table: dict[str, dict[str, float]] = {}
    for stage, results in evaluations.items():
        for metric, value in flatten(results).items():
            table.setdefault(metric, {})[stage] = value
    summary = {"stages": stages, "metrics": dict(sorted(table.items()))}
    atomic_write(run_dir / "summary.json", (json.dumps(summary, indent=2)).encode())
    atomic_write(run_dir / "summary.md", (markdown(summary)).encode())
    if stages and table:
        plot(summary, run_dir / "summary.png")
    return summary


def markdown(summary: dict[str, Any]) -> str:
    stages = summary["stages"]
    lines = [
        "| metric | " + " | ".join(stages) + " |",
        "| --- |" + " ---: |" * len(stages),
    ]
    for metric, values in summary["metrics"].items():
        cells = [f"{values[s]:.3f}" if s in values else "-" for s in stages]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> Path:
    """One panel per metric family (overall, environment kinds, difficulties, gyms), a
    line per metric across the stages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families: dict[str, dict[str, dict[str, float]]] = {}
    for metric, values in summary["metrics"].items():
        parts = metric.split("/")
        family = parts[0] if parts[0] == "gym" else parts[1].split("=")[0]
        families.setdefault(family, {})[metric] = values
    stages = summary["stages"]
    fig, axes = plt.subplots(1, len(families), figsize=(4.5 * len(families), 3.6), squeeze=False)
    for ax, (family, metrics) in zip(axes[0], families.items(), strict=True):
        for metric, values in metrics.items():
            xs = [i for i, s in enumerate(stages) if s in values]
            ax.plot(xs, [values[stages[i]] for i in xs], marker="o", label=metric.split("/", 1)[1])
        ax.set_xticks(range(len(stages)), stages)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(family)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle("every metric after every stage")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
