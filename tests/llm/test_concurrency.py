"""The adaptive concurrency bound and the retry deadline, against the scripted endpoint."""

from __future__ import annotations

import asyncio

import pytest

from llm.client import ChatClient
from llm.concurrency import AdaptiveLimit, Outcome
from llm.errors import ProviderError
from llm.testing import Faults, ScriptedEndpoint
from llm.types import Message

USER = [Message(role="user", content="hi")]


async def test_an_overload_halves_the_bound_once_per_round() -> None:
    limit = AdaptiveLimit(16)
    tickets = [await limit.acquire() for _ in range(8)]
    for ticket in tickets:  # eight answers to the same round all say "overloaded"
        await limit.release(ticket, Outcome.OVERLOAD)
    assert (limit.bound, limit.decreases) == (8, 1)
    await limit.release(await limit.acquire(), Outcome.SLOW)  # sent under the new bound
    assert (limit.bound, limit.decreases, limit.lowest) == (4, 2, 4)


async def test_the_bound_stays_between_its_minimum_and_maximum() -> None:
    limit = AdaptiveLimit(4, minimum=2)
    for _ in range(10):
        await limit.release(await limit.acquire(), Outcome.OVERLOAD)
    assert limit.bound == 2
    for _ in range(200):
        await limit.release(await limit.acquire(), Outcome.OK)
    assert limit.bound == 4


async def test_quick_answers_raise_the_bound_by_about_one_per_round() -> None:
    limit = AdaptiveLimit(16)
    await limit.release(await limit.acquire(), Outcome.OVERLOAD)
    await limit.release(await limit.acquire(), Outcome.OVERLOAD)
    assert limit.bound == 4
    for _ in range(5):  # a round: about as many answers as the bound
        await limit.release(await limit.acquire(), Outcome.OK)
    assert limit.bound == 4 + 1
    await limit.release(await limit.acquire(), Outcome.OTHER)  # says nothing of load
    assert limit.bound == 5


async def test_requests_wait_for_the_lowered_bound() -> None:
    limit = AdaptiveLimit(2)
    first = await limit.acquire()
    await limit.release(await limit.acquire(), Outcome.OVERLOAD)  # bound 2 -> 1
    third = asyncio.ensure_future(limit.acquire())
    await asyncio.sleep(0.05)
    assert not third.done()  # one in flight already, and the bound is now one
    await limit.release(first, Outcome.OK)
    await asyncio.wait_for(third, 10)
    assert limit.in_flight == 1


def test_a_fixed_bound_never_moves() -> None:
    async def main() -> AdaptiveLimit:
        limit = AdaptiveLimit(8, adaptive=False)
        for _ in range(5):
            await limit.release(await limit.acquire(), Outcome.OVERLOAD)
        return limit

    limit = asyncio.run(main())
    assert (limit.bound, limit.decreases) == (8, 0)
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveLimit(2, minimum=3)


async def test_timeouts_stop_being_retried_at_the_deadline() -> None:
    faults = Faults(rates={"timeout": 1.0}, hang_s=30)
    async with ScriptedEndpoint(faults=faults) as server:
        endpoint = server.endpoint(
            timeout_s=0.3, deadline_s=0.8, max_retries=20, backoff_base_s=0.01
        )
        async with ChatClient(endpoint) as client:
            with pytest.raises(ProviderError, match="deadline ran out") as caught:
                await client.chat(USER)
    # every try waits out its 0.3 s timeout, so at most three fit in 0.8 s
    assert caught.value.attempts <= 3
    assert server.outcomes["timeout"] == caught.value.attempts
    assert client.usage.timeouts == caught.value.attempts


async def test_no_try_outlives_the_deadline() -> None:
    faults = Faults(rates={"timeout": 1.0}, hang_s=30)
    async with ScriptedEndpoint(faults=faults) as server:
        endpoint = server.endpoint(timeout_s=60, deadline_s=0.5, max_retries=5)
        async with ChatClient(endpoint) as client:
            with pytest.raises(ProviderError, match="deadline ran out") as caught:
                await client.chat(USER)
    # the one try was cut at the deadline, not at its own 60 s timeout
    assert caught.value.attempts == 1
    assert client.usage.timeouts == 1


def queued_server(**kw: object) -> ScriptedEndpoint:
    """Two answers at a time, 0.4 s each: sixteen requests at once queue up past 1 s."""
    return ScriptedEndpoint(capacity=2, over_capacity="wait", latency_s=0.4, **kw)  # type: ignore[arg-type]


async def test_timeouts_lower_the_requests_in_flight_and_every_request_completes() -> None:
    async with queued_server() as server:
        endpoint = server.endpoint(
            max_concurrency=16, timeout_s=1.0, deadline_s=120, max_retries=30, backoff_base_s=0.05
        )
        async with ChatClient(endpoint) as client:
            results = await asyncio.gather(*(client.chat(USER) for _ in range(16)))
    assert [r.content for r in results] == ["ok"] * 16
    assert client.usage.timeouts >= 1
    assert client.concurrency.decreases >= 1 and client.concurrency.lowest < 16


async def test_without_adaptation_the_client_keeps_its_bound() -> None:
    async with queued_server() as server:
        endpoint = server.endpoint(
            max_concurrency=16,
            timeout_s=1.0,
            deadline_s=120,
            max_retries=30,
            backoff_base_s=0.05,
            adaptive_concurrency=False,
        )
        async with ChatClient(endpoint) as client:
            await asyncio.gather(*(client.chat(USER) for _ in range(16)))
    assert client.usage.timeouts >= 1
    assert client.concurrency.lowest == 16
