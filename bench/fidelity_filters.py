"""Does synthesis accept garbage? Planted trajectories decided with the embedded judge.

Planted: for every reject reason of the pre-judge filter (``synth.filters.DEGENERATE``),
trajectories written the way SmolLM2-135M writes when it goes wrong (loops of "Why?",
a ``<tool_response>`` it made up, numbered lists of nothing, the request echoed, an
answer cut at the token limit, nothing at all); and good trajectories — a tool lookup,
its result, and a sound answer in prose, JSON, code or a bare value. Each is decided by
the real judge stage (``synth.judging.decide``) with the embedded model
(SmolLM2-135M-Instruct on CPU, served on loopback) as the judge against the task's
rubric and the ``trajectory`` rubric, exactly as ``python -m synth run`` does.

Figures: the share of degenerate trajectories accepted (target 0) and the share of good
ones still accepted (whatever the tiny judge makes of them, reported as it is), and per
planted kind how each ended (accepted, or the reject reason).

    python bench/fidelity_filters.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from llm import ChatClient
from llm.testing import call
from synth.filters import DEGENERATE
from synth.judging import decide
from synth.schema import Record, TaskSpec, Trajectory
from synth.tasks import task_rubric
from synth.verifiable import TaskDraft


@dataclass(frozen=True)
class Scene:
    """A task and its sound resolution: the user's goal, the lookup, its result, answers."""

    goal: str
    tool: str
    arguments: dict[str, Any]
    result: dict[str, Any]
    criterion: str
    answers: tuple[str, ...]


SCENES = (
    Scene(
        "Where is my order A-17? Has it shipped yet?",
        "get_order",
        {"order_id": "A-17"},
        {"order_id": "A-17", "status": "shipped", "carrier": "DHL", "eta": "2024-06-03"},
        "The agent reports the order's shipping status.",
        (
            "Your order A-17 has shipped with DHL and should arrive on June 3.",
            '{"order_id": "A-17", "status": "shipped", "eta": "2024-06-03"}',
            "Yes, A-17 shipped. DHL expects to deliver it on 2024-06-03.",
        ),
    ),
    Scene(
        "What's the weather in Lyon tomorrow? Do I need an umbrella?",
        "get_forecast",
        {"city": "Lyon", "day": "tomorrow"},
        {"city": "Lyon", "high_c": 18, "rain_probability": 0.7},
        "The agent tells the user whether to take an umbrella, from the forecast.",
        (
            "Tomorrow in Lyon: a high of 18°C and a 70% chance of rain, so take an umbrella.",
            "Yes, bring an umbrella: rain is 70% likely in Lyon tomorrow (high 18°C).",
        ),
    ),
    Scene(
        "How much is left in my checking account?",
        "get_balance",
        {"account": "checking"},
        {"account": "checking", "balance": 150.0, "currency": "EUR"},
        "The agent gives the checking account's balance.",
        ("150.00 EUR", "Your checking account holds 150.00 EUR."),
    ),
    Scene(
        "Write me a Python function that doubles a number, using the style guide tool.",
        "get_style_guide",
        {"language": "python"},
        {"indent": 4, "naming": "snake_case"},
        "The agent writes a Python function that doubles its argument.",
        (
            "Here it is, in snake_case with 4-space indents:\n```python\n"
            "def double_number(value):\n    return value * 2\n```",
        ),
    ),
    Scene(
        "Book the meeting room for Friday at 10.",
        "book_room",
        {"room": "main", "day": "friday", "time": "10:00"},
        {"booking_id": "B-204", "room": "main", "day": "friday", "time": "10:00"},
        "The agent confirms the booking with its id.",
        (
            "Done: the main meeting room is booked for Friday at 10:00 (booking B-204).",
            "Booked! Friday 10:00 in the main room, booking id B-204.",
        ),
    ),
)


def _task(index: int, scene: Scene) -> TaskSpec:
    task_id = f"task-{index:012x}"
    draft = TaskDraft(user_goal=scene.goal, success_criteria=[scene.criterion])
    return TaskSpec(
        id=task_id,
        agent_id="agent-bench",
        domain=scene.tool.split("_")[-1],
        difficulty="single",
        environment="simulated",
        user_goal=scene.goal,
        rubric=task_rubric(task_id, draft),
        expected_tools=[scene.tool],
    )


def _trajectory(task: TaskSpec, scene: Scene, replies: list[str], cut: bool = False) -> Trajectory:
    lookup = call(scene.tool, scene.arguments, "call_0")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant. Use your tools."},
        {"role": "user", "content": scene.goal},
        {"role": "assistant", "content": None, "tool_calls": [lookup]},
        {"role": "tool", "tool_call_id": "call_0", "content": json.dumps(scene.result)},
    ]
    messages += [{"role": "assistant", "content": r} for r in replies]
    return Trajectory(
        task_id=task.id,
        agent_id=task.agent_id,
        messages=messages,
        tools=[],
        stop_reason="user_satisfied",
        length_stops=[len(messages) - 1] if cut else [],
    )


