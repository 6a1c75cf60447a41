"""Agentic evaluation: a checkpoint plays held-out tasks ``n`` times each, with the
simulated user; pass@k and pass^k per environment kind, per difficulty and overall.

The checkpoint is served by the embedded engine and plays as the synthesis' agent
(:mod:`rl.trials`: the synthesis' roll-out and judge stage — the verifiable check where
a task has one, else the rubrics judge). A trial passes when its record is accepted.
pass@k (some of ``k`` trials succeed) and pass^k (τ-bench: all ``k`` succeed) are the
unbiased estimators of :mod:`rl.estimators` averaged over tasks; only tasks with all
``n`` trials written count (the others are listed as incomplete: a rerun plays what they
miss). Trials are kept in a directory keyed by the checkpoint and the block, so a rerun,
or one with more samples, plays only what is missing.

``python -m rl eval CONFIG --checkpoint PATH`` runs it when the config has an
``agentic_eval`` block, after the gyms; :func:`table` and :func:`plot` render the report.
Not here: the gyms' single-turn evaluation (:mod:`rl.evaluate`).
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from llm.files import atomic_write
from llm.progress import DEFAULT_EVERY_S
from rl.estimators import Outcome, summarize
from rl.task_sources import in_split, load_task_set
from rl.trial_config import AgenticEvalConfig
from rl.trials import TrialsError, finished, open_store, plan, play_missing
from synth.config import RoleEndpoint
from synth.schema import stable_id


def trials_dir(block: AgenticEvalConfig, output_dir: str | Path, checkpoint: str | Path) -> Path:
    """Where the trials of ``checkpoint`` under ``block`` are kept: ``block.trials_dir``,
    else ``<output_dir>/agentic_eval/<checkpoint name>-<hash>``."""
    if block.trials_dir is not None:
        return block.trials_dir
    key = stable_id(Path(checkpoint).name, str(Path(checkpoint).resolve()), block.trials_hash())
    return Path(output_dir) / "agentic_eval" / key


def evaluate_agentic(
    block: AgenticEvalConfig,
    checkpoint: str | Path | RoleEndpoint,
    directory: str | Path,
    *,
    console: Console | None = None,
    progress_every_s: float = DEFAULT_EVERY_S,
) -> dict[str, Any]:
    """Play (or resume) the block's trials with ``checkpoint`` in ``directory``; the report.

    ``checkpoint`` is a model directory served here (or ``embedded``), or an endpoint
    block of a policy served elsewhere.

    The report holds :func:`rl.estimators.summarize`'s groups for ``block.ks`` plus
    ``curve`` (pass^k for k = 1..samples per environment kind and overall), ``reasons``
    (why trials failed), ``tasks_incomplete``, ``checkpoint``, ``samples``, ``split`` and
    ``trials_dir``. Raises ``TaskSourceError`` / ``TrialsError`` (one line) before any
    trial for a bad tasks file, an empty split or a directory of another block.
    """
    task_set = load_task_set(block.tasks)
    tasks = in_split(task_set.tasks, block.split, block.heldout_fraction)
    if not tasks:
        raise TrialsError(
            f"no task in split {block.split!r} of {len(task_set.tasks)} tasks "
            f"(heldout_fraction {block.heldout_fraction})"
        )
    store = open_store(directory, block)
    trials = plan(task_set, tasks, block.samples)
    play_missing(
        trials,
        checkpoint,
        block,
        store,
        task_set.mcp_servers,
        console=console,
        progress_every_s=progress_every_s,
        label="agentic trials",
    )
    rows = finished(store, trials)
    written = Counter(t.task.id for t, _ in rows)
    complete = [(t, row) for t, row in rows if written[t.task.id] == block.samples]
    outcomes = [
        Outcome(t.task.id, t.task.environment, t.task.difficulty, row["outcome"] == "accepted")
        for t, row in complete
    ]
    report = summarize(outcomes, block.ks)
    report["curve"] = curve(outcomes, block.samples)
    report["reasons"] = dict(
        Counter(row["reason"] for _, row in complete if row["outcome"] != "accepted")
    )
    report["tasks_incomplete"] = sorted({t.id for t in tasks} - {o.task_id for o in outcomes})
    report.update(
        checkpoint=checkpoint.preset if isinstance(checkpoint, RoleEndpoint) else str(checkpoint),
        samples=block.samples,
        ks=block.ks,
        split=block.split,
        trials_dir=str(store.root),
    )
    return report


def curve(outcomes: list[Outcome], samples: int) -> dict[str, dict[str, float | None]]:
    """pass^k for k = 1..``samples``, overall and per environment kind (for the plot)."""
    ks = list(range(1, samples + 1))
    summary = summarize(outcomes, ks)
    groups = {"overall": summary["overall"], **summary["by_environment"]}
    return {name: {str(k): group[f"pass^{k}"] for k in ks} for name, group in groups.items()}


def table(report: dict[str, Any]) -> Table:
    """pass@k and pass^k per group (overall, each environment kind, each difficulty)."""
    ks = report["ks"]
    result = Table(
        title=f"agentic tasks ({report['split']}, {report['samples']} trials each): "
        f"{report['checkpoint']}"
    )
    columns = ["group", "tasks", "trials", *(f"pass@{k}" for k in ks), *(f"pass^{k}" for k in ks)]
    for column in columns:
        result.add_column(column, justify="left" if column == "group" else "right")
    rows = [("overall", report["overall"])]
    rows += [(f"env {k}", v) for k, v in report["by_environment"].items()]
    rows += [(f"difficulty {k}", v) for k, v in report["by_difficulty"].items()]
    for name, group in rows:
        cells = [group.get(f"pass@{k}") for k in ks] + [group.get(f"pass^{k}") for k in ks]
        result.add_row(name, str(group["tasks"]), str(group["trials"]), *(_fmt(c) for c in cells))
    return result


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """A PNG of pass^k against k, one line per environment kind and one overall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axes = plt.subplots(figsize=(6, 4))
    for name, points in report["curve"].items():
        ks = [int(k) for k, v in points.items() if v is not None]
        values = [v for v in points.values() if v is not None]
        overall = name == "overall"
        axes.plot(
            ks,
            values,
            marker="o",
            label=name,
            linewidth=2.5 if overall else 1.5,
            color="black" if overall else None,
        )
    axes.set_xlabel("k (trials that must all succeed)")
    axes.set_ylabel("pass^k")
    axes.set_ylim(-0.02, 1.02)
    axes.set_xticks(range(1, report["samples"] + 1))
    axes.set_title(f"pass^k on {report['split']} tasks: {Path(report['checkpoint']).name}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=120)
    plt.close(figure)
    atomic_write(path, image.getvalue())
    return path


def _fmt(value: object) -> str:
    return "-" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]
