"""Tasks with ground truth: procedural tasks for the executable tool sets and coding tasks.

Each generator is seeded and returns a :class:`TaskDraft` whose expected final state (or
tests) is computed, not guessed by a model — these are the tasks whose acceptance the
judge cannot overrule. Difficulty grows from one call, to calls that depend on earlier
results, to tasks the agent can only finish after asking the user for a hidden fact.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from synth.schema import Checks, Difficulty, TaskSource


class TaskDraft(BaseModel):
    """A task before it is bound to an agent (what the generator model also answers)."""

    user_goal: str = Field(min_length=5, max_length=4000)
    """Bounded generously: a real problem set's prompt is the goal (HumanEval's longest
    is about 1,400 characters); what the generator writes has its own bound."""
    hidden_info: dict[str, str] = Field(default_factory=dict)
    success_criteria: list[str] = Field(min_length=1, max_length=4)
    expected_tools: list[str] = Field(default_factory=list, max_length=8)
    initial_state: dict[str, Any] = Field(default_factory=dict)
    checks: Checks = Field(default_factory=Checks)
    user_persona: str | None = None
    """Who the user is, where the draft says (a blueprint); else one is drawn."""
    source: TaskSource = "template"
    origin: str | None = None
    eval_set: bool = False


def _bank(rng: random.Random, difficulty: Difficulty) -> TaskDraft:
    names = rng.sample(["checking-1", "savings-2", "rent-3", "travel-4", "joint-5"], 2)
    balance = float(rng.randrange(400, 2000, 50))
    amount = float(rng.randrange(50, 300, 10))
    state = {
        "accounts": {
            names[0]: {"balance": balance, "daily_limit": 1000.0, "sent_today": 0.0},
            names[1]: {"balance": 100.0, "daily_limit": 1000.0, "sent_today": 0.0},
        },
        "transfers": [],
    }
    if difficulty == "multi_step":
        amount = round(balance / 4, 2)
        goal = f"Check the balance of {names[0]} and move a quarter of it to {names[1]}."
        tools = ["get_balance", "transfer"]
    elif difficulty == "clarify":
        goal = f"Please pay {amount:.2f} from my {names[0]} account to my landlord."
        tools = ["transfer"]
    else:
        goal = f"Transfer {amount:.2f} from {names[0]} to {names[1]}."
        tools = ["transfer"]
    expected = {
        "accounts": {
            names[0]: {"balance": round(balance - amount, 2)},
            names[1]: {"balance": round(100.0 + amount, 2)},
        }
    }
    return TaskDraft(
        user_goal=goal,
        hidden_info={"landlord's account": names[1]} if difficulty == "clarify" else {},
        success_criteria=[f"{amount:.2f} moved from {names[0]} to {names[1]}, exactly once"],
        expected_tools=tools,
        initial_state=state,
        checks=Checks(expected_state=expected),
    )


def _calendar(rng: random.Random, difficulty: Difficulty) -> TaskDraft:
    day = f"2026-0{rng.randint(3, 9)}-1{rng.randint(0, 9)}"
    existing = {"title": "Team sync", "start": f"{day}T09:00", "end": f"{day}T10:00"}
    state = {"events": {"ev-1": {**existing, "attendees": []}}, "next_id": 2}
    hour = rng.randint(11, 16)
    start, end = f"{day}T{hour}:00", f"{day}T{hour}:30"
    title = rng.choice(["Budget review", "Dentist", "Interview", "1:1 with Sam"])
    if difficulty == "multi_step":
        goal = f"Find my Team sync on {day} and move it to {hour}:00-{hour}:30 the same day."
        expected: dict[str, Any] = {"events": {"ev-1": {"start": start, "end": end}}}
        tools, hidden = ["list_events", "reschedule_event"], {}
    else:
        goal = (
            f"Book '{title}' on {day} from {hour}:00 to {hour}:30."
            if difficulty == "single"
            else f"Put '{title}' in my calendar on {day}, please."
        )
        expected = {"events": {"ev-2": {"title": title, "start": start, "end": end}}}
        tools = ["create_event"]
        hidden = {"time": f"{hour}:00 to {hour}:30"} if difficulty == "clarify" else {}
    return TaskDraft(
        user_goal=goal,
        hidden_info=hidden,
        success_criteria=[f"the calendar holds the event at {start}-{end}"],
        expected_tools=tools,
        initial_state=state,
        checks=Checks(expected_state=expected),
    )


def _files(rng: random.Random, difficulty: Difficulty) -> TaskDraft:
    note = rng.choice(["buy milk", "call the bank", "renew passport", "book flights"])
    state = {"files": {"/drafts/report.txt": "Q3 numbers: up 4%"}}
    if difficulty == "multi_step":
        goal = "Read /drafts/report.txt and save a copy of it as /final/report.txt."
        expected = {"files": {"/final/report.txt": "Q3 numbers: up 4%"}}
        tools, hidden = ["read_file", "write_file"], {}
    else:
        goal = (
            f"Create /notes/todo.txt containing exactly: {note}"
            if difficulty == "single"
            else "Write my to-do item into /notes/todo.txt for me."
        )
        expected = {"files": {"/notes/todo.txt": note}}
        tools = ["write_file"]
        hidden = {"to-do item": note} if difficulty == "clarify" else {}
    return TaskDraft(
        user_goal=goal,
        hidden_info=hidden,
        success_criteria=["the file holds exactly the requested content"],
        expected_tools=tools,
        initial_state=state,
        checks=Checks(expected_state=expected),
    )


TOOLSET_TASKS: dict[str, Callable[[random.Random, Difficulty], TaskDraft]] = {
    "bank": _bank,
    "calendar": _calendar,
    "files": _files,
}

# (entry point, what to write, tests): small problems whose tests decide acceptance.
CODE_PROBLEMS: list[tuple[str, str, str]] = [
    (
        "is_palindrome",
        "is_palindrome(text) that says whether a string reads the same backwards, "
        "ignoring case and non-letters",
        "assert is_palindrome('A man, a plan, a canal: Panama')\n"
        "assert not is_palindrome('summit')\nassert is_palindrome('')",
    ),
    (
        "fizzbuzz",
        "fizzbuzz(n) returning the list of strings for 1..n ('Fizz', 'Buzz', 'FizzBuzz' "
        "or the number)",
        "assert fizzbuzz(5) == ['1', '2', 'Fizz', '4', 'Buzz']\n"
        "assert fizzbuzz(15)[-1] == 'FizzBuzz'\nassert fizzbuzz(0) == []",
    ),
    (
        "word_counts",
        "word_counts(text) returning a dict of lower-cased word counts",
        "assert word_counts('a b A') == {'a': 2, 'b': 1}\nassert word_counts('') == {}",
    ),
    (
        "flatten",
        "flatten(items) that flattens arbitrarily nested lists",
        "assert flatten([1, [2, [3, [4]]], 5]) == [1, 2, 3, 4, 5]\nassert flatten([]) == []",
    ),
    (
        "rle",
        "rle(text) run-length encoding 'aaab' as 'a3b1'",
        "assert rle('aaab') == 'a3b1'\nassert rle('') == ''\nassert rle('abc') == 'a1b1c1'",
    ),
    (
        "second_largest",
        "second_largest(numbers) returning the second largest distinct number, or None",
        "assert second_largest([3, 1, 3, 2]) == 2\nassert second_largest([5]) is None",
    ),
]


def code_task(rng: random.Random, difficulty: Difficulty) -> TaskDraft:
    entry, what, tests = rng.choice(CODE_PROBLEMS)
    goal = f"Write a Python function {what}. Test it, then give me the final code."
    hidden = {}
    if difficulty == "clarify":
        goal = f"I need a small Python helper: {what.split('(')[0]}. Can you write it?"
        hidden = {"exact behaviour": what}
    return TaskDraft(
        user_goal=goal,
        hidden_info=hidden,
        success_criteria=[f"the final code defines {entry} and it passes the tests"],
        expected_tools=["run_python"],
        checks=Checks(tests=tests, entry_point=entry),
    )
