"""A scripted OpenAI-compatible endpoint: a real HTTP server on loopback for tests and benchmarks.

Replies come from a script (rules matched on the request, then replies in order, then a
responder function, then a default), with injectable latency, a capacity cap (excess
requests wait, or get 429) and faults (429 with Retry-After, 500, hangs past the client's
timeout, truncated bodies, malformed JSON), either at seeded rates or on a fixed schedule.
Every received request body is kept in ``requests`` for assertions, and ``outcomes``
counts how each ended (``abandoned``: the client disconnected before the answer).

It is not a model: it never invents text. Use the embedded endpoint for that.

Example::

    with ScriptedEndpoint(["hello", Reply(tool_calls=[call("f", {"x": 1})])]) as server:
        client = ChatClient(server.endpoint())
        ...
        assert server.requests[0]["messages"][-1]["content"] == "hi"
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from llm.endpoints import Endpoint, local_endpoint
from llm.loopback import LoopbackServer

Fault = Literal["429", "500", "timeout", "truncated", "malformed_json"]
FAULTS: tuple[Fault, ...] = ("429", "500", "timeout", "truncated", "malformed_json")


@dataclass
class Reply:
    """One scripted assistant reply (or a forced fault)."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    """OpenAI wire tool calls; see :func:`call`. ``arguments`` may be a dict or a raw string."""
    reasoning_content: str | None = None
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    """(prompt_tokens, completion_tokens); counted from words when not given."""
    fault: Fault | None = None
    """Answer with this fault instead of the reply."""


def call(name: str, arguments: dict[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    """A wire tool call for :class:`Reply`; ``str`` arguments are sent verbatim (may be broken)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "id": call_id or f"call_{name}",
        "type": "function",
        "function": {"name": name, "arguments": args},
    }


Matcher = str | Callable[[dict[str, Any]], bool]
Responder = Callable[[dict[str, Any]], "Reply | str"]


@dataclass
class Rule:
    """Answer requests that match with ``reply``; a ``str`` matcher is a regex searched in the
    last message's content."""

    match: Matcher
    reply: Reply | str | Responder
    times: int | None = None


@dataclass
class Faults:
    """Fault injection: a fixed ``schedule`` by arrival order first, then seeded rates."""

    rates: dict[str, float] = field(default_factory=dict)
    schedule: Sequence[Fault | None] = ()
    retry_after_s: float | None = 0.05
    """Retry-After sent with 429s (None: no header)."""
    hang_s: float = 30.0
    """How long a ``timeout`` fault holds the request before answering."""
    seed: int = 0


class Script:
    """Where replies come from, in order: rules, the ordered list, the responder, the default."""

    def __init__(
        self,
        replies: Sequence[Reply | str] = (),
        *,
        rules: Sequence[Rule] = (),
        responder: Responder | None = None,
        default: Reply | str | None = None,
    ) -> None:
        self.rules = [Rule(r.match, r.reply, r.times) for r in rules]
        self.replies = list(replies)
        self.responder = responder
        self.default = default
        self._lock = threading.Lock()

    def next(self, request: dict[str, Any]) -> Reply | None:
        with self._lock:
            for rule in self.rules:
                if rule.times != 0 and _matches(rule.match, request):
                    if rule.times is not None:
                        rule.times -= 1
                    return _resolve(rule.reply, request)
            if self.replies:
                return _resolve(self.replies.pop(0), request)
        if self.responder is not None:
            return _resolve(self.responder, request)
        return _resolve(self.default, request) if self.default is not None else None


def _matches(matcher: Matcher, request: dict[str, Any]) -> bool:
    if callable(matcher):
        return bool(matcher(request))
    messages = request.get("messages") or [{}]
    content = messages[-1].get("content") or ""
    return (
        re.search(matcher, content if isinstance(content, str) else json.dumps(content)) is not None
    )


def _resolve(reply: Reply | str | Responder, request: dict[str, Any]) -> Reply:
    if callable(reply) and not isinstance(reply, Reply):
        reply = reply(request)
    return Reply(content=reply) if isinstance(reply, str) else reply


