"""Chat types in OpenAI wire format.

Every message that crosses a package boundary in Summit is a :class:`Message`; its
``to_openai()`` form is exactly what the OpenAI chat API takes, plus the optional
``reasoning_content`` that K2-Thinking returns and expects back across tool turns.
This module holds data only: no I/O, no parsing of model text (see ``toolcalls``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class FunctionCall(BaseModel):
    """The function half of a tool call; ``arguments`` is a JSON string, as on the wire."""

    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ``ValueError`` when they are not a JSON object."""
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError(f"arguments of {self.name!r} are not a JSON object")
        return value


class ToolCall(BaseModel):
    """One tool call requested by the assistant."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ToolCallParseError(BaseModel):
    """A tool call the model tried to make but that could not be parsed.

    Kept as data so a trajectory records the agent's mistake instead of crashing.
    """

    format: Literal["openai", "hermes", "k2"]
    raw: str
    error: str


class Message(BaseModel):
    """One chat message (OpenAI format, plus ``reasoning_content``)."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_content: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """The wire form: unset optional fields are left out."""
        return self.model_dump(exclude_none=True)

    @classmethod
    def from_openai(cls, data: dict[str, Any]) -> Message:
        return cls.model_validate(data)


class Usage(BaseModel):
    """Token counts reported by the endpoint for one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ChatResult(BaseModel):
    """What one chat completion returned, with the bookkeeping Summit needs."""

    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    reasoning_content: str | None = None
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    model: str = ""
    endpoint: str = ""
    tool_call_errors: list[ToolCallParseError] = Field(default_factory=list)
    cached: bool = False

    def to_message(self) -> Message:
        """The assistant message to append to the conversation (keeps ``reasoning_content``)."""
        return Message(
            role="assistant",
            content=self.content,
            tool_calls=self.tool_calls or None,
            reasoning_content=self.reasoning_content,
        )


def as_wire_messages(messages: list[Message] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accept typed or plain messages and return the OpenAI wire form."""
    return [m.to_openai() if isinstance(m, Message) else dict(m) for m in messages]


def final_assistant(messages: list[dict[str, Any]]) -> tuple[int, str] | None:
    """The index and text of the last assistant message (its text ``""`` when it has none,
    as a reply that only calls tools); ``None`` when the assistant never spoke."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "assistant":
            content = messages[index].get("content")
            return index, content if isinstance(content, str) else ""
    return None


def final_assistant_text(messages: list[dict[str, Any]]) -> str | None:
    """The text of the last assistant message that has text (the answer a reader takes as
    final, past any later tool-call-only reply); ``None`` when there is none."""
    for message in reversed(messages):
        if message.get("role") == "assistant" and isinstance(message.get("content"), str):
            return str(message["content"])
    return None
