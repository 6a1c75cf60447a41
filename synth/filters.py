"""The pre-judge filter: degenerate trajectories are rejected by rule, before any judge.

A small model writes garbage — a loop of "Why? Why? Why?", a ``<tool_response>`` it made
up, nothing at all — and a weak judge may score it 1.0. What is certain needs no judge:
:func:`screen` runs the narrow checks of :mod:`rubrics.degenerate` over the agent's own
text and names the first problem with a reject reason of its own (:data:`DEGENERATE`).

What counts: every assistant message with text (tool-call-only turns are fine), and the
final answer — the text of the last assistant message, empty when the agent's last act
was a tool call. Tool results and user turns are not the agent's words and are not
checked. A final answer that is a short value (one or two parts, under
:data:`SHORT_VALUE` characters: ``150.00``, ``12:30 PM``) is never ``no_language``, while
``1. 2. 3. 4.`` is; code and JSON carry enough letters to pass.

Not here: whether a well-formed answer is right (the verifiable checks, the judge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llm.types import final_assistant
from rubrics.degenerate import echoes, is_empty, loops, no_language, role_markers
from synth.schema import Trajectory

DEGENERATE: dict[str, str] = {
    "empty_answer": "the agent's final answer has no words, or it never answered in text",
    "fake_tool_output": "the agent wrote chat-template tokens or tool-result tags into its "
    "text: it played the tool or the other side of the conversation",
    "degenerate_loop": "an agent reply loops: a phrase repeated back to back, or a few "
    "phrases over and over",
    "truncated_answer": "the final answer stopped at the token limit, cut off mid-text",
    "echoed_prompt": "the final answer is the user's request again",
    "no_language": "the final answer has hardly any letters (numbered lists of nothing, "
    "symbol soup)",
}
"""Reject reasons of the filter, in the order they are checked, with what they mean."""

SHORT_VALUE = 16
"""Final answers of one or two parts and fewer visible characters than this are values."""


@dataclass(frozen=True)
class Screened:
    """Why a trajectory is degenerate: a key of :data:`DEGENERATE` and where it was found."""

    reason: str
    detail: str


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _short_value(text: str) -> bool:
    """``150.00``, ``12:30 PM``, ``A-17``: an answer made of a value, not a list of nothing."""
    visible = sum(1 for c in text if not c.isspace())
    return visible < SHORT_VALUE and len(text.split()) <= 2


def _quote(index: int, text: str) -> str:
    return f"message {index}: {text[:160]!r}"


def screen(trajectory: Trajectory, prompt: str = "") -> Screened | None:
    """The first degenerate trait of ``trajectory`` (see :data:`DEGENERATE`), or ``None``.

    ``prompt`` is the user's request, for ``echoed_prompt``.
    """
    messages = trajectory.messages
    final = final_assistant(messages)
    if final is None or is_empty(final[1]):
        where = final[0] if final else len(messages)
        return Screened("empty_answer", _quote(where, final[1] if final else ""))
    for index, message in enumerate(messages):
        text = _text(message)
        if message.get("role") != "assistant" or not text:
            continue
        if role_markers(text):
            return Screened("fake_tool_output", _quote(index, text))
        if loops(text):
            return Screened("degenerate_loop", _quote(index, text))
    index, text = final
    if index in trajectory.length_stops:
        return Screened("truncated_answer", _quote(index, text[-160:]))
    if prompt and echoes(text, prompt):
        return Screened("echoed_prompt", _quote(index, text))
    if not _short_value(text) and no_language(text):
        return Screened("no_language", _quote(index, text))
    return None
