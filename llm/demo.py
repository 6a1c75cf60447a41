"""A tool-calling conversation: the user asks, the agent calls real Python tools, answers.

``python -m llm demo`` runs it on any endpoint. It exercises the whole ``llm`` layer end
to end (endpoint, client, tool rendering and parsing, the tool-result turn) and writes the
transcript as OpenAI messages. The tools are small and
deterministic on purpose; environments proper live in ``sandboxes``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm.client import ChatClient
from llm.endpoints import Endpoint
from llm.types import Message

WEATHER = {"paris": (18.0, "light rain"), "tokyo": (24.5, "sunny"), "oslo": (6.0, "overcast")}

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city: temperature in Celsius and conditions.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "celsius_to_fahrenheit",
            "description": "Convert a temperature from Celsius to Fahrenheit.",
            "parameters": {
                "type": "object",
                "properties": {"celsius": {"type": "number"}},
                "required": ["celsius"],
            },
        },
    },
]


def run_tool(name: str, arguments: str) -> str:
    """Execute one tool call; bad calls become an error string for the agent, never a crash."""
    try:
        args = json.loads(arguments or "{}")
        if name == "get_weather":
            city = str(args["city"]).strip().lower()
            if city not in WEATHER:
                return json.dumps(
                    {"error": f"unknown city {args['city']!r}; try {sorted(WEATHER)}"}
                )
            celsius, conditions = WEATHER[city]
            return json.dumps({"city": args["city"], "celsius": celsius, "conditions": conditions})
        if name == "celsius_to_fahrenheit":
            return json.dumps({"fahrenheit": round(float(args["celsius"]) * 9 / 5 + 32, 1)})
        return json.dumps({"error": f"no tool named {name!r}"})
    except (KeyError, ValueError, TypeError) as exc:
        return json.dumps({"error": f"bad arguments for {name}: {exc}"})


async def conversation(
    endpoint: Endpoint, question: str, *, max_turns: int = 4, seed: int = 0
) -> list[Message]:
    """Run the agent loop until it answers without calling a tool (or turns run out)."""
    messages = [
        Message(role="system", content="You are a concise assistant. Use the tools to answer."),
        Message(role="user", content=question),
    ]
    async with ChatClient(endpoint) as client:
        for turn in range(max_turns):
            # The first turn must call a tool: small models otherwise answer from thin air.
            result = await client.chat(
                messages,
                tools=TOOLS,
                tool_choice="required" if turn == 0 else "auto",
                max_tokens=160,
                seed=seed + turn,
            )
            messages.append(result.to_message())
            if not result.tool_calls:
                break
            for call in result.tool_calls:
                output = run_tool(call.function.name, call.function.arguments)
                messages.append(Message(role="tool", tool_call_id=call.id, content=output))
    return messages


def save_transcript(messages: list[Message], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"tools": TOOLS, "messages": [m.to_openai() for m in messages]}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    return path
