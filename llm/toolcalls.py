"""Tool calls written as text, parsed back into structured calls.

Endpoints that lack native tool calling (or models served raw) write their calls into
the content. Two formats are understood:

* Hermes: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (any number);
* Kimi K2 native section tokens::

    <|tool_calls_section_begin|>
    <|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{json}<|tool_call_end|>
    <|tool_calls_section_end|>

A call that cannot be parsed comes back as a :class:`ToolCallParseError`; this module
never raises on model text. It does not validate arguments against a tool's schema
(environments do that).

Example::

    >>> parsed = parse_tool_calls('<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>')
    >>> parsed.calls[0].function.name, parsed.calls[0].function.arguments
    ('f', '{"x": 1}')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from llm.types import FunctionCall, ToolCall, ToolCallParseError

HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
K2_SECTION_BEGIN = "<|tool_calls_section_begin|>"
K2_SECTION_END = "<|tool_calls_section_end|>"
K2_CALL_BEGIN = "<|tool_call_begin|>"
K2_ARG_BEGIN = "<|tool_call_argument_begin|>"
K2_CALL_END = "<|tool_call_end|>"

_HERMES_BLOCK = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)
_K2_SECTION = re.compile(
    re.escape(K2_SECTION_BEGIN) + r"(.*?)(" + re.escape(K2_SECTION_END) + r"|$)", re.DOTALL
)
_K2_CALL = re.compile(
    re.escape(K2_CALL_BEGIN)
    + r"(.*?)"
    + re.escape(K2_ARG_BEGIN)
    + r"(.*?)("
    + re.escape(K2_CALL_END)
    + r"|$)",
    re.DOTALL,
)
_K2_ID = re.compile(r"^\s*(?:functions\.)?([A-Za-z0-9_\-.]+?)(?::(\d+))?\s*$")


@dataclass
class ParsedToolCalls:
    """Text with its tool calls taken out."""

    content: str | None
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[ToolCallParseError] = field(default_factory=list)


def has_text_tool_calls(text: str | None) -> bool:
    return bool(text) and (HERMES_OPEN in text or K2_SECTION_BEGIN in text)  # type: ignore[operator]


def parse_tool_calls(text: str | None, *, id_prefix: str = "call") -> ParsedToolCalls:
    """Take Hermes and K2 tool calls out of ``text``; what remains is the content."""
    if not text or not has_text_tool_calls(text):
        return ParsedToolCalls(content=text)
    calls: list[ToolCall] = []
    errors: list[ToolCallParseError] = []
    remaining = _K2_SECTION.sub(lambda m: _take_k2(m, calls, errors), text)
    remaining = _HERMES_BLOCK.sub(lambda m: _take_hermes(m, calls, errors, id_prefix), remaining)
    content = remaining.strip() or None
    return ParsedToolCalls(content=content, calls=calls, errors=errors)


def _take_hermes(
    match: re.Match[str], calls: list[ToolCall], errors: list[ToolCallParseError], id_prefix: str
) -> str:
    body, closing = match.group(1).strip(), match.group(2)
    raw = match.group(0)
    if not closing:
        errors.append(ToolCallParseError(format="hermes", raw=raw, error="unclosed <tool_call>"))
        return ""
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        errors.append(ToolCallParseError(format="hermes", raw=raw, error=f"invalid JSON: {exc}"))
        return ""
    name = obj.get("name") if isinstance(obj, dict) else None
    if not isinstance(name, str) or not name:
        errors.append(ToolCallParseError(format="hermes", raw=raw, error="missing string 'name'"))
        return ""
    arguments = obj.get("arguments", obj.get("parameters", {}))
    error = _arguments_error(arguments)
    if error:
        errors.append(ToolCallParseError(format="hermes", raw=raw, error=error))
        return ""
    call_id = f"{id_prefix}_{len(calls)}"
    calls.append(ToolCall(id=call_id, function=FunctionCall(name=name, arguments=_dump(arguments))))
    return ""


def _take_k2(match: re.Match[str], calls: list[ToolCall], errors: list[ToolCallParseError]) -> str:
    section, closing = match.group(1), match.group(2)
    if not closing:
        errors.append(
            ToolCallParseError(format="k2", raw=match.group(0), error="unclosed tool-call section")
        )
    for call in _K2_CALL.finditer(section):
        raw, ident, args_text = call.group(0), call.group(1), call.group(2).strip()
        if not call.group(3):
            errors.append(ToolCallParseError(format="k2", raw=raw, error="unclosed tool call"))
            continue
        id_match = _K2_ID.match(ident)
        if not id_match:
            errors.append(ToolCallParseError(format="k2", raw=raw, error=f"bad call id {ident!r}"))
            continue
        try:
            arguments = json.loads(args_text or "{}")
        except json.JSONDecodeError as exc:
            errors.append(ToolCallParseError(format="k2", raw=raw, error=f"invalid JSON: {exc}"))
            continue
        error = _arguments_error(arguments)
        if error:
            errors.append(ToolCallParseError(format="k2", raw=raw, error=error))
            continue
        name = id_match.group(1)
        calls.append(
            ToolCall(id=ident.strip(), function=FunctionCall(name=name, arguments=_dump(arguments)))
        )
    return ""


def native_call_errors(calls: list[ToolCall]) -> list[ToolCallParseError]:
    """Errors for native (OpenAI-format) calls whose ``arguments`` are not a JSON object."""
    errors = []
    for call in calls:
        try:
            value = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError as exc:
            errors.append(
                ToolCallParseError(format="openai", raw=call.function.arguments, error=str(exc))
            )
            continue
        error = _arguments_error(value)
        if error:
            errors.append(
                ToolCallParseError(format="openai", raw=call.function.arguments, error=error)
            )
    return errors


def render_hermes(calls: list[ToolCall]) -> str:
    """The Hermes text form of ``calls`` (what a ChatML model is trained to emit)."""
    blocks = []
    for call in calls:
        try:
            arguments: Any = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError:
            arguments = call.function.arguments
        blocks.append(
            HERMES_OPEN
            + "\n"
            + _dump({"name": call.function.name, "arguments": arguments})
            + "\n"
            + HERMES_CLOSE
        )
    return "\n".join(blocks)


def _arguments_error(arguments: Any) -> str | None:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            return f"arguments are not JSON: {exc}"
    if not isinstance(arguments, dict):
        return "arguments are not a JSON object"
    return None


def _dump(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)
