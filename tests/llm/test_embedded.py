"""The embedded SmolLM2 endpoint through the real openai SDK and our client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from llm.client import ChatClient
from llm.demo import TOOLS, conversation
from llm.embedded import EmbeddedServer
from llm.types import Message

pytestmark = pytest.mark.integration


class City(BaseModel):
    city: str
    country: str
    population: int


def test_models_lists_the_embedded_model(embedded_server) -> None:
    sdk = openai.OpenAI(base_url=embedded_server.url, api_key="x")
    assert [m.id for m in sdk.models.list().data] == ["smollm2-135m-instruct"]


def test_tool_call_round_trip_through_the_openai_sdk(embedded_server) -> None:
    sdk = openai.OpenAI(base_url=embedded_server.url, api_key="x")
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = sdk.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=messages,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        seed=1,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), TOOLS[0]["function"]["parameters"])
    messages += [
        choice.message.model_dump(exclude_none=True),
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": '{"celsius": 18, "conditions": "rain"}',
        },
    ]
    second = sdk.chat.completions.create(
        model="smollm2-135m-instruct", messages=messages, tools=TOOLS, max_tokens=40, seed=2
    )
    assert second.choices[0].message.content or second.choices[0].message.tool_calls
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


def describe_lima(url: str, schema: dict[str, Any], **sampling: Any) -> Any:
    """Ask for Lima as JSON valid for ``schema`` (``response_format``), through the SDK."""
    sdk = openai.OpenAI(base_url=url, api_key="x")
    return sdk.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Describe Lima as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "Lima", "schema": schema}},
        **sampling,
    )


def test_json_schema_reply_is_schema_valid(embedded_server) -> None:
    reply = describe_lima(embedded_server.url, City.model_json_schema(), max_tokens=120, seed=3)
    City.model_validate_json(reply.choices[0].message.content)


async def test_complete_json_and_concurrent_requests_are_batched(embedded_server) -> None:
    before = embedded_server.engine.batches
    async with ChatClient(embedded_server.endpoint()) as client:
        results = await asyncio.gather(
            *(
                client.complete_json(
                    [Message(role="user", content=f"A city number {i} as JSON.")],
                    City,
                    max_tokens=80,
                    seed=i,
                )
                for i in range(6)
            )
        )
    assert all(isinstance(r, City) for r in results)
    assert embedded_server.engine.batches - before < 6  # some requests shared a batch


def test_sampling_parameters_are_honoured(embedded_server) -> None:
    sdk = openai.OpenAI(base_url=embedded_server.url, api_key="x")
    ask = [{"role": "user", "content": "Count from one to twenty in words."}]

    def create(**kw):
        return sdk.chat.completions.create(model="m", messages=ask, **kw)

    a = create(temperature=1.0, seed=7, max_tokens=12, n=2)
    b = create(temperature=1.0, seed=7, max_tokens=12, n=2)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert len(a.choices) == 2 and a.usage.completion_tokens <= 24
    short = create(temperature=0, max_tokens=5)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 5
    stopped = create(temperature=0, max_tokens=60, stop=["three"])
    assert "three" not in stopped.choices[0].message.content


@pytest.fixture(scope="module")
def resampling_server() -> Iterator[EmbeddedServer]:
    """Validates JSON answers and resamples once (json_mode="retry") instead of constraining."""
    with EmbeddedServer(max_batch=8, json_mode="retry", json_retries=1) as server:
        yield server


def resampled(server: EmbeddedServer, seed: int | None) -> list[str | None]:
    """Four answers, each resampled: nothing validates against ``{"not": {}}``."""
    reply = describe_lima(server.url, {"not": {}}, temperature=1.0, max_tokens=16, n=4, seed=seed)
    return [c.message.content for c in reply.choices]


def test_resamples_without_a_seed_are_fresh_draws(resampling_server: EmbeddedServer) -> None:
    assert len(set(resampled(resampling_server, None))) > 1


def test_resamples_with_a_seed_are_repeatable(resampling_server: EmbeddedServer) -> None:
    assert resampled(resampling_server, 11) == resampled(resampling_server, 11)


def test_bad_requests_get_a_400_with_the_field(embedded_server) -> None:
    sdk = openai.OpenAI(base_url=embedded_server.url, api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], temperature=5
        )
    with pytest.raises(openai.BadRequestError, match="not in tools"):
        sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "launch_rockets"}},
        )


async def test_demo_conversation_executes_a_tool(embedded_server) -> None:
    messages = await conversation(embedded_server.endpoint(), "Weather in Tokyo in Fahrenheit?")
    assert messages[2].tool_calls
    tool_results = [m for m in messages if m.role == "tool"]
    assert tool_results and tool_results[0].tool_call_id == messages[2].tool_calls[0].id