def _degenerate(reason: str, scene: Scene, rng: random.Random) -> tuple[list[str], bool]:
    """Replies in SmolLM2's ways of going wrong for ``reason``, and whether the last was cut."""
    word = rng.choice(["Why?", "Why", "Yes.", "No!", "Okay."])
    fact = next(iter(scene.result.values()))
    if reason == "empty_answer":
        return [rng.choice(["", " ", "\n\n", "\n \n"])], False
    if reason == "fake_tool_output":
        fake = json.dumps({**scene.result, "note": "ok"})
        return [
            rng.choice(
                [
                    f"<tool_response>\n{fake}\n</tool_response>\nThe answer is {fact}.",
                    f"Let me check.\n<tool_result>{fake}</tool_result>\nIt is {fact}.",
                    f"It is {fact}.<|im_end|>\n<|im_start|>user\nThanks!<|im_end|>",
                ]
            )
        ], False
    if reason == "degenerate_loop":
        return [
            rng.choice(
                [
                    f"The answer is {fact}. " + f"{word} " * rng.randint(20, 60),
                    f"I'm sorry, I can't help with {fact}. " * rng.randint(4, 9),
                    f"1. {fact}\n" + f"2. The user wants to know {fact}.\n" * rng.randint(5, 9),
                ]
            )
        ], False
    if reason == "truncated_answer":
        words = scene.answers[0].split()
        return [" ".join(words[: rng.randint(3, max(3, len(words) - 3))])], True
    if reason == "echoed_prompt":
        return [rng.choice([scene.goal, f"User: {scene.goal}", scene.goal.upper()])], False
    if reason == "no_language":
        n = rng.randint(6, 14)
        return [
            rng.choice(
                [
                    " ".join(f"{i}." for i in range(1, n)),
                    "1. 1. " + " ".join(f"{i}." for i in range(2, n)),
                    "\n".join(f"### {i}" for i in range(1, n)),
                    "- * - * - * " * 2 + str(n),
                ]
            )
        ], False
    raise ValueError(f"no planted form for {reason}")


def planted(per_kind: int, seed: int = 0) -> list[tuple[str, TaskSpec, Trajectory]]:
    """``(kind, task, trajectory)``: ``per_kind`` of every degenerate reason and of ``good``."""
    rng = random.Random(seed)
    items = []
    for kind in [*DEGENERATE, "good"]:
        for n in range(per_kind):
            scene = SCENES[n % len(SCENES)]
            task = _task(len(items), scene)
            if kind == "good":
                replies, cut = [scene.answers[n // len(SCENES) % len(scene.answers)]], False
            else:
                replies, cut = _degenerate(kind, scene, rng)
            items.append((kind, task, _trajectory(task, scene, replies, cut)))
    return items


async def _decide_all(
    items: list[tuple[str, TaskSpec, Trajectory]], client: ChatClient, max_tokens: int
) -> list[Record]:
    return list(
        await asyncio.gather(
            *(
                decide(
                    task,
                    trajectory,
                    client,
                    rubrics=["trajectory"],
                    max_tokens=max_tokens,
                    reasoning_chars=300,
                )
                for _, task, trajectory in items
            )
        )
    )


def measure(quick: bool) -> dict[str, Any]:
    """Decide the planted set with the embedded judge; the figures as one dict."""
    from llm.embedded import EmbeddedServer

    per_kind = 3 if quick else 20
    items = planted(per_kind)
    started = time.perf_counter()
    with EmbeddedServer(max_batch=8) as server:
        loaded = time.perf_counter()

        async def run() -> list[Record]:
            async with ChatClient(server.endpoint()) as client:
                return await _decide_all(items, client, max_tokens=400)

        records = asyncio.run(run())
    done = time.perf_counter()
    rows: dict[str, Counter[str]] = {}
    for (kind, _, _), record in zip(items, records, strict=True):
        rows.setdefault(kind, Counter())[record.reason or "accepted"] += 1
    degenerate = [r for (kind, _, _), r in zip(items, records, strict=True) if kind != "good"]
    good = [r for (kind, _, _), r in zip(items, records, strict=True) if kind == "good"]
    return {
        "degenerate_trajectories_accepted": _share(degenerate),
        "good_trajectories_accepted": _share(good),
        "per_kind": per_kind,
        "judge": "embedded SmolLM2-135M-Instruct, max_tokens 400, reasoning_chars 300",
        "rows": {kind: dict(outcomes) for kind, outcomes in rows.items()},
        "judge_errors": [r.detail[:200] for r in records if r.reason == "judge_error"],
        "seconds_to_load": round(loaded - started, 1),
        "seconds_to_decide": round(done - loaded, 1),
    }


def _share(records: list[Record]) -> float:
    return sum(r.outcome == "accepted" for r in records) / len(records) if records else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 per kind instead of 20")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    args = parser.parse_args()
    figures = measure(args.quick)
    outcomes = sorted({o for row in figures["rows"].values() for o in row})
    table = Table(title=f"planted trajectories decided with {figures['judge']}")
    table.add_column("planted", justify="left")
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    for kind, row in figures["rows"].items():
        table.add_row(kind, *(str(row.get(o, 0)) for o in outcomes))
    console = Console(width=160)
    console.print(table)
    console.print(
        f"degenerate accepted: {figures['degenerate_trajectories_accepted']:.2f} · "
        f"good accepted: {figures['good_trajectories_accepted']:.2f} · "
        f"decided in {figures['seconds_to_decide']} s"
    )
    for detail in figures["judge_errors"]:
        console.print(f"judge_error: {detail}", markup=False)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
