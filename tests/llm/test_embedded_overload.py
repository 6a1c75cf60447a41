"""The embedded server under abandonment, a full queue and malformed requests.

Real model, real HTTP: a client that gives up frees its row at the next decoding step
(its tokens counted as abandoned), a full queue answers 429, and every malformed request
is a 400 that names what is wrong, never a 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from llm.embedded import EmbeddedServer
from llm.embedded.engine import EngineStats

pytestmark = pytest.mark.integration

LONG = {  # decoding is constrained to a long array: it cannot stop early on its own
    "type": "json_schema",
    "json_schema": {
        "name": "many",
        "schema": {"type": "array", "items": {"type": "integer"}, "minItems": 400},
    },
}


def long_request(**extra: Any) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "Numbers, please."}],
        "response_format": LONG,
        "max_tokens": 3000,
        "temperature": 0,
        **extra,
    }


@pytest.fixture(scope="module")
def narrow_server() -> Iterator[EmbeddedServer]:
    """One row decoded at a time and one waiting: the queue's edges are easy to reach."""
    with EmbeddedServer(max_batch=1, max_queue=1) as server:
        yield server


def stats(server: EmbeddedServer) -> EngineStats:
    """A snapshot of the engine's counters (the live object keeps changing)."""
    assert server.engine is not None
    return dataclasses.replace(server.engine.stats)


