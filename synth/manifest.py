"""The manifest (counts that reconcile, models, usage) and the RL prompt export.

Counts are read back from the shards, not from in-memory counters, so a resumed run's
manifest is exact: every task is in exactly one shard, accepted or rejected, and
``tasks == accepted + rejected`` is checked and recorded as ``reconciled``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter, defaultdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from llm import Endpoint
from synth.diversity import Embed, measure
from synth.schema import (
    AgentSpec,
    BlueprintCounts,
    Decontaminated,
    Manifest,
    ManifestCounts,
    ProblemCounts,
    RepositoryCounts,
    RLPromptRow,
    TaskSpec,
)
from synth.store import RunStore, atomic_write


def code_version() -> str:
    """The git commit of the code when run from a checkout, else the package version."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=True,
        ).stdout.strip()
        return f"git:{sha}"
    except (OSError, subprocess.SubprocessError):
        return f"summit=={version('summit')}"


def add_usage(total: dict[str, dict[str, float]], more: dict[str, dict[str, float]]) -> None:
    for role, numbers in more.items():
        slot = total.setdefault(role, {})
        for key, value in numbers.items():
            slot[key] = slot.get(key, 0.0) + float(value)


def build_manifest(
    store: RunStore,
    *,
    name: str,
    config_hash: str,
    endpoints: dict[str, Endpoint],
    stages: dict[str, Any],
    tools: int,
    agents: list[AgentSpec],
    tasks: list[TaskSpec],
    embed: Embed | None = None,
) -> Manifest:
    """The manifest of the run in ``store``; ``embed`` embeds texts for the diversity
    figures (default: MiniLM, :func:`tool_registry.dedup.default_embed`)."""
    columns = ["id", "outcome", "reason", "environment", "domain", "usage", "messages"]
    rows = list(store.rows(columns))
    outcomes = Counter(r["outcome"] for r in rows)
    by_env: dict[str, Counter[str]] = defaultdict(Counter)
    by_domain: dict[str, Counter[str]] = defaultdict(Counter)
    usage: dict[str, dict[str, float]] = {}
    for stage in ("agents", "tasks"):
        add_usage(usage, stages.get(stage, {}).get("usage", {}))
    for row in rows:
        by_env[row["environment"]][row["outcome"]] += 1
        by_domain[row["domain"]][row["outcome"]] += 1
        add_usage(usage, json.loads(row["usage"] or "{}"))
    ids = [r["id"] for r in rows]
    return Manifest(
        name=name,
        config_hash=config_hash,
        code_version=code_version(),
        written_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        models={role: {"endpoint": e.name, "model": e.model} for role, e in endpoints.items()},
        counts=ManifestCounts(
            tools=tools,
            agents=len(agents),
            agents_with_templated_prompt=stages.get("agents", {}).get("fallback", 0),
            task_generation_failed=len(stages.get("tasks", {}).get("failures", [])),
            tasks_degenerate=sum(
                ": DegenerateTask: " in line for line in stages.get("tasks", {}).get("failures", [])
            ),
            tasks=len(tasks),
            trajectories=len(rows),
            accepted=outcomes["accepted"],
            rejected=outcomes["rejected"],
        ),
        rejected_by_reason=dict(
            Counter(r["reason"] for r in rows if r["outcome"] == "rejected").most_common()
        ),
        by_environment={k: dict(v) for k, v in sorted(by_env.items())},
        tasks_by_source=tasks_by_source(tasks),
        blueprints=BlueprintCounts.model_validate(stages.get("tasks", {}).get("blueprints") or {}),
        problems=ProblemCounts.model_validate(stages.get("problems", {}).get("counts") or {}),
        repositories={
            name: RepositoryCounts.model_validate(entry)
            for name, entry in (stages.get("mutations", {}).get("projects") or {}).items()
        },
        decontaminated=[
            Decontaminated(**entry) for entry in stages.get("tasks", {}).get("decontaminated") or []
        ],
        eval_set_tasks=sum(t.eval_set for t in tasks),
        diversity=measure(tasks, agents, {r["id"]: r["messages"] for r in rows}, embed),
        by_domain={k: dict(v) for k, v in sorted(by_domain.items())},
        usage=usage,
        duplicates=len(ids) - len(set(ids)),
        reconciled=len(set(ids)) == len(ids) == len(tasks) and {t.id for t in tasks} == set(ids),
    )


def tasks_by_source(tasks: list[TaskSpec]) -> dict[str, dict[str, int]]:
    """Per environment kind: tasks per source (blueprint, template, generated, ...)."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for task in tasks:
        out[task.environment][task.source] += 1
    return {kind: dict(sorted(c.items())) for kind, c in sorted(out.items())}


FAILURES = frozenset({"worker_error", "rollout_error", "judge_error"})
"""Reject reasons that say a task could not be done, not that it was done and found wanting."""


def shortfall(manifest: Manifest) -> str | None:
    """Why a finished job did not do what it was asked, in one line; None when it did.

    It did when the manifest reconciles and at least one task came to a real outcome
    (accepted, or rejected on its merits): a job whose every task failed, or that had no
    task at all, did nothing, whatever it wrote.
    """
    counts = manifest.counts
    if not counts.tasks:
        return (
            f"no task was generated for the {counts.agents} agents "
            f"({counts.task_generation_failed} task-generation failures in stages.json)"
        )
    if not manifest.reconciled:
        return (
            f"the dataset does not reconcile: {counts.trajectories} records for "
            f"{counts.tasks} tasks, {manifest.duplicates} duplicate ids"
        )
    failed = {r: n for r, n in manifest.rejected_by_reason.items() if r in FAILURES}
    if sum(failed.values()) == counts.trajectories:
        why = ", ".join(f"{reason}: {n}" for reason, n in failed.items())
        return f"every one of the {counts.tasks} tasks failed ({why})"
    return None


def export_rl_prompts(store: RunStore, agents: list[AgentSpec], tasks: list[TaskSpec]) -> Path:
    """``rl_prompts.parquet``: one row per task — the prompt messages, the task, its tools."""
    by_id = {a.id: a for a in agents}
    rows = [RLPromptRow.of(by_id[task.agent_id], task).model_dump() for task in tasks]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    path = store.root / "rl_prompts.parquet"
    atomic_write(path, sink.getvalue().to_pybytes())
    return path
