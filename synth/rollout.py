"""One roll-out: the simulated user ⇄ the agent ⇄ the environment, every message recorded.

The agent gets the tools natively (``tools=``); each tool call goes to the environment,
whose answer (or tool error) goes back as a ``tool`` message. The agent's turn ends when
it replies without tool calls; then the user answers, until the user is satisfied or
stuck, or the turn or tool-call budget runs out. Malformed tool calls and tool errors
stay in the trajectory (they are data); an endpoint or environment that fails for good
ends the roll-out with ``stop_reason = "error: ..."`` and the partial trajectory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from llm import ChatClient, LLMError, Message
from sandboxes.base import Environment, SandboxError
from synth.schema import AgentSpec, TaskSpec, Trajectory
from synth.user import UserSimulator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_turns: int = 4
    max_tool_calls: int = 8
    max_tokens: int = 512
    first_tool_choice: str = "auto"


@dataclass
class _Episode:
    messages: list[dict[str, Any]]
    turns: int = 1
    tool_calls: int = 0
    tool_errors: int = 0
    agent_replies: int = 0
    length_stops: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


async def roll_out(
    task: TaskSpec,
    agent: AgentSpec,
    env: Environment,
    agent_client: ChatClient,
    user: UserSimulator,
    limits: Limits = Limits(),
    seed: int = 0,
) -> Trajectory:
    """Play ``task`` to the end and return the trajectory (never raises for one bad episode)."""
    episode = _Episode(
        messages=[
            {"role": "system", "content": agent.system_prompt},
            {"role": "user", "content": user.opening()},
        ]
    )
    try:
        await env.reset({"id": task.id, "initial_state": task.initial_state})
        stop = await _converse(episode, agent, env, agent_client, user, limits, seed)
        final_state = await env.final_state()
    except (LLMError, SandboxError) as exc:
        stop, final_state = f"error: {type(exc).__name__}: {exc}"[:500], {}
    finally:
        await env.close()
    price = agent_client.endpoint.price
    return Trajectory(
        task_id=task.id,
        agent_id=agent.id,
        messages=episode.messages,
        tools=agent.openai_tools(),
        final_state=final_state,
        turns=episode.turns,
        tool_calls=episode.tool_calls,
        tool_errors=episode.tool_errors,
        stop_reason=stop,
        length_stops=episode.length_stops,
        usage={
            "agent": {
                "requests": episode.agent_replies,
                "prompt_tokens": episode.prompt_tokens,
                "completion_tokens": episode.completion_tokens,
                "cost_usd": price.cost(episode.prompt_tokens, episode.completion_tokens),
            }
        },
    )


async def _converse(
    episode: _Episode,
    agent: AgentSpec,
    env: Environment,
    client: ChatClient,
    user: UserSimulator,
    limits: Limits,
    seed: int,
) -> str:
    while True:
        stop = await _agent_turn(episode, agent, env, client, limits, seed)
        if stop:
            return stop
        if episode.turns >= limits.max_turns:
            return "max_turns"
        turn = await user.reply(episode.messages)
        if turn.status != "continue":
            return f"user_{turn.status}"
        episode.messages.append({"role": "user", "content": turn.message})
        episode.turns += 1


async def _agent_turn(
    episode: _Episode,
    agent: AgentSpec,
    env: Environment,
    client: ChatClient,
    limits: Limits,
    seed: int,
) -> str | None:
    """Agent replies and tool results until the agent answers in text; a stop reason or None."""
    while True:
        first = episode.agent_replies == 0
        result = await client.chat(
            episode.messages,
            tools=agent.openai_tools(),
            tool_choice=limits.first_tool_choice if first else "auto",
            max_tokens=limits.max_tokens,
            seed=seed + episode.agent_replies,
        )
        episode.agent_replies += 1
        episode.prompt_tokens += result.usage.prompt_tokens
        episode.completion_tokens += result.usage.completion_tokens
        episode.messages.append(result.to_message().to_openai())
        if result.finish_reason == "length":  # cut off at max_tokens: the judge stage rejects it
            episode.length_stops.append(len(episode.messages) - 1)
        episode.tool_errors += len(result.tool_call_errors)
        if not result.tool_calls:
            return None
        for call in result.tool_calls:
            if episode.tool_calls >= limits.max_tool_calls:
                reply = Message(
                    role="tool", tool_call_id=call.id, content="error: tool-call budget exhausted"
                )
            else:
                reply = await env.call(call)
                episode.tool_calls += 1
            episode.tool_errors += str(reply.content).startswith("error:")
            episode.messages.append(reply.to_openai())
        if episode.tool_calls >= limits.max_tool_calls:
            return "max_tool_calls"
