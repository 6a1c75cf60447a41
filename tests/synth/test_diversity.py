"""Diversity figures (``synth.diversity``) on a planted set whose answers are known."""

from __future__ import annotations

import pytest

from rubrics import Criterion, Rubric
from synth.diversity import measure, near_dup_rate
from synth.schema import AgentSpec, Checks, TaskSpec
from tool_registry import ToolSpec

RUBRIC = Rubric(
    id="task.x", kind="task", description="x", criteria=[Criterion(id="c", description="d")]
)
GOALS = [
    "Move 40 euros from checking to savings before Friday.",
    "Book a table for four at an Italian place tonight.",
    "Cancel my dentist appointment on the third of March.",
    "Rename the quarterly report file to final_report.txt.",
    "Find the cheapest train from Lyon to Paris on Sunday.",
    "Add milk, eggs and flour to my shopping list.",
]
PLANTED = [  # near duplicates of the first two goals
    "Move 40 euros from checking to savings before Friday please.",
    "Book a table for four at an Italian place tonight!",
]


def tool(name: str) -> ToolSpec:
    return ToolSpec(name=name, description=f"The {name} tool.", parameters={"type": "object"})


AGENT = AgentSpec(
    id="agent-1",
    name="helper",
    domain="misc",
    environment="executable",
    system_prompt="You help.",
    persona="calm",
    tools=[tool(n) for n in ("transfer", "get_balance", "book", "cancel")],
)


def task(index: int, goal: str, source: str, calls: list[str]) -> TaskSpec:
    return TaskSpec(
        id=f"task-{index}",
        agent_id="agent-1",
        domain="misc",
        difficulty="single",
        environment="executable",
        user_goal=goal,
        rubric=RUBRIC,
        expected_tools=calls,
        checks=Checks(actions=[{"tool": c, "arguments": {}} for c in calls])
        if source == "blueprint"
        else Checks(),
        source=source,  # type: ignore[arg-type]
    )


def bag_of_words(texts: list[str]):
    """A deterministic embedding: counts of hashed words (near duplicates stay close)."""
    import numpy as np

    out = np.zeros((len(texts), 64))
    for row, text in enumerate(texts):
        for word in text.lower().replace("!", " ").replace(".", " ").split():
            out[row, sum(map(ord, word)) % 64] += 1
    return out


def test_near_duplicates_are_counted_once_each() -> None:
    texts = GOALS + PLANTED
    assert near_dup_rate(texts, bag_of_words) == pytest.approx(2 / 8)
    assert near_dup_rate(GOALS, bag_of_words) == 0.0
    assert near_dup_rate(GOALS[:1], bag_of_words) == 0.0


@pytest.mark.integration
def test_minilm_finds_the_planted_near_duplicates() -> None:
    from tool_registry.dedup import default_embed

    assert near_dup_rate(GOALS + PLANTED, default_embed) == pytest.approx(2 / 8)


def test_figures_per_kind_and_source_on_a_planted_set() -> None:
    tasks = [
        task(0, GOALS[0], "blueprint", ["get_balance", "transfer"]),
        task(1, GOALS[1], "blueprint", ["book"]),
        task(2, GOALS[2], "blueprint", ["cancel"]),
        task(3, PLANTED[0], "template", ["transfer"]),
        task(4, GOALS[0], "template", ["transfer"]),
    ]
    played = {
        "task-0": [
            {"role": "user", "content": GOALS[0]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "transfer"}}],
            },
            {"role": "tool", "content": "ok"},
            {"role": "assistant", "content": "Done."},
        ]
    }
    report = measure(tasks, [AGENT], played, embed=bag_of_words)
    blueprint, template = report.by_source["blueprint"], report.by_source["template"]
    assert blueprint.tasks == 3 and blueprint.near_dup_rate_tasks == 0.0
    assert blueprint.call_patterns_per_100 == 100.0  # three tasks, three patterns
    assert blueprint.tool_coverage == 1.0  # all four offered tools are expected somewhere
    assert template.near_dup_rate_tasks == 0.5 and template.call_patterns_per_100 == 50.0
    assert template.tool_coverage == 0.25 and template.trajectories == 0
    assert blueprint.trajectories == 1 and blueprint.trajectory_messages_mean == 4
    assert blueprint.trajectory_tool_calls_mean == 1
    whole = report.by_environment["executable"]
    assert whole.tasks == 5 and whole.near_dup_rate_tasks == pytest.approx(2 / 5)
    assert whole.goal_words_mean == pytest.approx(sum(len(t.user_goal.split()) for t in tasks) / 5)