class ScriptedEndpoint(LoopbackServer):
    """The server. Use as a (sync or async) context manager; it runs on its own thread."""

    thread_name = "scripted-endpoint"

    def __init__(
        self,
        script: Script | Sequence[Reply | str] | Responder | None = None,
        *,
        latency_s: float = 0.0,
        latency_spread: float = 0.0,
        capacity: int | None = None,
        over_capacity: Literal["wait", "429"] = "wait",
        faults: Faults | None = None,
        model: str = "scripted",
        json_schema: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if script is None:
            script = Script(default="ok")
        elif callable(script) and not isinstance(script, Script):
            script = Script(responder=script)
        elif not isinstance(script, Script):
            script = Script(script)
        self.script = script
        self.latency_s = latency_s
        if not 0.0 <= latency_spread <= 1.0:
            raise ValueError(f"latency_spread must be in [0, 1], got {latency_spread}")
        self.latency_spread = latency_spread
        self._latency_rng = random.Random(faults.seed if faults else 0)
        self.capacity = capacity
        self.over_capacity = over_capacity
        self.faults = faults or Faults()
        self.model = model
        self.json_schema = json_schema
        super().__init__(host=host, port=port)
        self.requests: list[dict[str, Any]] = []
        self.outcomes: dict[str, int] = {}
        self.max_in_flight = 0
        self._in_flight = 0
        self._arrivals = itertools.count()
        self._rng = random.Random(self.faults.seed)
        self._slots: asyncio.Semaphore | None = None

    def endpoint(self, **fields: Any) -> Endpoint:
        """An :class:`Endpoint` pointing here; ``fields`` override limits (``max_retries=2``)."""
        fields.setdefault("backoff_base_s", 0.01)
        fields.setdefault("json_schema", self.json_schema)
        return local_endpoint(self.url, name="scripted", model=self.model, **fields)

    async def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        if self.capacity is not None:
            self._slots = asyncio.Semaphore(self.capacity)
        return app

    # ---------------------------------------------------------------- handlers
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model"}]}
        )

    def draw_latency(self) -> float:
        """``latency_s``, or with ``latency_spread`` s a seeded uniform draw from
        ``latency_s × [1 - s, 1 + s]`` (same mean: real endpoints answer unevenly)."""
        if not self.latency_spread:
            return self.latency_s
        return self.latency_s * (1 + self.latency_spread * (2 * self._latency_rng.random() - 1))

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def _draw_fault(self, arrival: int) -> Fault | None:
        if arrival < len(self.faults.schedule):
            return self.faults.schedule[arrival]
        draw = self._rng.random()
        for fault in FAULTS:
            rate = self.faults.rates.get(fault, 0.0)
            if draw < rate:
                return fault
            draw -= rate
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        arrival = next(self._arrivals)
        self.requests.append(body)
        fault = self._draw_fault(arrival)
        if fault == "429" or (
            self.over_capacity == "429"
            and self.capacity is not None
            and self._in_flight >= self.capacity
        ):
            self._count("429")
            headers = {}
            if self.faults.retry_after_s is not None:
                headers["Retry-After"] = f"{self.faults.retry_after_s:g}"
            return _error(429, "rate limited (scripted)", headers)
        try:
            if self._slots is not None and self.over_capacity == "wait":
                async with self._slots:
                    return await self._answer(request, body, fault)
            return await self._answer(request, body, fault)
        except asyncio.CancelledError:  # the client went away before the answer
            self._count("abandoned")
            raise

    async def _answer(
        self, request: web.Request, body: dict[str, Any], fault: Fault | None
    ) -> web.StreamResponse:
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.draw_latency())
            if fault == "timeout":
                self._count("timeout")
                await asyncio.sleep(self.faults.hang_s)
                return _error(504, "gateway timeout (scripted)")
            if fault in ("truncated", "malformed_json"):
                # Faulty bodies do not consume the script: the retry gets the scripted reply.
                payload = json.dumps(self._completion(body, [Reply(content="(lost)")])).encode()
                self._count(fault)
                if fault == "malformed_json":
                    return web.Response(
                        body=payload[: len(payload) // 2], content_type="application/json"
                    )
                return await _truncated(request, payload)
            if fault == "500":
                self._count("500")
                return _error(500, "internal error (scripted)")
            if not self.json_schema and _wants_json_schema(body):
                self._count("400")
                return _error(400, "response_format json_schema is not supported by this endpoint")
            replies = []
            for _ in range(int(body.get("n") or 1)):
                reply = self.script.next(body)
                if reply is None:
                    self._count("400")
                    return _error(400, f"script has no reply for request #{len(self.requests)}")
                replies.append(reply)
            forced = replies[0].fault
            if forced is not None:
                self._count(forced)
                return _error(int(forced) if forced.isdigit() else 500, f"scripted {forced}")
            payload = json.dumps(self._completion(body, replies)).encode()
            self._count("ok")
            return web.Response(body=payload, content_type="application/json")
        finally:
            self._in_flight -= 1

    def _completion(self, body: dict[str, Any], replies: list[Reply]) -> dict[str, Any]:
        prompt_words = sum(
            len(str(m.get("content") or "").split()) for m in body.get("messages", [])
        )
        choices, completion_tokens, prompt_tokens = [], 0, prompt_words
        for index, reply in enumerate(replies):
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.tool_calls:
                message["tool_calls"] = reply.tool_calls
            if reply.reasoning_content is not None:
                message["reasoning_content"] = reply.reasoning_content
            finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
            choices.append({"index": index, "message": message, "finish_reason": finish})
            if reply.usage is not None:
                prompt_tokens, used = reply.usage
            else:
                used = len((reply.content or "").split())
                if reply.tool_calls:
                    used += len(json.dumps(reply.tool_calls).split())
            completion_tokens += used
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _wants_json_schema(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format") or {}
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    payload = {"error": {"message": message, "type": "scripted_error", "code": status}}
    return web.json_response(payload, status=status, headers=headers)


async def _truncated(request: web.Request, payload: bytes) -> web.StreamResponse:
    """Promise the whole body, send half, then drop the connection."""
    response = web.StreamResponse(
        status=200,
        headers={"Content-Type": "application/json", "Content-Length": str(len(payload))},
    )
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    if request.transport is not None:
        request.transport.close()
    return response
