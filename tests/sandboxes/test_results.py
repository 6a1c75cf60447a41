"""Tool results that JSON cannot hold reach the agent as text, never as a serialisation error."""

from __future__ import annotations

import datetime
import decimal
import enum
import fractions
import json
from typing import Any

import pytest

from llm import FunctionCall, ToolCall
from sandboxes.base import jsonable, result_text
from sandboxes.executable import ExecutableEnvironment, ToolSet, tool


class Colour(enum.Enum):
    RED = "red"


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (decimal.Decimal("19.90"), 19.9),
        (decimal.Decimal("0.1000000000000000000001"), "0.1000000000000000000001"),
        (decimal.Decimal("NaN"), "NaN"),
        (fractions.Fraction(1, 2), 0.5),
        (fractions.Fraction(1, 3), "1/3"),
        (1 + 2j, "(1+2j)"),
        (datetime.datetime(2026, 3, 1, 9, 30), "2026-03-01T09:30:00"),
        (datetime.date(2026, 3, 1), "2026-03-01"),
        ({"b", "a"}, ["a", "b"]),
        (frozenset({2, 1}), [1, 2]),
        (b"caf\xc3\xa9", "café"),
        (b"\xff\x00", "base64:/wA="),
        (Colour.RED, "red"),
        (Opaque(), "<opaque thing>"),
        ({(1, 2): "pair", 3: "three"}, {"[1, 2]": "pair", "3": "three"}),
    ],
)
def test_values_json_cannot_hold_become_their_nearest_json(value: Any, expected: Any) -> None:
    assert jsonable(value) == expected


def test_nested_odd_values_and_cycles_render_as_json_text() -> None:
    loop: list[Any] = ["start"]
    loop.append(loop)
    value = {"when": [datetime.date(2026, 1, 2)], "tags": {"x"}, "loop": loop}
    assert json.loads(result_text(value)) == {
        "when": ["2026-01-02"],
        "tags": ["x"],
        "loop": ["start", "<cycle>"],
    }
    assert result_text("plain text") == "plain text"


def test_numbers_of_other_libraries_become_json_numbers() -> None:
    np = pytest.importorskip("numpy")
    value = {"n": np.int64(3), "x": np.float32(0.5), "ok": np.bool_(True), "a": np.arange(3)}
    assert json.loads(result_text(value)) == {"n": 3, "x": 0.5, "ok": True, "a": [0, 1, 2]}


class Ledger(ToolSet):
    @classmethod
    def default_state(cls) -> dict[str, Any]:
        return {"entries": []}

    @tool("write")
    def book(self, amount: str) -> dict[str, Any]:
        """Book an amount; answers with what a real ledger library returns."""
        entry = {"amount": decimal.Decimal(amount), "at": datetime.date(2026, 1, 2)}
        self.data["entries"].append(entry)
        return {"booked": entry, "ids": {7}, "share": fractions.Fraction(1, 3)}


async def test_an_executable_tool_returning_odd_values_answers_and_keeps_its_state() -> None:
    env = ExecutableEnvironment(Ledger)
    await env.reset()
    call = ToolCall(id="c", function=FunctionCall(name="book", arguments='{"amount": "2.50"}'))
    reply = await env.call(call)
    assert json.loads(reply.content) == {
        "booked": {"amount": 2.5, "at": "2026-01-02"},
        "ids": [7],
        "share": "1/3",
    }
    assert await env.state() == {"entries": [{"amount": 2.5, "at": "2026-01-02"}]}
    assert env.records[0].state_diff == {"/entries": [[], [{"amount": 2.5, "at": "2026-01-02"}]]}
