"""How diverse a run's tasks and trajectories are, per environment kind and per source.

For each group (an environment kind, a task source: blueprint, template, generated,
real set, generated problem, mutation): the **near-duplicate rate** of task goals and of
trajectories (the share of items whose sentence embedding — MiniLM, as the tool
repository's dedup uses — is at least ``threshold`` cosine-similar to an earlier item of
the group), the **distinct tool-call patterns per 100 tasks** (the ordered tool names a
task expects, or its ground-truth calls), the **tool coverage** (tools the tasks expect
over the tools their agents were given), and lengths (goal words, trajectory messages and
tool calls). The manifest and the report carry them; ``bench/tasks.py`` compares
blueprint tasks with template tasks by them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from statistics import mean
from typing import Any

import numpy as np

from synth.schema import NEAR_DUP_THRESHOLD as THRESHOLD
from synth.schema import AgentSpec, Diversity, DiversityReport, TaskSpec

Embed = Callable[[list[str]], np.ndarray]
MAX_ITEMS = 2000
"""Items embedded per group at most (the first ones, in order): bounds the cost of a
very large run's manifest; the rates are then those of that sample."""


def near_dup_rate(texts: Sequence[str], embed: Embed, threshold: float = THRESHOLD) -> float:
    """The share of ``texts`` at least ``threshold`` cosine-similar to an earlier one."""
    texts = list(texts)[:MAX_ITEMS]
    if len(texts) < 2:
        return 0.0
    raw = np.asarray(embed(texts), dtype=np.float64)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    vectors = raw / np.where(norms == 0, 1.0, norms)
    similarity = vectors @ vectors.T
    earlier = np.tril(similarity, k=-1)  # row i: similarity to items 0..i-1
    duplicates = (earlier >= threshold).any(axis=1)
    return float(duplicates.sum() / len(texts))


def call_pattern(task: TaskSpec) -> tuple[str, ...]:
    """The ordered tool names a task's answer uses: its ground-truth calls, else the
    tools it expects."""
    if task.checks.actions:
        return tuple(str(a.get("tool", "")) for a in task.checks.actions)
    return tuple(task.expected_tools)


def trajectory_text(messages: Sequence[dict[str, Any]]) -> str:
    """A trajectory as one text for embedding: its turns and the tools it called."""
    parts = []
    for message in messages:
        calls = message.get("tool_calls") or []
        names = [c["function"]["name"] for c in calls if isinstance(c, dict)]
        text = str(message.get("content") or "")
        parts.append(f"{message.get('role')}: {text} {' '.join(names)}".strip())
    return "\n".join(parts)


def measure(
    tasks: Sequence[TaskSpec],
    agents: Sequence[AgentSpec],
    trajectories: dict[str, list[dict[str, Any]]] | None = None,
    embed: Embed | None = None,
    threshold: float = THRESHOLD,
) -> DiversityReport:
    """Diversity per environment kind and per source. ``trajectories`` maps a task id
    to its trajectory's messages (tasks not played yet are counted without one)."""
    if embed is None:
        from tool_registry.dedup import default_embed

        embed = default_embed
    tools_of = {a.id: {t.name for t in a.tools} for a in agents}
    played = trajectories or {}
    by_env: dict[str, list[TaskSpec]] = defaultdict(list)
    by_source: dict[str, list[TaskSpec]] = defaultdict(list)
    for task in tasks:
        by_env[task.environment].append(task)
        by_source[task.source].append(task)

    def group(members: list[TaskSpec]) -> Diversity:
        offered = set().union(*(tools_of.get(t.agent_id, set()) for t in members))
        expected = {name for t in members for name in call_pattern(t)}
        runs = [played[t.id] for t in members if played.get(t.id)]
        return Diversity(
            tasks=len(members),
            near_dup_rate_tasks=near_dup_rate([t.user_goal for t in members], embed, threshold),
            call_patterns_per_100=100 * len({call_pattern(t) for t in members}) / len(members),
            tool_coverage=len(expected & offered) / len(offered) if offered else 0.0,
            goal_words_mean=mean(len(t.user_goal.split()) for t in members),
            trajectories=len(runs),
            near_dup_rate_trajectories=(
                near_dup_rate([trajectory_text(r) for r in runs], embed, threshold)
                if runs
                else None
            ),
            trajectory_messages_mean=mean(len(r) for r in runs) if runs else None,
            trajectory_tool_calls_mean=(
                mean(sum(len(m.get("tool_calls") or []) for m in r) for r in runs) if runs else None
            ),
        )

    return DiversityReport(
        threshold=threshold,
        by_environment={k: group(v) for k, v in sorted(by_env.items())},
        by_source={k: group(v) for k, v in sorted(by_source.items())},
    )
