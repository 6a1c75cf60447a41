"""The embedded model behind an OpenAI-compatible HTTP API on 127.0.0.1.

``/v1/models`` and ``/v1/chat/completions`` with ``tools`` (rendered into the prompt by
the Hermes ChatML template, ``<tool_call>`` output parsed back into ``tool_calls``;
``tool_choice`` ``"required"`` or a named function constrains decoding to a well-formed
call of the allowed tools, arguments valid for their parameter schemas),
``response_format`` (JSON schema: by default decoding is constrained to the schema with
llguidance token masks; ``json_mode="retry"`` instead validates and resamples, which a
135M model almost never gets right, see docs/benchmarks.md), ``n``, ``temperature``,
``top_p``, ``max_tokens``, ``seed`` and ``stop``. Concurrent requests are batched by
:class:`~llm.embedded.engine.BatchEngine`. No streaming, no logprobs, no images.

Example::

    with EmbeddedServer() as server:                 # loads the model, picks a free port
        client = ChatClient(server.endpoint())
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from llm.embedded.engine import BatchEngine, EngineBusy, Generation, GenerationRequest
from llm.embedded.model import DEFAULT_SYSTEM, MODEL_NAME, check_checkpoint, load_model
from llm.endpoints import Endpoint, local_endpoint
from llm.loopback import LoopbackServer
from llm.structured import extract_json
from llm.toolcalls import HERMES_CLOSE, HERMES_OPEN, parse_tool_calls
from llm.yamlconf import first_problem

CONTEXT_TOKENS = 8192
"""The window assumed for a model whose config does not state one."""
MAX_BODY_DEPTH = 64
"""Deeper JSON request bodies are refused before parsing them into models."""
MAX_SCHEMA_DEPTH = 32


class WireFunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    arguments: str | dict[str, Any] = "{}"


class WireToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    type: Literal["function"] = "function"
    function: WireFunctionCall


class WireMessage(BaseModel):
    """One OpenAI chat message; an unknown role or a malformed tool call is a 400."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_content: str | None = None


class WireFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _a_valid_schema(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        check_schema(parameters)
        return parameters


class WireTool(BaseModel):
    """A tool entry: ``{"type": "function", "function": {...}}``, schema checked even when no
    call is forced (a bad schema found only when decoding is constrained would be a 500)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["function"] = "function"
    function: WireFunction


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _a_valid_schema(self) -> ResponseFormat:
        if self.type == "json_schema":
            schema = (self.json_schema or {}).get("schema", {"type": "object"})
            if not isinstance(schema, dict):
                raise ValueError("json_schema.schema must be a JSON object")
            check_schema(schema)
        return self


class ChatRequest(BaseModel):
    """The part of the OpenAI chat request this server honours; other fields are ignored.

    Everything a request can get wrong is found here, before it is queued, and answered
    with a 400 naming the field.
    """

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model: str | None = None
    messages: list[WireMessage] = Field(min_length=1)
    tools: list[WireTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    n: int = Field(1, ge=1, le=16)
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[Annotated[str, Field(min_length=1)]] | None = Field(None, max_length=16)
    stream: bool = False

    @field_validator("tools")
    @classmethod
    def _distinct_names(cls, tools: list[WireTool] | None) -> list[WireTool] | None:
        names = [t.function.name for t in tools or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"tool names must be distinct; repeated: {', '.join(twice)}")
        return tools

    def wire_messages(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

    def wire_tools(self) -> list[dict[str, Any]] | None:
        return [t.model_dump(exclude_none=True) for t in self.tools] if self.tools else None


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError unless ``schema`` is a valid JSON Schema (nesting bounded too)."""
    if _depth(schema) > MAX_SCHEMA_DEPTH:
        raise ValueError(f"JSON schema nested deeper than {MAX_SCHEMA_DEPTH} levels")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"invalid JSON schema: {exc.message}") from None


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion (a hostile body may nest 10⁵ deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


class EmbeddedServer(LoopbackServer):
    """Loads the embedded model and serves it; a sync or async context manager."""

    thread_name = "embedded-server"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_batch: int = 16,
        max_queue: int = 256,
        threads: int | None = None,
        json_mode: str = "constrained",
        json_retries: int = 3,
        default_max_tokens: int = 256,
        model_path: str | Path | None = None,
        prefix_cache_mb: float = 512,
    ) -> None:
        super().__init__(host=host, port=port)
        self.model_path = Path(model_path) if model_path is not None else None
        """A local Hugging Face model directory to serve; None: the embedded default."""
        self.model_name = self.model_path.name if self.model_path is not None else MODEL_NAME
        """The name clients send and see in ``/v1/models``: the directory's name."""
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.threads = threads
        self.prefix_cache_mb = prefix_cache_mb
        """Bound of the prompt-prefix KV cache (0 turns it off)."""
        self.context_tokens = CONTEXT_TOKENS
        """The model's window (its ``max_position_embeddings``), known once it is loaded."""
        if json_mode not in ("constrained", "retry"):
            raise ValueError(f"json_mode must be 'constrained' or 'retry', not {json_mode!r}")
        self.json_mode = json_mode
        self.json_retries = json_retries
        self.default_max_tokens = default_max_tokens
        self.engine: BatchEngine | None = None
        self.tokenizer: Any = None
        self.requests_abandoned = 0
        """Requests whose client disconnected before the answer was ready."""

    def start(self) -> EmbeddedServer:
        """Load the model and serve it; a ``model_path`` that is not a model raises a
        one-line :class:`~llm.errors.ConfigError` first, before any port is bound."""
        if self.model_path is not None:
            check_checkpoint(self.model_path)
        server: EmbeddedServer = super().start()
        return server

    def endpoint(self, **fields: Any) -> Endpoint:
        fields.setdefault("timeout_s", 600)
        fields.setdefault("max_concurrency", self.max_batch)
        fields.setdefault("temperature", 0.7)
        return local_endpoint(self.url, name="embedded", model=self.model_name, **fields)

    async def build_app(self) -> web.Application:
        model, self.tokenizer = await asyncio.to_thread(load_model, self.model_path)
        self.engine = BatchEngine(
            model,
            self.tokenizer,
            max_batch=self.max_batch,
            max_queue=self.max_queue,
            threads=self.threads,
            prefix_cache_mb=self.prefix_cache_mb,
        )
        self.context_tokens = int(
            getattr(model.config, "max_position_embeddings", None) or CONTEXT_TOKENS
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def on_stop(self) -> None:
        if self.engine is not None:
            await asyncio.to_thread(self.engine.close)

    # -------------------------------------------------------------- handlers
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.model_name, "object": "model", "owned_by": "summit"}],
            }
        )

    async def _health(self, request: web.Request) -> web.Response:
        engine = self.engine
        stats = dataclasses.asdict(engine.stats) if engine else {}
        stats["requests_abandoned"] = self.requests_abandoned
        if engine is not None:
            stats["prefix_cache"] = {
                "bytes": engine.prefix_cache.bytes,
                "blocks": len(engine.prefix_cache),
                "prompt_tokens": engine.prefix_cache.stats.prompt_tokens,
                "hit_tokens": engine.prefix_cache.stats.hit_tokens,
                "hit_rate": round(engine.prefix_cache.stats.hit_rate, 4),
                "evicted_blocks": engine.prefix_cache.stats.evicted_blocks,
            }
        return web.json_response({"status": "ok", **stats})

    async def _chat(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            return _bad_request(f"invalid request body: not JSON ({type(exc).__name__})")
        if _depth(body) > MAX_BODY_DEPTH:
            return _bad_request(f"invalid request body: nested deeper than {MAX_BODY_DEPTH}")
        try:
            req = ChatRequest.model_validate(body)
        except ValidationError as exc:
            return _bad_request(_describe(exc))
        if req.stream:
            return _bad_request("stream=true is not supported by the embedded endpoint")
        schema = _schema_of(req.response_format)
        try:
            forced = _forced_call_schema(req)
            prompt_ids = self._render(req, schema, HERMES_OPEN + "\n" if forced else "")
        except Exception as exc:  # noqa: BLE001 - a template error is the caller's bad input
            return _bad_request(f"cannot render messages: {exc}")
        max_tokens = req.max_completion_tokens or req.max_tokens or self.default_max_tokens
        if len(prompt_ids) + max_tokens > self.context_tokens:
            return _bad_request(
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({max_tokens}) exceeds the "
                f"context of {self.context_tokens}"
            )
        assert self.engine is not None
        if req.n > self.engine.max_queue:
            return _bad_request(
                f"n={req.n} can never be served: the engine queues at most "
                f"{self.engine.max_queue} rows"
            )
        try:
            self.engine.admit(req.n)
        except EngineBusy as exc:
            return _busy(str(exc))
        seeds = [None if req.seed is None else req.seed + i for i in range(req.n)]
        try:
            outputs = await asyncio.gather(
                *(self._one(prompt_ids, req, max_tokens, seed, schema, forced) for seed in seeds)
            )
        except ValueError as exc:  # an unusable schema
            return _bad_request(str(exc))
        except asyncio.CancelledError:  # the client went away; the engine drops its rows
            self.requests_abandoned += 1
            raise
        return web.json_response(self._completion(req, outputs))

    def _render(self, req: ChatRequest, schema: dict[str, Any] | None, prefix: str) -> list[int]:
        messages = [_for_template(m) for m in req.wire_messages()]
        if messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": DEFAULT_SYSTEM})
        if schema is not None:
            messages[0]["content"] += (
                "\n\nReply with a single JSON object, and nothing else, that validates against "
                f"this JSON Schema:\n{json.dumps(schema)}"
            )
        tools = req.wire_tools() if req.tool_choice != "none" else None
        text = self.tokenizer.apply_chat_template(
            messages, tools=tools or None, add_generation_prompt=True, tokenize=False
        )
        text += prefix
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def _one(
        self,
        prompt_ids: list[int],
        req: ChatRequest,
        max_tokens: int,
        seed: int | None,
        schema: dict[str, Any] | None,
        forced: dict[str, Any] | None = None,
    ) -> tuple[Generation, int]:
        assert self.engine is not None
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        if forced is not None:  # a forced tool call: its JSON is the whole turn
            schema, stop = forced, []
        constrained = schema is not None and (self.json_mode == "constrained" or forced is not None)
        attempts = 1 + (self.json_retries if schema is not None and not constrained else 0)
        generation: Generation | None = None
        for attempt in range(attempts):
            # Without a seed every attempt is a fresh draw; with one, resamples are repeatable.
            attempt_seed = seed if seed is None or attempt == 0 else seed * 1000 + attempt
            temperature = req.temperature if attempt == 0 else max(req.temperature, 0.7)
            future = self.engine.submit(
                GenerationRequest(
                    prompt_ids=prompt_ids,
                    max_new_tokens=max_tokens,
                    temperature=temperature,
                    top_p=req.top_p,
                    seed=attempt_seed,
                    stop=stop,
                    json_schema=schema if constrained else None,
                )
            )
            generation = await asyncio.wrap_future(future)
            if forced is not None:
                generation.text = f"{HERMES_OPEN}\n{generation.text}\n{HERMES_CLOSE}"
            if schema is None or _valid_json(generation.text, schema):
                return generation, attempt
        assert generation is not None
        return generation, attempts - 1

    def _completion(
        self, req: ChatRequest, outputs: list[tuple[Generation, int]]
    ) -> dict[str, Any]:
        choices = []
        for index, (generation, _) in enumerate(outputs):
            message: dict[str, Any] = {"role": "assistant", "content": generation.text}
            finish = generation.finish_reason
            if req.tools and req.tool_choice != "none":
                parsed = parse_tool_calls(generation.text, id_prefix=f"call_{uuid.uuid4().hex[:8]}")
                if parsed.calls:
                    message["content"] = parsed.content
                    message["tool_calls"] = [c.model_dump() for c in parsed.calls]
                    finish = "tool_calls"
            elif _schema_of(req.response_format) is not None and not req.tools:
                message["content"] = extract_json(generation.text)
            choices.append({"index": index, "message": message, "finish_reason": finish})
        prompt_tokens = outputs[0][0].prompt_tokens
        completion_tokens = sum(g.completion_tokens for g, _ in outputs)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "summit": {"json_retries": [a for _, a in outputs]},
        }


