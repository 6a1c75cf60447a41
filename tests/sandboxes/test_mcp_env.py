"""MCP environments over real server processes."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from llm import FunctionCall, ToolCall
from sandboxes.base import SandboxError
from sandboxes.mcp_env import MCPEnvironment

FRAGILE = [sys.executable, str(Path(__file__).resolve().parent / "fixtures" / "fragile_server.py")]
pytestmark = pytest.mark.integration


def tc(name: str, arguments: dict) -> ToolCall:
    return ToolCall(id="c", function=FunctionCall(name=name, arguments=json.dumps(arguments)))


async def test_the_time_server_answers_a_call() -> None:
    command = shutil.which("mcp-server-time") or str(
        Path(sys.executable).parent / "mcp-server-time"
    )
    env = MCPEnvironment([command])
    try:
        await env.reset()
        reply = await env.call(tc("get_current_time", {"timezone": "Etc/UTC"}))
    finally:
        await env.close()
    assert json.loads(reply.content)["timezone"] == "Etc/UTC"


async def test_tool_errors_and_bad_arguments_are_messages() -> None:
    env = MCPEnvironment(FRAGILE)
    try:
        observation = await env.reset()
        assert "echo" in observation
        assert (await env.call(tc("echo", {"text": "hi"}))).content == "hi"
        failed = await env.call(tc("fail", {"reason": "disk full"}))
        invalid = await env.call(tc("echo", {"text": 5}))
    finally:
        await env.close()
    assert failed.content.startswith("error:") and "disk full" in failed.content
    assert invalid.content.startswith("error: invalid arguments for echo")
    assert env.calls == 2  # the invalid call never reached the server


async def test_a_crashed_server_fails_the_episode_and_the_next_one_starts_clean() -> None:
    env = MCPEnvironment(FRAGILE, timeout_s=10)
    try:
        await env.reset()
        with pytest.raises(SandboxError):
            await env.call(tc("die", {}))
        await env.reset()
        assert (await env.call(tc("echo", {"text": "again"}))).content == "again"
    finally:
        await env.close()
