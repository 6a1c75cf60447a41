"""Rejection sampling (expert iteration): the policy plays verifiable tasks ``k`` times
each, and the trials that pass become an SFT dataset.

Only tasks a check decides — an expected final state, or unit tests run in the Docker
sandbox — are sampled: imitating what a judge merely liked would teach its mistakes.
The other tasks of the split are counted as skipped. Trials are played by
:mod:`rl.trials` (the synthesis' roll-out and judge stage, resumable per (task, sample)).

The output directory is laid out like a synthesis run, so ``python -m rl sft`` and TRL's
``SFTTrainer`` read it as they read one::

    OUT/data/accepted/*.parquet   the passing trials: ``messages`` + ``tools`` (+ metadata)
    OUT/data/rejected/*.parquet   the others, with ``reason`` and ``detail``
    OUT/agents.jsonl, OUT/tasks.jsonl   the tasks sampled and their agents
    OUT/config.yaml, OUT/run.json       the resolved config and its hash
    OUT/manifest.json             counts read back from the shards (see :func:`manifest`)

Not here: training on the dataset (``rl.sft``).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Console

from llm.progress import DEFAULT_EVERY_S
from rl.estimators import Outcome, summarize
from rl.sample_config import SampleConfig
from rl.task_sources import TaskSet, in_split, load_task_set, verifiable
from rl.trials import Trial, TrialsError, finished, open_store, plan, play_missing
from synth.manifest import add_usage, code_version
from synth.store import RunStore


def sample(
    config: SampleConfig,
    *,
    console: Console | None = None,
    progress_every_s: float = DEFAULT_EVERY_S,
    max_trials: int | None = None,
) -> dict[str, Any]:
    """Sample (or resume sampling) into ``config.output_dir``; returns the manifest.

    ``max_trials`` bounds the trials this call plays (the next call plays the rest).
    Raises ``TaskSourceError`` / :class:`~rl.trials.TrialsError` (one line) before any
    trial for a bad task source, a directory of another config, no verifiable task or
    an endpoint that does not answer."""
    task_set = load_task_set(config.tasks)
    chosen = in_split(task_set.tasks, config.split, config.heldout_fraction)
    tasks = [t for t in chosen if verifiable(t)]
    if not tasks:
        raise TrialsError(
            f"no task to sample: {len(chosen)} tasks in split {config.split!r}, none with a "
            "verifiable check (checks.expected_state or checks.tests)"
        )
    store = open_store(config.output_dir, config)
    trials = plan(task_set, tasks, config.samples)
    policy = config.policy.endpoint or str(config.policy.checkpoint)
    played = play_missing(
        trials,
        policy,
        config,
        store,
        task_set.mcp_servers,
        console=console,
        progress_every_s=progress_every_s,
        max_trials=max_trials,
        label="samples",
    )
    _save_tasks(store, task_set, tasks)
    result = manifest(config, store, trials, tasks_in_split=len(chosen))
    result["errors_last_run"] = played.errors
    store.save_json("manifest.json", result)
    return result


def _save_tasks(store: RunStore, task_set: TaskSet, tasks: list[Any]) -> None:
    agents = {t.agent_id: task_set.agent(t) for t in tasks}
    store.save_models("agents.jsonl", agents.values())
    store.save_models("tasks.jsonl", tasks)


def manifest(
    config: SampleConfig,
    store: RunStore,
    trials: list[Trial],
    *,
    tasks_in_split: int,
) -> dict[str, Any]:
    """Counts of the directory's trials, read back from its shards: tasks sampled and
    skipped, trials played and passed per task, per environment kind and per difficulty,
    the reasons trials failed, the pass rate, usage per role."""
    rows = finished(store, trials)
    outcomes = [
        Outcome(t.task.id, t.task.environment, t.task.difficulty, row["outcome"] == "accepted")
        for t, row in rows
    ]
    summary = summarize(outcomes, [1])
    usage: dict[str, dict[str, float]] = {}
    per_task: dict[str, Counter[str]] = {}
    for trial, row in rows:
        add_usage(usage, _json(row["usage"]))
        counts = per_task.setdefault(trial.task.id, Counter())
        counts["played"] += 1
        counts["passed"] += row["outcome"] == "accepted"
    overall = summary["overall"]
    sampled = len({t.task.id for t in trials})
    return {
        "name": config.name,
        "config_hash": config.trials_hash(),
        "code_version": code_version(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "policy": config.policy.describe(),
        "endpoints": {
            role: getattr(config.endpoints, role).model_dump(mode="json", exclude_none=True)
            for role in ("user", "tool_simulator", "judge")
        },
        "split": config.split,
        "heldout_fraction": config.heldout_fraction,
        "samples": config.samples,
        "tasks": {
            "in_split": tasks_in_split,
            "sampled": sampled,
            "skipped_unverifiable": tasks_in_split - sampled,
            "solved": sum(1 for c in per_task.values() if c["passed"]),
        },
        "trials": {
            "planned": len(trials),
            "played": overall["trials"],
            "passed": overall["passed"],
            "missing": len(trials) - overall["trials"],
        },
        "pass_rate": overall["passed"] / overall["trials"] if overall["trials"] else None,
        "by_environment": _rates(summary["by_environment"]),
        "by_difficulty": _rates(summary["by_difficulty"]),
        "reasons": dict(Counter(row["reason"] for _, row in rows if row["outcome"] != "accepted")),
        "per_task": {task: dict(counts) for task, counts in per_task.items()},
        "usage": usage,
        "dataset": {"path": "data/accepted", "rows": overall["passed"]},
    }


def _rates(groups: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        key: {
            "tasks": g["tasks"],
            "played": g["trials"],
            "passed": g["passed"],
            "pass_rate": g["passed"] / g["trials"],
        }
        for key, g in groups.items()
    }


def _json(text: str | None) -> Any:
    import json

    return json.loads(text or "{}")
