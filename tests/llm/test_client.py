"""ChatClient against the scripted endpoint: real HTTP on loopback, real openai SDK."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web
from pydantic import BaseModel

from llm.client import ChatClient
from llm.endpoints import local_endpoint
from llm.errors import ProviderError, StructuredOutputError
from llm.loopback import LoopbackServer
from llm.testing import Faults, Reply, Rule, Script, ScriptedEndpoint, call
from llm.types import Message

USER = [Message(role="user", content="hi")]


async def test_plain_reply_carries_usage_and_latency() -> None:
    async with ScriptedEndpoint(["hello there"], latency_s=0.05) as server:
        async with ChatClient(server.endpoint()) as client:
            result = await client.chat(USER)
    assert result.content == "hello there"
    assert result.finish_reason == "stop"
    assert result.usage.completion_tokens == 2
    assert result.latency_s >= 0.05
    assert server.requests[0]["messages"] == [{"role": "user", "content": "hi"}]


async def test_retries_5xx_then_succeeds() -> None:
    faults = Faults(schedule=["500", "500"])
    async with ScriptedEndpoint(["fine"], faults=faults) as server:
        async with ChatClient(server.endpoint(max_retries=3)) as client:
            result = await client.chat(USER)
    assert result.content == "fine"
    assert client.usage.retries == 2
    assert server.outcomes == {"500": 2, "ok": 1}


async def test_retry_after_is_honoured() -> None:
    faults = Faults(schedule=["429"], retry_after_s=0.6)
    async with ScriptedEndpoint(["late"], faults=faults) as server:
        endpoint = server.endpoint(max_retries=2, backoff_base_s=0.0)
        async with ChatClient(endpoint) as client:
            started = time.perf_counter()
            result = await client.chat(USER)
            waited = time.perf_counter() - started
    assert result.content == "late"
    assert waited >= 0.6


class RateLimitedOnce(LoopbackServer):
    """Answers the first request 429 with ``retry_after`` as its Retry-After header (which the
    scripted endpoint only writes as a number), then "ok"."""

    def __init__(self, retry_after: str) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.arrivals = 0

    async def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _chat(self, request: web.Request) -> web.Response:
        self.arrivals += 1
        if self.arrivals == 1:
            error = {"error": {"message": "rate limited"}}
            return web.json_response(error, status=429, headers={"Retry-After": self.retry_after})
        message = {"role": "assistant", "content": "ok"}
        return web.json_response(
            {"model": "m", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        )


async def test_an_unreadable_retry_after_falls_back_to_backoff() -> None:
    async with RateLimitedOnce("soon") as server:
        endpoint = local_endpoint(server.url, name="odd", model="m", backoff_base_s=0.01)
        async with ChatClient(endpoint) as client:
            result = await client.chat(USER)
    assert result.content == "ok"
    assert server.arrivals == 2 and client.usage.retries == 1


async def test_backoff_grows_exponentially_without_retry_after() -> None:
    faults = Faults(schedule=["429", "429", "429"], retry_after_s=None)
    async with ScriptedEndpoint(["ok"], faults=faults) as server:
        endpoint = server.endpoint(max_retries=3, backoff_base_s=0.2, backoff_max_s=5)
        client = ChatClient(endpoint)
        sleeps = [client.backoff_s(attempt) for attempt in (1, 2, 3) for _ in range(200)]
        result = await client.chat(USER)
        await client.aclose()
    assert result.content == "ok"
    assert max(sleeps[:200]) <= 0.2 and max(sleeps[400:]) <= 0.8
    assert max(sleeps[400:]) > 0.4  # the third retry may wait past the second's ceiling


async def test_gives_up_with_a_clear_error_naming_endpoint_model_and_status() -> None:
    faults = Faults(rates={"500": 1.0})
    async with ScriptedEndpoint(faults=faults, model="m-1") as server:
        async with ChatClient(server.endpoint(max_retries=2)) as client:
            with pytest.raises(ProviderError) as info:
                await client.chat(USER)
    message = str(info.value)
    assert "'scripted'" in message and "m-1" in message and "status 500" in message
    assert "3 tries" in message and "\n" not in message
    assert info.value.status == 500 and client.usage.failures == 1


async def test_timeouts_truncated_and_malformed_bodies_are_retried() -> None:
    faults = Faults(schedule=["timeout", "truncated", "malformed_json"], hang_s=5)
    async with ScriptedEndpoint(["survived"], faults=faults) as server:
        async with ChatClient(server.endpoint(max_retries=3, timeout_s=0.5)) as client:
            result = await client.chat(USER)
    assert result.content == "survived"
    assert client.usage.retries == 3
    assert server.outcomes["truncated"] == 1 and server.outcomes["malformed_json"] == 1


async def test_client_errors_are_not_retried() -> None:
    async with ScriptedEndpoint(Script()) as server:  # empty script answers 400
        async with ChatClient(server.endpoint(max_retries=3)) as client:
            with pytest.raises(ProviderError, match="status 400"):
                await client.chat(USER)
    assert len(server.requests) == 1


async def test_a_client_error_after_retries_reports_every_attempt_and_counts_a_failure() -> None:
    faults = Faults(schedule=["500"])
    async with ScriptedEndpoint(Script(), faults=faults) as server:  # then 400: no reply
        async with ChatClient(server.endpoint(max_retries=3)) as client:
            with pytest.raises(ProviderError, match="status 400") as info:
                await client.chat(USER)
    assert info.value.attempts == 2 and len(server.requests) == 2
    assert client.usage.retries == 1 and client.usage.failures == 1


async def test_concurrency_is_bounded_per_endpoint() -> None:
    async with ScriptedEndpoint(latency_s=0.1) as server:
        async with ChatClient(server.endpoint(max_concurrency=3)) as client:
            await asyncio.gather(*(client.chat(USER) for _ in range(12)))
    assert server.max_in_flight == 3
    assert len(server.requests) == 12


async def test_native_tool_calls_are_returned_and_bad_arguments_reported() -> None:
    reply = Reply(tool_calls=[call("get_weather", {"city": "Paris"}), call("broken", "{oops")])
    async with ScriptedEndpoint([reply]) as server:
        async with ChatClient(server.endpoint()) as client:
            tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
            result = await client.chat(USER, tools=tools)
    assert [c.function.name for c in result.tool_calls] == ["get_weather", "broken"]
    assert result.tool_calls[0].function.parsed_arguments() == {"city": "Paris"}
    assert result.finish_reason == "tool_calls"
    assert len(result.tool_call_errors) == 1 and result.tool_call_errors[0].format == "openai"
    assert server.requests[0]["tools"] == tools


async def test_hermes_text_tool_calls_are_parsed() -> None:
    text = 'Let me check.\n<tool_call>\n{"name": "lookup", "arguments": {"q": "x"}}\n</tool_call>'
    async with ScriptedEndpoint([text]) as server:
        async with ChatClient(server.endpoint()) as client:
            result = await client.chat(USER)
    assert result.content == "Let me check."
    assert result.tool_calls[0].function.name == "lookup"
    assert json.loads(result.tool_calls[0].function.arguments) == {"q": "x"}
    assert result.finish_reason == "tool_calls"


async def test_k2_native_tool_calls_are_parsed() -> None:
    text = (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
        '<|tool_call_argument_begin|>{"city": "Beijing"}<|tool_call_end|>'
        "<|tool_call_begin|>functions.get_time:1<|tool_call_argument_begin|>{}<|tool_call_end|>"
        "<|tool_calls_section_end|>"
    )
    async with ScriptedEndpoint([text]) as server:
        async with ChatClient(server.endpoint()) as client:
            result = await client.chat(USER)
    assert [c.function.name for c in result.tool_calls] == ["get_weather", "get_time"]
    assert [c.id for c in result.tool_calls] == ["functions.get_weather:0", "functions.get_time:1"]
    assert result.content is None


async def test_malformed_text_tool_call_is_a_parse_error_not_an_exception() -> None:
    text = '<tool_call>{"name": "f", "arguments": {"x": </tool_call>'
    async with ScriptedEndpoint([text]) as server:
        async with ChatClient(server.endpoint()) as client:
            result = await client.chat(USER)
    assert result.tool_calls == []
    assert result.tool_call_errors[0].format == "hermes"
    assert "invalid JSON" in result.tool_call_errors[0].error


async def test_reasoning_content_round_trips_across_a_tool_turn() -> None:
    first = Reply(reasoning_content="I should look it up.", tool_calls=[call("lookup", {"q": "x"})])
    async with ScriptedEndpoint([first, "done"]) as server:
        async with ChatClient(server.endpoint()) as client:
            result = await client.chat(USER)
            assert result.reasoning_content == "I should look it up."
            history = [
                *USER,
                result.to_message(),
                Message(role="tool", tool_call_id=result.tool_calls[0].id, content="42"),
            ]
            await client.chat(history)
    sent = server.requests[1]["messages"]
    assert sent[1]["reasoning_content"] == "I should look it up."
    assert sent[1]["tool_calls"][0]["function"]["name"] == "lookup"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_lookup", "content": "42"}


class Answer(BaseModel):
    city: str
    population: int


async def test_complete_json_uses_response_format_where_supported() -> None:
    async with ScriptedEndpoint(['{"city": "Oslo", "population": 700000}']) as server:
        async with ChatClient(server.endpoint()) as client:
            answer = await client.complete_json(USER, Answer)
    assert answer == Answer(city="Oslo", population=700000)
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == [
        "city",
        "population",
    ]


async def test_complete_json_repairs_invalid_answers_with_the_errors() -> None:
    replies = ['{"city": "Oslo"}', '```json\n{"city": "Oslo", "population": 7}\n```']
    async with ScriptedEndpoint(replies, json_schema=False) as server:
        async with ChatClient(server.endpoint()) as client:
            answer = await client.complete_json(USER, Answer)
    assert answer.population == 7
    assert "response_format" not in server.requests[0]
    assert "JSON Schema" in server.requests[0]["messages"][0]["content"]
    repair = server.requests[1]["messages"][-1]["content"]
    assert "population" in repair and "Field required" in repair


async def test_complete_json_falls_back_when_the_endpoint_rejects_response_format() -> None:
    server = ScriptedEndpoint(['{"city": "Rome", "population": 3}'], json_schema=False)
    async with server:
        async with ChatClient(server.endpoint(json_schema=True)) as client:
            answer = await client.complete_json(USER, Answer)
            server.script.replies.append('{"city": "Oslo", "population": 1}')
            await client.complete_json(USER, Answer)  # remembered: straight to the prompt
    assert answer.city == "Rome"
    assert "response_format" in server.requests[0] and "response_format" not in server.requests[1]
    assert len(server.requests) == 3 and "response_format" not in server.requests[2]


async def test_complete_json_surfaces_an_unrelated_400_and_keeps_response_format() -> None:
    async with ScriptedEndpoint(Script()) as server:  # nothing scripted yet: a plain 400
        async with ChatClient(server.endpoint()) as client:
            with pytest.raises(ProviderError, match="status 400"):
                await client.complete_json(USER, Answer)
            server.script.replies.append('{"city": "Oslo", "population": 1}')
            await client.complete_json(USER, Answer)
    assert len(server.requests) == 2
    assert all("response_format" in r for r in server.requests)


async def test_complete_json_gives_up_with_the_last_text() -> None:
    async with ScriptedEndpoint(Script(default="not json at all")) as server:
        async with ChatClient(server.endpoint()) as client:
            with pytest.raises(StructuredOutputError) as info:
                await client.complete_json(USER, Answer, max_repairs=1)
    assert info.value.last_text == "not json at all"
    assert len(server.requests) == 2


async def test_cache_replays_instead_of_paying_again(tmp_path) -> None:
    async with ScriptedEndpoint(["first answer", "second answer"]) as server:
        async with ChatClient(server.endpoint(), cache_dir=tmp_path) as client:
            one = await client.chat(USER, temperature=0)
        async with ChatClient(server.endpoint(), cache_dir=tmp_path) as client:
            two = await client.chat(USER, temperature=0)
            other = await client.chat(USER, temperature=0.5)
    assert one.content == two.content == "first answer" and two.cached
    assert other.content == "second answer"
    assert len(server.requests) == 2


async def test_cost_is_accounted_from_the_price_table() -> None:
    script = Script(default=Reply(content="x", usage=(1_000_000, 500_000)))
    async with ScriptedEndpoint(script) as server:
        endpoint = server.endpoint()
        endpoint.price.input_per_mtok, endpoint.price.output_per_mtok = 0.6, 2.5
        async with ChatClient(endpoint) as client:
            await client.chat(USER)
            await client.chat(USER)
    assert client.usage.prompt_tokens == 2_000_000
    assert client.usage.completion_tokens == 1_000_000
    assert client.usage.cost_usd == pytest.approx(2 * 0.6 + 2.5)


async def test_rules_match_on_request_content() -> None:
    script = Script(rules=[Rule(r"weather", "sunny"), Rule(r"time", "noon", times=1)], default="?")
    async with ScriptedEndpoint(script) as server:
        async with ChatClient(server.endpoint()) as client:
            answers = [
                (await client.chat([Message(role="user", content=q)])).content
                for q in ("the weather?", "the time?", "the time?")
            ]
    assert answers == ["sunny", "noon", "?"]


async def test_over_capacity_requests_get_429_and_the_client_rides_it_out() -> None:
    server = ScriptedEndpoint(latency_s=0.1, capacity=2, over_capacity="429")
    async with server:
        async with ChatClient(server.endpoint(max_concurrency=6, max_retries=20)) as client:
            results = await asyncio.gather(*(client.chat(USER) for _ in range(6)))
    assert [r.content for r in results] == ["ok"] * 6
    assert server.outcomes["429"] >= 1 and server.outcomes["ok"] == 6
    assert server.max_in_flight == 2


async def test_seeded_fault_rates_are_injected_at_the_configured_rate() -> None:
    faults = Faults(rates={"500": 0.2, "429": 0.1}, seed=7, retry_after_s=0.0)
    async with ScriptedEndpoint(faults=faults) as server:
        async with ChatClient(server.endpoint(max_retries=10, backoff_base_s=0.0)) as client:
            for _ in range(100):
                await client.chat(USER)
    arrivals = len(server.requests)
    assert server.outcomes["ok"] == 100
    assert 0.12 <= server.outcomes["500"] / arrivals <= 0.28
    assert 0.04 <= server.outcomes["429"] / arrivals <= 0.16
