"""Text tool-call parsing on hand-written model outputs, including hostile ones."""

from __future__ import annotations

import json

from llm.toolcalls import parse_tool_calls, render_hermes


def test_several_hermes_calls_keep_order_and_surrounding_text() -> None:
    text = (
        'First.<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call> then '
        '<tool_call>{"name": "b", "arguments": "{\\"y\\": 2}"}</tool_call>'
    )
    parsed = parse_tool_calls(text)
    assert [c.function.name for c in parsed.calls] == ["a", "b"]
    assert json.loads(parsed.calls[1].function.arguments) == {"y": 2}
    assert parsed.content == "First. then"
    assert len({c.id for c in parsed.calls}) == 2


def test_unclosed_and_nameless_hermes_calls_are_errors() -> None:
    parsed = parse_tool_calls('<tool_call>{"arguments": {}}</tool_call><tool_call>{"name": "x"')
    assert parsed.calls == []
    assert [e.error for e in parsed.errors] == ["missing string 'name'", "unclosed <tool_call>"]


def test_non_object_arguments_are_an_error() -> None:
    parsed = parse_tool_calls('<tool_call>{"name": "f", "arguments": [1, 2]}</tool_call>')
    assert parsed.calls == [] and parsed.errors[0].error == "arguments are not a JSON object"


def test_k2_section_with_a_broken_call_keeps_the_good_one() -> None:
    text = (
        "Checking.<|tool_calls_section_begin|>"
        "<|tool_call_begin|>functions.search:0"
        '<|tool_call_argument_begin|>{"q": "k2"}<|tool_call_end|>'
        "<|tool_call_begin|>functions.bad:1<|tool_call_argument_begin|>{nope<|tool_call_end|>"
        "<|tool_calls_section_end|>"
    )
    parsed = parse_tool_calls(text)
    assert [c.function.name for c in parsed.calls] == ["search"]
    assert parsed.errors[0].format == "k2" and "invalid JSON" in parsed.errors[0].error
    assert parsed.content == "Checking."


def test_unclosed_k2_section_is_reported() -> None:
    text = (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0"
        "<|tool_call_argument_begin|>{}<|tool_call_end|>"
    )
    parsed = parse_tool_calls(text)
    assert [c.function.name for c in parsed.calls] == ["f"]
    assert parsed.errors[0].error == "unclosed tool-call section"


def test_plain_text_passes_through_untouched() -> None:
    parsed = parse_tool_calls("No tools here, just <b>html</b>.")
    assert parsed.content == "No tools here, just <b>html</b>." and not parsed.calls


def test_render_then_parse_round_trips() -> None:
    original = parse_tool_calls(
        '<tool_call>{"name": "f", "arguments": {"a": [1, {"b": null}]}}</tool_call>'
    )
    again = parse_tool_calls(render_hermes(original.calls))
    assert again.calls[0].function == original.calls[0].function
