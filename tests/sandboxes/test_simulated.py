"""The LLM tool simulator against the scripted endpoint: state, history, seeded failures."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from llm import ChatClient, FunctionCall, ToolCall
from llm.testing import ScriptedEndpoint
from sandboxes.simulated import SimulatedEnvironment
from tool_registry import ToolSpec

TOOLS = [
    ToolSpec(
        name="add_item",
        description="Add an item to the cart.",
        parameters={
            "type": "object",
            "properties": {"sku": {"type": "string"}},
            "required": ["sku"],
        },
    ),
    ToolSpec(
        name="view_cart",
        description="Show the cart.",
        parameters={"type": "object", "properties": {}},
    ),
]


def world(request: dict[str, Any]) -> str:
    """A scripted world model: keeps a cart in the state it is shown."""
    prompt = request["messages"][-1]["content"]
    state = json.loads(re.search(r"## Current state \(JSON\)\n(.*)\n", prompt).group(1))
    call = re.search(r"## The call to answer\n(\w+)\((.*)\)", prompt)
    cart = state.get("cart", [])
    if call.group(1) == "add_item":
        cart = [*cart, json.loads(call.group(2))["sku"]]
        return json.dumps(
            {"result": {"added": True, "items": len(cart)}, "state_update": {"cart": cart}}
        )
    return json.dumps({"result": {"cart": cart}, "state_update": {}})


def tc(name: str, arguments: dict | str) -> ToolCall:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(id="c", function=FunctionCall(name=name, arguments=raw))


async def test_state_persists_across_calls_and_the_model_sees_it() -> None:
    async with ScriptedEndpoint(world) as server, ChatClient(server.endpoint()) as client:
        env = SimulatedEnvironment(TOOLS, client)
        await env.reset({"initial_state": {"cart": ["apple"]}})
        await env.call(tc("add_item", {"sku": "pear"}))
        reply = await env.call(tc("view_cart", {}))
    assert json.loads(reply.content) == {"cart": ["apple", "pear"]}
    assert await env.state() == {"cart": ["apple", "pear"]}
    assert 'add_item({"sku": "pear"})' in server.requests[1]["messages"][0]["content"]


async def test_invalid_arguments_never_reach_the_model() -> None:
    async with ScriptedEndpoint(world) as server, ChatClient(server.endpoint()) as client:
        env = SimulatedEnvironment(TOOLS, client)
        await env.reset()
        reply = await env.call(tc("add_item", {"sku": 7}))
    assert reply.content.startswith("error: invalid arguments for add_item: sku: 7 is not of type")
    assert server.requests == []


async def test_failures_are_injected_at_the_configured_rate_and_replay_with_the_seed() -> None:
    rates = {"timeout": 0.1, "not_found": 0.1, "rate_limited": 0.1}

    async def episode(seed: int) -> list[str]:
        async with ScriptedEndpoint(world) as server, ChatClient(server.endpoint()) as client:
            env = SimulatedEnvironment(TOOLS, client, failure_rates=rates, seed=seed)
            await env.reset({"id": "ep-1"})
            return [(await env.call(tc("view_cart", {}))).content for _ in range(200)]

    first, again, other = await episode(3), await episode(3), await episode(4)
    errors = sum(c.startswith("error:") for c in first)
    assert 0.2 <= errors / 200 <= 0.4
    assert first == again and first != other
    assert any("timeout" in c for c in first) and any("rate limited" in c for c in first)


@pytest.mark.integration
async def test_the_simulator_runs_on_the_embedded_endpoint(embedded_server) -> None:
    async with ChatClient(embedded_server.endpoint()) as client:
        env = SimulatedEnvironment(TOOLS, client, max_tokens=120)
        await env.reset({"initial_state": {"cart": []}})
        reply = await env.call(tc("add_item", {"sku": "pear"}))
    assert reply.role == "tool" and reply.content
    assert isinstance(await env.state(), dict) and len(env.records) == 1
