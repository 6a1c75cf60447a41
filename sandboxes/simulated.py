"""An LLM plays the tools: a stateful world model with controlled, seeded failures.

The simulator model sees the tool specs, the explicit state (JSON) and the calls so far,
and answers each call with ``{result, state_update}`` (through ``complete_json``); the
update is merged into the state, which persists for the episode. Before the model is
asked, a seeded draw may inject a realistic failure (timeout, permission denied, not
found, rate limited) at the configured rates, or mark the result partial. Invalid
arguments are refused by the base class and never reach the model. With the same seed
and a response cache, an episode replays identically.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel, Field

from llm import ChatClient, LLMError, Message
from sandboxes.base import Environment, SandboxError, ToolFailure, result_text
from tool_registry import ToolSpec

FAILURES = {
    "timeout": "the service did not respond in time (timeout)",
    "permission_denied": "permission denied for this operation",
    "not_found": "the requested resource was not found",
    "rate_limited": "rate limited: too many requests, try again later",
}
_template = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "prompts"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
).get_template("simulator.jinja")


class SimulatedAnswer(BaseModel):
    result: Any
    state_update: dict[str, Any] = Field(default_factory=dict)


class SimulatedEnvironment(Environment):
    """``failure_rates`` maps ``timeout``/``permission_denied``/``not_found``/``rate_limited``/
    ``partial`` to probabilities per call."""

    def __init__(
        self,
        tools: list[ToolSpec],
        client: ChatClient,
        *,
        failure_rates: dict[str, float] | None = None,
        seed: int = 0,
        max_tokens: int = 512,
    ) -> None:
        super().__init__(tools)
        unknown = set(failure_rates or {}) - {*FAILURES, "partial"}
        if unknown:
            raise ValueError(f"unknown failure kinds: {', '.join(sorted(unknown))}")
        self.client = client
        self.failure_rates = dict(failure_rates or {})
        self.seed = seed
        self.max_tokens = max_tokens
        self._state: dict[str, Any] = {}
        self._history: list[dict[str, str]] = []
        self._rng = random.Random(seed)
        self.injected: dict[str, int] = {}

    async def _reset(self, task: dict[str, Any]) -> str:
        self._state = json.loads(json.dumps(task.get("initial_state") or {}))
        self._history = []
        episode = str(task.get("id", ""))
        self._rng = random.Random(f"{self.seed}:{episode}")
        return f"simulated tools ready: {', '.join(sorted(self.tools))}"

    async def _invoke(self, name: str, arguments: dict[str, Any]) -> str:
        failure = self._draw()
        if failure and failure != "partial":
            self.injected[failure] = self.injected.get(failure, 0) + 1
            self._history.append(
                {
                    "name": name,
                    "arguments": json.dumps(arguments),
                    "result": f"error: {FAILURES[failure]}",
                }
            )
            raise ToolFailure(FAILURES[failure])
        prompt = _template.render(
            tools=list(self.tools.values()),
            state=self._state,
            history=self._history,
            name=name,
            arguments=arguments,
        )
        seed = int(
            hashlib.sha256(f"{self.seed}:{len(self._history)}:{prompt}".encode()).hexdigest()[:8],
            16,
        )
        try:
            answer = await self.client.complete_json(
                [Message(role="user", content=prompt)],
                SimulatedAnswer,
                temperature=0.7,
                seed=seed,
                max_tokens=self.max_tokens,
            )
        except LLMError as exc:
            raise SandboxError(f"tool simulator failed: {exc}") from exc
        for key, value in answer.state_update.items():
            if value is None:
                self._state.pop(key, None)
            else:
                self._state[key] = value
        result = result_text(answer.result)
        if failure == "partial":
            self.injected["partial"] = self.injected.get("partial", 0) + 1
            result = json.dumps({"partial": True, "note": "results truncated", "result": result})
        self._history.append({"name": name, "arguments": json.dumps(arguments), "result": result})
        return result

    async def _snapshot(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._state))

    def _draw(self) -> str | None:
        draw = self._rng.random()
        for kind in (*FAILURES, "partial"):
            rate = self.failure_rates.get(kind, 0.0)
            if draw < rate:
                return kind
            draw -= rate
        return None
