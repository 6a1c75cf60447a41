"""The simulated user: a persona with a goal and hidden facts, talking to the agent.

The user's first message is the task's goal as written. After each agent reply the
user model sees the visible conversation (user and assistant text; tool traffic is the
agent's business) and answers in :class:`UserTurn`: the next message and whether it is
``satisfied`` (goal met), ``stuck`` (the agent cannot help) or wants to ``continue``.
Hidden facts are in its prompt with the instruction to reveal them only when asked.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm import ChatClient, Message
from synth.schema import TaskSpec
from synth.templates import render

Status = Literal["continue", "satisfied", "stuck"]


class UserTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=1000)
    status: Status


def visible_turns(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What the user sees: user messages and assistant text, no system or tool traffic."""
    return [
        {"role": m["role"], "content": m["content"]}
        for m in messages
        if m.get("role") in ("user", "assistant")
        and isinstance(m.get("content"), str)
        and m["content"].strip()
    ]


class UserSimulator:
    def __init__(self, task: TaskSpec, client: ChatClient, *, seed: int = 0) -> None:
        self.task, self.client, self.seed = task, client, seed
        self.turns = 0

    def opening(self) -> str:
        return self.task.user_goal

    async def reply(self, messages: list[dict[str, Any]]) -> UserTurn:
        """The user's next turn after the agent's last reply."""
        self.turns += 1
        prompt = render("user", task=self.task, turns=visible_turns(messages))
        return await self.client.complete_json(
            [Message(role="user", content=prompt)],
            UserTurn,
            seed=self.seed + self.turns,
            max_tokens=300,
        )