def _for_template(message: dict[str, Any]) -> dict[str, Any]:
    """OpenAI wire message → what the chat template expects (content text, dict arguments)."""
    out = dict(message)
    content = out.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    out["content"] = content or ""
    calls = []
    for call in out.get("tool_calls") or []:
        function = dict(call.get("function") or {})
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            # A malformed call of the model's own is shown back to it as it wrote it.
            with contextlib.suppress(json.JSONDecodeError):
                function["arguments"] = json.loads(arguments or "{}")
        calls.append({**call, "function": function})
    if calls:
        out["tool_calls"] = calls
    return out


def _forced_call_schema(req: ChatRequest) -> dict[str, Any] | None:
    """The JSON schema of the call a ``tool_choice`` forces, or None when nothing is forced.

    ``"required"`` allows any of the tools, each with its own parameters; a named function
    allows only that one. Decoding is constrained to it, so the call is always well formed.
    """
    choice = req.tool_choice
    if not req.tools or choice in (None, "auto", "none"):
        return None
    functions = {t.function.name: t.function.model_dump() for t in req.tools}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in functions:
            raise ValueError(f"tool_choice names {name!r}, which is not in tools")
        functions = {name: functions[name]}
    elif choice != "required":
        raise ValueError(f"unsupported tool_choice {choice!r}")
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": name},
                "arguments": _closed(spec.get("parameters") or {"type": "object"}),
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for name, spec in functions.items()
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def _closed(parameters: dict[str, Any]) -> dict[str, Any]:
    """Forbid undeclared arguments unless the schema says otherwise (keeps small models brief)."""
    if parameters.get("type") == "object" and "additionalProperties" not in parameters:
        return {**parameters, "additionalProperties": False}
    return parameters


def _schema_of(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    if response_format is None:
        return None
    if response_format.type == "json_schema":
        spec = response_format.json_schema or {}
        return dict(spec.get("schema") or {"type": "object"})
    if response_format.type == "json_object":
        return {"type": "object"}
    return None


def _valid_json(text: str, schema: dict[str, Any]) -> bool:
    try:
        jsonschema.validate(json.loads(extract_json(text)), schema)
    except (json.JSONDecodeError, jsonschema.ValidationError, jsonschema.SchemaError):
        return False
    return True


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return f"invalid request: {first_problem(exc, '(body)')}"
    return f"invalid request body: {exc}"


def _bad_request(message: str) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "code": 400}
    return web.json_response({"error": error}, status=400)


def _busy(message: str) -> web.Response:
    """429 with a short Retry-After: the client backs off instead of queueing more."""
    error = {"message": message, "type": "rate_limit_error", "code": 429}
    return web.json_response({"error": error}, status=429, headers={"Retry-After": "1"})
