"""The async chat client every part of Summit uses to reach a model.

One :class:`ChatClient` per endpoint: it bounds the requests in flight, times each out,
retries 429 / 5xx / timeouts / connection drops / unreadable bodies with exponential
backoff and full jitter (honouring ``Retry-After``), parses tool calls written as text,
keeps ``reasoning_content``, counts tokens and cost, and can replay from a disk cache.
After the last try it raises :class:`~llm.errors.ProviderError` naming endpoint, model
and last status. It does not decide what to ask (that is the caller's), nor share its
concurrency bound with other processes (Ray-wide limits belong to ``synth``).

Example::

    client = ChatClient(get_endpoint("kimi-k2"))
    result = await client.chat([Message(role="user", content="hi")], tools=[...])
    verdict = await client.complete_json(messages, Verdict)
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from llm import structured
from llm.cache import ResponseCache, request_key
from llm.concurrency import AdaptiveLimit, Outcome
from llm.endpoints import Endpoint
from llm.errors import ProviderError
from llm.toolcalls import native_call_errors, parse_tool_calls
from llm.types import (
    ChatResult,
    FunctionCall,
    Message,
    ToolCall,
    Usage,
    as_wire_messages,
)

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


@dataclass
class UsageMeter:
    """Running totals for one endpoint."""

    requests: int = 0
    cached: int = 0
    retries: int = 0
    timeouts: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


class _Retry(Exception):
    """Internal: one attempt failed in a way worth retrying."""

    def __init__(
        self,
        reason: str,
        status: int | None = None,
        retry_after: float | None = None,
        *,
        overload: bool = False,
        deadline: float | None = None,
    ):
        super().__init__(reason)
        self.deadline = deadline
        self.status = status
        self.retry_after = retry_after
        self.overload = overload
        """A timeout, 429 or 5xx: the server is busy, so fewer requests should be in flight."""


class ChatClient:
    """Async client for one OpenAI-compatible endpoint."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        cache_dir: str | Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.usage = UsageMeter()
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self._rng = rng or random.Random()
        self.concurrency = AdaptiveLimit(
            endpoint.max_concurrency, adaptive=endpoint.adaptive_concurrency
        )
        self.json_schema = endpoint.json_schema
        """Whether JSON answers are asked with ``response_format``; turned off for this
        client once the endpoint refuses it (:mod:`llm.structured`)."""
        self._sdk = openai.AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=endpoint.timeout_s,
            max_retries=0,  # retries are ours: jitter, Retry-After cap and a clear last error
            http_client=_http_client(endpoint.timeout_s),
        )

    async def aclose(self) -> None:
        await self._sdk.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- chat
    async def chat(
        self,
        messages: list[Message] | list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        response_format: dict[str, Any] | None = None,
        model: str | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> ChatResult:
        """One chat completion (``n=1``), retried until it succeeds or tries run out."""
        request: dict[str, Any] = {
            "model": model or self.endpoint.model,
            "messages": as_wire_messages(messages),
        }
        temperature = temperature if temperature is not None else self.endpoint.temperature
        optional = {
            "tools": tools or None,
            "tool_choice": tool_choice if tools else None,
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
            "stop": stop,
            "seed": seed,
            "response_format": response_format,
        }
        request.update({k: v for k, v in optional.items() if v is not None})
        if extra_body:
            request.update(extra_body)
        key = request_key(self.endpoint.base_url, request) if self.cache else ""
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.cached += 1
                return hit
        result = await self._with_retries(request)
        self.usage.requests += 1
        self.usage.prompt_tokens += result.usage.prompt_tokens
        self.usage.completion_tokens += result.usage.completion_tokens
        self.usage.cost_usd += self.endpoint.price.cost(
            result.usage.prompt_tokens, result.usage.completion_tokens
        )
        if self.cache is not None:
            self.cache.put(key, result)
        return result

    async def _with_retries(self, request: dict[str, Any]) -> ChatResult:
        ep = self.endpoint
        budget = ep.deadline_s if ep.deadline_s is not None else 3 * ep.timeout_s
        deadline: float | None = None  # set when the first try is sent
        last: _Retry | None = None
        tries = 0
        while tries <= ep.max_retries:
            if last is not None:
                pause = self.backoff_s(tries, last.retry_after)
                if last.deadline is not None and time.monotonic() + pause >= last.deadline:
                    break  # no time left for another try
                self.usage.retries += 1
                await asyncio.sleep(pause)
            tries += 1
            try:
                return await self._attempt(request, budget, deadline)
            except _Retry as exc:
                last, deadline = exc, exc.deadline
                log.debug("%s: attempt %d failed: %s", ep.name, tries, exc)
            except openai.APIStatusError as exc:  # not retryable: the request itself is wrong
                self.usage.failures += 1
                what = f"rejected the request: status {exc.status_code}: {_short(exc)}"
                raise self._error(request, what, exc.status_code, tries) from exc
        self.usage.failures += 1
        assert last is not None
        status = f"status {last.status}" if last.status else "no status"
        within = "" if tries > ep.max_retries else f" (its {budget:g}s deadline ran out)"
        what = f"failed after {tries} tries{within}; last: {status}: {last}"
        raise self._error(request, what, last.status, tries)

    def _error(
        self, request: dict[str, Any], what: str, status: int | None, attempts: int
    ) -> ProviderError:
        ep = self.endpoint
        return ProviderError(
            f"endpoint {ep.name!r} (model {request['model']}, {ep.base_url}) {what}",
            endpoint=ep.name,
            model=request["model"],
            status=status,
            attempts=attempts,
        )

    def backoff_s(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1``: the server's ``Retry-After`` (capped,
        a little jitter) when it sent one, else full jitter under an exponential ceiling."""
        ep = self.endpoint
        if retry_after is not None:
            return min(ep.backoff_max_s, retry_after) + self._rng.uniform(0, 0.05)
        ceiling = min(ep.backoff_max_s, ep.backoff_base_s * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)

    async def _attempt(
        self, request: dict[str, Any], budget: float, deadline: float | None
    ) -> ChatResult:
        ep = self.endpoint
        ticket = await self.concurrency.acquire()
        outcome = Outcome.OTHER
        started = time.perf_counter()
        if deadline is None:  # the deadline runs from the first try, not the wait for a slot
            deadline = time.monotonic() + budget
        timeout = min(ep.timeout_s, max(0.0, deadline - time.monotonic()))
        try:
            response = await self._post(request, timeout)
            latency = time.perf_counter() - started
            outcome = Outcome.SLOW if latency > ep.timeout_s / 2 else Outcome.OK
        except _Retry as exc:
            outcome = Outcome.OVERLOAD if exc.overload else Outcome.OTHER
            exc.deadline = deadline
            raise
        finally:
            await self.concurrency.release(ticket, outcome)
        if not isinstance(response, dict) or not response.get("choices"):
            raise _Retry("response has no choices", deadline=deadline)
        try:
            return _to_result(response, ep.name, latency)
        except (KeyError, TypeError, AttributeError, ValidationError) as exc:
            raise _Retry(
                f"response is not a chat completion: {type(exc).__name__}: {exc}", deadline=deadline
            ) from exc

    async def _post(self, request: dict[str, Any], timeout: float) -> Any:
        """One HTTP try; failures worth retrying become :class:`_Retry`."""
        try:
            # Our messages are already wire format: post them as they are. The SDK's
            # typed `create` re-walks every message (~1 ms a request at high concurrency).
            # cast_to=object hands back the JSON as parsed, skipping the SDK's models.
            return await self._sdk.post(
                "/chat/completions", body=request, cast_to=object, options={"timeout": timeout}
            )
        except openai.APIStatusError as exc:
            if exc.status_code not in RETRYABLE_STATUS:
                raise  # _with_retries reports it, knowing how many tries it took
            overload = exc.status_code in (408, 429) or exc.status_code >= 500
            raise _Retry(
                _short(exc),
                exc.status_code,
                _retry_after(exc.response.headers),
                overload=overload,
            ) from exc
        except openai.APIConnectionError as exc:  # includes APITimeoutError
            refused = _connection_failure(exc)
            if refused is not None:
                raise _Retry(f"connection error: {type(refused).__name__}: {refused}") from exc
            if isinstance(exc, openai.APITimeoutError):
                self.usage.timeouts += 1
                raise _Retry(f"timed out after {timeout:.3g}s", overload=True) from exc
            cause = exc.__cause__ or exc
            raise _Retry(f"connection error: {type(cause).__name__}: {cause}") from exc
        except (
            openai.APIResponseValidationError,
            json.JSONDecodeError,
            ValidationError,
        ) as exc:
            raise _Retry(f"unreadable response body: {type(exc).__name__}") from exc

    # ------------------------------------------------------------ structured
    async def complete_json(
        self,
        messages: list[Message] | list[dict[str, Any]],
        schema: type[T],
        *,
        max_repairs: int = 2,
        **kwargs: Any,
    ) -> T:
        """Ask for JSON matching ``schema`` and return it validated
        (:func:`llm.structured.complete_json`: constrained where the endpoint can, repaired
        where the answer does not validate)."""
        return await structured.complete_json(
            self, messages, schema, max_repairs=max_repairs, **kwargs
        )


def _connection_failure(exc: BaseException) -> OSError | None:
    """The OS-level connection error behind ``exc``, if any (a refused connect is not a timeout,
    whatever the transport calls it)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, ConnectionError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _http_client(timeout_s: float) -> Any:
    """The SDK's aiohttp transport: httpx's pool slows down with hundreds of connections
    (measured in bench/llm_client.py), aiohttp's does not."""
    try:
        return openai.DefaultAioHttpClient(timeout=timeout_s)
    except RuntimeError:  # the `aiohttp` extra is missing: fall back to httpx
        return None


def _to_result(response: dict[str, Any], endpoint: str, latency: float) -> ChatResult:
    """A chat-completion JSON object → :class:`ChatResult` (text tool calls parsed)."""
    choice = response["choices"][0]
    message = choice.get("message") or {}
    calls = [
        ToolCall(
            id=c.get("id") or f"call_{i}",
            function=FunctionCall(
                name=c["function"]["name"], arguments=c["function"].get("arguments") or "{}"
            ),
        )
        for i, c in enumerate(message.get("tool_calls") or [])
        if c.get("function")
    ]
    errors = native_call_errors(calls)
    content = message.get("content")
    if not calls:
        parsed = parse_tool_calls(content)
        content, calls, errors = parsed.content, parsed.calls, parsed.errors
    usage = response.get("usage") or {}
    finish = choice.get("finish_reason")
    if calls and finish == "stop":
        finish = "tool_calls"
    return ChatResult(
        content=content,
        tool_calls=calls,
        reasoning_content=message.get("reasoning_content"),
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
        ),
        latency_s=latency,
        model=response.get("model") or "",
        endpoint=endpoint,
        tool_call_errors=errors,
    )


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date);
    None when absent or unreadable, which leaves the wait to the usual backoff."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # neither a number nor an HTTP date ("soon")
        return None
    return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."
