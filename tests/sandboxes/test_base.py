"""The Environment's argument check: the JSON Schema draft ToolSpec accepts, errors as messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm import FunctionCall, ToolCall
from sandboxes.base import Environment
from tool_registry import ToolSpec


class Echo(Environment):
    """One tool, ``echo``, with the given parameters; it answers with its arguments."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        super().__init__([ToolSpec(name="echo", parameters=parameters)])

    async def _reset(self, task: dict[str, Any]) -> str:
        return "ready"

    async def _invoke(self, name: str, arguments: dict[str, Any]) -> str:
        return json.dumps(arguments)

    async def _snapshot(self) -> dict[str, Any]:
        return {}


def echo(arguments: dict[str, Any]) -> ToolCall:
    return ToolCall(id="c1", function=FunctionCall(name="echo", arguments=json.dumps(arguments)))


POINT = {
    "type": "object",
    "properties": {"point": {"type": "array", "items": [{"type": "number"}, {"type": "number"}]}},
}


async def test_draft7_tuple_items_are_checked_position_by_position() -> None:
    env = Echo(POINT)
    good = await env.call(echo({"point": [1.5, 2]}))
    bad = await env.call(echo({"point": [1.5, "north"]}))
    assert json.loads(good.content) == {"point": [1.5, 2]}
    assert (
        bad.content == "error: invalid arguments for echo: point/1: 'north' is not of type 'number'"
    )


@pytest.mark.parametrize(
    "broken",
    [
        {"type": "string", "pattern": "(unclosed"},  # not a regular expression
        {"type": "string", "format": "date", "pattern": "[z-a]"},  # a reversed range
    ],
)
async def test_a_schema_that_cannot_be_applied_is_a_tool_error_not_an_exception(
    broken: dict[str, Any],
) -> None:
    env = Echo({"type": "object", "properties": {"a": broken}})
    reply = await env.call(echo({"a": "x"}))
    assert reply.content.startswith("error: cannot check arguments for echo: ")
    assert env.records[-1].error


def test_a_schema_with_an_unresolvable_reference_is_refused_when_the_spec_is_built() -> None:
    with pytest.raises(ValueError, match="does not point to a schema"):
        Echo({"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}})