async def until(condition: Callable[[], bool], what: str, limit_s: float = 300) -> None:
    """Wait for ``condition``; ``limit_s`` only stops a hang, it is not a timing claim."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with session.post(
        f"{url}/chat/completions", data=data, headers={"Content-Type": "application/json"}
    ) as response:
        return response.status, await response.json(content_type=None)


async def test_a_client_that_gives_up_frees_its_row_and_its_tokens_are_counted(
    narrow_server: EmbeddedServer,
) -> None:
    before = stats(narrow_server)
    abandoned, tokens = before.rows_abandoned, before.tokens_generated
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(post(session, narrow_server.url, long_request()))
        await until(lambda: stats(narrow_server).tokens_generated > tokens + 5, "decoding")
        request.cancel()  # the client goes away mid-generation
        await until(lambda: stats(narrow_server).rows_abandoned == abandoned + 1, "abandoned")
        after = stats(narrow_server)
        assert after.tokens_abandoned - before.tokens_abandoned > 5
        # the engine is free again: a short request is served
        status, reply = await post(
            session,
            narrow_server.url,
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
        )
    assert status == 200 and reply["usage"]["completion_tokens"] <= 3


async def test_a_request_abandoned_while_queued_is_never_decoded(
    narrow_server: EmbeddedServer,
) -> None:
    engine = narrow_server.engine
    assert engine is not None
    before = stats(narrow_server)
    served, dropped = before.rows_served, before.rows_dropped_queued
    async with aiohttp.ClientSession() as session:
        running = asyncio.ensure_future(post(session, narrow_server.url, long_request()))
        await until(lambda: stats(narrow_server).rows_served == served + 1, "first decoding")
        waiting = asyncio.ensure_future(post(session, narrow_server.url, long_request(seed=1)))
        await until(lambda: engine.queued == 1, "second queued")
        # the queue holds one row: a third request is turned away with a 429
        status, reply = await post(session, narrow_server.url, long_request(seed=2))
        assert status == 429 and "queue is full" in reply["error"]["message"]
        gone = narrow_server.requests_abandoned
        waiting.cancel()
        await until(lambda: narrow_server.requests_abandoned == gone + 1, "server saw it go")
        running.cancel()
        await until(lambda: stats(narrow_server).rows_dropped_queued == dropped + 1, "dropped")
    assert stats(narrow_server).rows_served == served + 1  # the waiting row never ran
    assert stats(narrow_server).rows_refused == before.rows_refused + 1


def test_rows_that_leave_early_do_not_change_the_others_tokens(embedded_server) -> None:
    import openai

    sdk = openai.OpenAI(base_url=embedded_server.url, api_key="x")
    asks = [("Name three colours.", 4), ("Count to ten in words.", 30), ("Say hello.", 12)]

    def one(content: str, max_tokens: int) -> str | None:
        reply = sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": content}],
            temperature=0,
            max_tokens=max_tokens,
        )
        return reply.choices[0].message.content

    alone = [one(*ask) for ask in asks]

    async def together() -> list[str | None]:
        return await asyncio.gather(*(asyncio.to_thread(one, *ask) for ask in asks))

    batches = embedded_server.engine.batches
    assert asyncio.run(together()) == alone
    assert embedded_server.engine.batches - batches < len(asks)  # they did share a batch


DEEP = "[" * 100_000 + "]" * 100_000
USER = [{"role": "user", "content": "x"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
BAD_SCHEMA = {"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}
NESTED: dict[str, Any] = {"type": "object"}
for _ in range(200):
    NESTED = {"type": "object", "properties": {"a": NESTED}}

MALFORMED: dict[str, tuple[Any, str]] = {
    "not JSON": (b"\x89PNG\r\n\x1a\n\x00\xff", "not JSON"),
    "a list": ([1, 2], "invalid request"),
    "deeply nested body": (DEEP, "invalid request body"),
    "deeply nested field": (
        {"messages": USER, "metadata": json.loads("[" * 500 + "]" * 500)},
        "nested",
    ),
    "no messages": ({"messages": []}, "messages"),
    "unknown role": ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
    "content a number": ({"messages": [{"role": "user", "content": 5}]}, "content"),
    "tool call without function": (
        {"messages": [*USER, {"role": "assistant", "tool_calls": [{"id": "1"}]}]},
        "function",
    ),
    "tool without function": ({"messages": USER, "tools": [{"type": "function"}]}, "function"),
    "tool of another type": ({"messages": USER, "tools": [{"type": "retrieval"}]}, "type"),
    "tool with an invalid schema": ({"messages": USER, "tools": [BAD_SCHEMA]}, "schema"),
    "forced tool with an invalid schema": (
        {"messages": USER, "tools": [BAD_SCHEMA], "tool_choice": "required"},
        "schema",
    ),
    "tool schema nested too deep": (
        {
            "messages": USER,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": NESTED}}],
        },
        "nested",
    ),
    "tools named twice": ({"messages": USER, "tools": [TOOL, TOOL]}, "distinct"),
    "tool_choice naming no tool": (
        {
            "messages": USER,
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "g"}},
        },
        "not in tools",
    ),
    "tool_choice unknown": (
        {"messages": USER, "tools": [TOOL], "tool_choice": "always"},
        "tool_choice",
    ),
    "response_format unknown": (
        {"messages": USER, "response_format": {"type": "yaml"}},
        "response_format",
    ),
    "response_format invalid schema": (
        {
            "messages": USER,
            "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 3}}},
        },
        "schema",
    ),
    "negative temperature": ({"messages": USER, "temperature": -1}, "temperature"),
    "NaN temperature": (
        '{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
        "temperature",
    ),
    "infinite top_p": (
        '{"messages": [{"role": "user", "content": "x"}], "top_p": Infinity}',
        "top_p",
    ),
    "zero top_p": ({"messages": USER, "top_p": 0}, "top_p"),
    "n far above the batch": ({"messages": USER, "n": 1000}, "n"),
    "negative max_tokens": ({"messages": USER, "max_tokens": -5}, "max_tokens"),
    "max_tokens beyond the window": ({"messages": USER, "max_tokens": 10**9}, "context"),
    "seed beyond 64 bits": ({"messages": USER, "seed": 2**80}, "seed"),
    "empty stop string": ({"messages": USER, "stop": [""]}, "stop"),
    "too many stop strings": ({"messages": USER, "stop": ["a"] * 100}, "stop"),
    "prompt over the window": (
        {"messages": [{"role": "user", "content": "word " * 20000}]},
        "context",
    ),
    "streaming": ({"messages": USER, "stream": True}, "stream"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_request_is_a_400_naming_the_problem(embedded_server, case: str) -> None:
    body, mentions = MALFORMED[case]
    served = embedded_server.engine.rows_served
    async with aiohttp.ClientSession() as session:
        status, reply = await post(session, embedded_server.url, body)
    assert status == 400, reply
    assert mentions in reply["error"]["message"]
    assert embedded_server.engine.rows_served == served  # nothing was queued


async def test_n_beyond_what_the_queue_can_ever_hold_is_a_400_not_a_429(
    narrow_server: EmbeddedServer,
) -> None:
    served = stats(narrow_server).rows_served
    async with aiohttp.ClientSession() as session:
        status, reply = await post(session, narrow_server.url, {"messages": USER, "n": 2})
    assert status == 400 and "n=2 can never be served" in reply["error"]["message"]
    assert stats(narrow_server).rows_served == served


async def test_health_reports_the_prefix_cache(embedded_server) -> None:
    async with aiohttp.ClientSession() as session:
        long_user = [{"role": "user", "content": "Tell me about the sea. " * 20}]
        for _ in range(2):  # the second prompt's prefix is the first's
            status, _ = await post(
                session, embedded_server.url, {"messages": long_user, "max_tokens": 2}
            )
            assert status == 200
        health_url = f"http://{embedded_server.host}:{embedded_server.port}/health"
        async with session.get(health_url) as response:
            health = await response.json()
    cache = health["prefix_cache"]
    assert cache["blocks"] > 0 and cache["bytes"] > 0 and 0 < cache["hit_rate"] < 1
    assert cache["hit_tokens"] > 0
