"""The agents stage: many distinct agents, each a system prompt, a persona and tools.

:func:`plan_agents` is pure and seeded: it splits the agent count over the environment
kinds by the configured shares and gives each agent a coherent tool subset (one domain of
the repository for simulated agents; a whole tool set, an MCP server's tools or the
``run_python`` tool otherwise) and a persona. :func:`write_agent` asks the generator
model for the system prompt; when that call fails, or answers degenerate text (a prompt
of "1. 2. 3. …", a loop, chat-template tokens, the request echoed:
:func:`rubrics.degenerate.degeneracy`), the agent keeps a templated prompt, so one bad
answer never loses an agent and garbage never instructs one (the fallback is counted in
the manifest as ``agents_with_templated_prompt``).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from llm import ChatClient, LLMError, Message
from rubrics.degenerate import REASONS, degeneracy
from synth.config import EnvironmentMix, SynthConfig
from synth.schema import AgentSpec, EnvironmentKind, stable_id
from synth.templates import personas, render
from tool_registry import ToolRepository, ToolSpec

log = logging.getLogger(__name__)
KINDS: tuple[EnvironmentKind, ...] = ("simulated", "executable", "mcp", "docker")


class AgentDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")  # no keys past these two to write
    name: str = Field(min_length=1, max_length=60)
    # the prompt asks for under 120 words; the bound lets a decoder close the string
    # within the 400-token answer instead of running out of tokens mid-sentence
    system_prompt: str = Field(min_length=20, max_length=1000)


@dataclass(frozen=True)
class ToolSource:
    """Where agents' tools come from: the repository, tool sets, MCP servers, code."""

    repository: ToolRepository
    toolsets: dict[str, list[ToolSpec]]
    mcp: dict[str, tuple[list[str], list[ToolSpec]]]
    code_tools: list[ToolSpec]
    repository_tools: list[ToolSpec] = field(default_factory=list)
    """The tools of repository (SWE-style) agents, when ``tasks.repositories`` names
    projects: a share (``tasks.repositories.share``) of the Docker agents get them."""


def allocate(
    count: int, mix: EnvironmentMix, available: set[EnvironmentKind]
) -> list[EnvironmentKind]:
    """``count`` environment kinds in proportion to the shares (largest remainder),
    interleaved so that any prefix of the list is itself mixed."""
    shares = {k: getattr(mix, k) for k in KINDS if k in available and getattr(mix, k) > 0}
    if not shares:
        raise ValueError("no environment kind has both a share > 0 and tools to use")
    total = sum(shares.values())
    exact = {k: count * v / total for k, v in shares.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True):
        if sum(counts.values()) >= count:
            break
        counts[k] += 1
    order: list[EnvironmentKind] = []
    while len(order) < count:
        for k in KINDS:
            if counts.get(k, 0) > 0:
                order.append(k)
                counts[k] -= 1
    return order


REPOSITORY = "repository"
"""The domain of the Docker agents that fix bugs in real projects."""
SWE_TOOLSET = "swe"
"""The ``toolset`` of those agents: their episodes run in :class:`sandboxes.swe.SWEEnvironment`."""


def plan_agents(config: SynthConfig, source: ToolSource) -> list[AgentSpec]:
    """The agents with their tools and personas, system prompts still templated."""
    rng = random.Random(f"agents:{config.seed}")
    available: set[EnvironmentKind] = {"docker"} if source.code_tools else set()
    if len(source.repository):
        available.add("simulated")
    if source.toolsets:
        available.add("executable")
    if source.mcp:
        available.add("mcp")
    kinds = allocate(config.agents.count, config.environment_mix, available)
    domains = sorted({t.domain for t in source.repository})
    rng.shuffle(domains)
    agents = []
    coders = 0
    share = config.tasks.repositories.share if source.repository_tools else 0.0
    for index, kind in enumerate(kinds):
        toolset = server = None
        if kind == "simulated":
            k = rng.randint(config.agents.tools_min, config.agents.tools_max)
            tools = source.repository.sample(k, rng, domain=domains[index % len(domains)])
            domain = tools[0].domain or tools[0].category
        elif kind == "executable":
            toolset = sorted(source.toolsets)[index % len(source.toolsets)]
            tools = source.toolsets[toolset]
            domain = tools[0].domain or toolset
        elif kind == "mcp":
            server = sorted(source.mcp)[index % len(source.mcp)]
            tools, domain = source.mcp[server][1], server
        elif int((coders + 1) * share) > int(coders * share):  # every 1/share-th coder
            coders += 1
            tools, domain, toolset = source.repository_tools, REPOSITORY, SWE_TOOLSET
        else:
            coders += 1
            tools, domain = source.code_tools, "python"
        persona = rng.choice(personas()["agents"])
        agent_id = stable_id("agent", config.seed, index, kind, [t.id for t in tools], persona)
        agents.append(
            AgentSpec(
                id=agent_id,
                name=f"{domain} assistant",
                domain=domain,
                environment=kind,
                system_prompt=fallback_prompt(domain, persona, tools),
                persona=persona,
                tools=tools,
                toolset=toolset,
                mcp_command=source.mcp[server][0] if server else None,
            )
        )
    return agents


def fallback_prompt(domain: str, persona: str, tools: list[ToolSpec]) -> str:
    names = ", ".join(t.name for t in tools)
    return (
        f"You are {persona}, serving users in the {domain} domain. Your tools: {names}. "
        "Look things up with the tools before answering, never invent tool results, and "
        "ask the user when information you need is missing."
    )


async def write_agent(agent: AgentSpec, client: ChatClient, seed: int) -> tuple[AgentSpec, bool]:
    """The agent with a generated name and system prompt; ``False`` when the fallback stayed."""
    prompt = render("agent", domain=agent.domain, persona=agent.persona, tools=agent.tools)
    try:
        draft = await client.complete_json(
            [Message(role="user", content=prompt)], AgentDraft, seed=seed, max_tokens=400
        )
    except LLMError as exc:
        log.warning("agent %s keeps its templated prompt: %s", agent.id, exc)
        return agent, False
    problem = draft_problem(draft, prompt)
    if problem:
        log.warning("agent %s keeps its templated prompt: the draft's %s", agent.id, problem)
        return agent, False
    return agent.model_copy(update={"name": draft.name, "system_prompt": draft.system_prompt}), True


def draft_problem(draft: AgentDraft, request: str) -> str | None:
    """What makes a generated agent unusable (``"system_prompt is degenerate (repetition)"``),
    or ``None``. The prompt is held to every check, the short name to the certain ones."""
    reason = degeneracy(draft.system_prompt, prompt=request, checks=REASONS)
    if reason:
        return f"system_prompt is degenerate ({reason})"
    reason = degeneracy(draft.name, checks=("empty", "role_markers"))
    return f"name is degenerate ({reason})" if reason else None
