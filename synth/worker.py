"""What one synthesis worker does, without Ray: the stages for one agent or one task.

A :class:`Worker` holds one client per role and (lazily) a Docker sandbox pool, and runs
the pure stages: write an agent's system prompt, write an agent's tasks, play a task and
judge it. The Ray actor in :mod:`synth.pipeline` is a thin shell around it, so everything
here runs in a plain test. Each result carries the tokens and cost its work spent per
role (meter deltas), so usage survives restarts and resumes with the records themselves.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llm import ChatClient, Endpoint, LLMError, Message
from sandboxes.base import Environment
from sandboxes.executable import ExecutableEnvironment
from sandboxes.mcp_env import MCPEnvironment, MCPServerConfig
from sandboxes.simulated import SimulatedEnvironment
from sandboxes.toolsets import load_toolset
from synth.agents import SWE_TOOLSET, write_agent
from synth.blueprints import BlueprintPlan
from synth.config import JudgeConfig, RolloutConfig
from synth.errors import TaskError
from synth.problems import Problem
from synth.rollout import Limits, roll_out
from synth.schema import (
    AgentSpec,
    BlueprintCounts,
    Difficulty,
    EnvironmentKind,
    Record,
    TaskSpec,
)
from synth.tasks import make_tasks
from synth.user import UserSimulator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs besides endpoints (plain data: it travels to Ray actors)."""

    seed: int = 0
    limits: Limits = field(default_factory=Limits)
    failure_rates: dict[str, float] = field(default_factory=dict)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    """The ``judge`` block, with the user's rubrics (``rubric_files``) read by the driver."""
    tasks_per_agent: int = 3
    difficulties: tuple[Difficulty, ...] = ("single", "multi_step", "clarify")
    sandbox_pool: int = 2
    sandbox_labels: dict[str, str] = field(default_factory=dict)
    """Put on this job's sandbox containers, so the driver can sweep them when it stops."""
    mcp_servers: dict[str, MCPServerConfig] = field(default_factory=dict)
    """The configured MCP servers by name (an MCP agent's ``domain``): how its episodes
    start the server and keep their state apart."""
    blueprints: tuple[EnvironmentKind, ...] = ()
    """Environment kinds whose tasks are first written as blueprints validated by
    execution (``tasks.blueprints``); the synthesis sets them, a bare worker writes none."""
    blueprint_judge: bool = True
    """Whether the judge must find a blueprint's goal and calls in agreement."""
    swe_image: str = "summit-swe:latest"
    """The image repository agents' episodes run in (``tasks.repositories.image``)."""


def settings_from(rollout: RolloutConfig, judge: JudgeConfig, **more: Any) -> WorkerSettings:
    """Settings from the ``rollout`` and ``judge`` config blocks (the synthesis' and
    ``rl.trials``', which share them); ``more`` sets the other fields."""
    return WorkerSettings(
        limits=Limits(
            rollout.max_turns, rollout.max_tool_calls, rollout.max_tokens, rollout.first_tool_choice
        ),
        failure_rates=dict(rollout.failure_rates),
        judge=judge,
        **more,
    )


async def preflight(endpoints: dict[str, Endpoint]) -> None:
    """One tiny request per distinct endpoint, so a wrong URL or key fails the job now
    with the role named (:class:`~synth.errors.TaskError`), not as hundreds of rejected
    tasks later."""
    seen: dict[tuple[str, str], str] = {}
    for role, endpoint in endpoints.items():
        key = (endpoint.base_url, endpoint.model)
        if key in seen:
            continue
        seen[key] = role
        async with ChatClient(endpoint.model_copy(update={"max_retries": 1})) as client:
            try:
                await client.chat([Message(role="user", content="ping")], max_tokens=1)
            except LLMError as exc:
                raise TaskError(f"endpoint for role {role!r} does not answer: {exc}") from exc


class Worker:
    def __init__(self, endpoints: dict[str, Endpoint], settings: WorkerSettings) -> None:
        self.settings = settings
        self.clients = {role: ChatClient(endpoint) for role, endpoint in endpoints.items()}
        self._reported: dict[str, dict[str, float]] = {}
        self._box: Any = None
        self._seen: set[str] = set()
        """Signatures of the blueprints this worker kept, across its agents."""

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        if self._box is not None:
            self._box.close()

    # ------------------------------------------------------------------ stages
    async def write_agent(self, agent: AgentSpec) -> tuple[AgentSpec, bool, dict[str, Any]]:
        seed = int(agent.id.split("-")[-1], 16) % 2**31
        written, ok = await write_agent(agent, self.clients["generator"], seed)
        return written, ok, self.usage_delta()

    async def make_tasks(
        self, agent: AgentSpec, problems: Sequence[Problem | TaskSpec] = ()
    ) -> tuple[list[TaskSpec], list[str], BlueprintCounts, dict]:
        """The agent's tasks, the lines of those that could not be written, what became
        of its blueprints (``tried``, ``kept``, ``rejected`` by reason), and the usage.
        ``problems`` are what a Docker agent's tasks are made from, in order: coding
        problems (the templates make the rest), or a repository agent's mutation tasks."""
        plan = self.blueprint_plan(agent)
        tasks, failures = await make_tasks(
            agent,
            self.settings.tasks_per_agent,
            list(self.settings.difficulties),
            self.clients["generator"],
            self.settings.seed,
            plan,
            problems,
        )
        return tasks, failures, plan.counts if plan else BlueprintCounts(), self.usage_delta()

    def blueprint_plan(self, agent: AgentSpec) -> BlueprintPlan | None:
        """How to write ``agent``'s blueprints, or None where its kind writes none or its
        state cannot be read (an MCP server without a state reader)."""
        kind = agent.environment
        if kind not in self.settings.blueprints or kind == "docker":
            return None
        state: Callable[[random.Random], Awaitable[dict[str, Any]]] | None = None
        if kind == "executable":
            toolset = load_toolset(agent.toolset or "")

            async def state(rng: random.Random) -> dict[str, Any]:
                return toolset.sample_state(rng)

        elif kind == "mcp":
            server = self.settings.mcp_servers.get(agent.domain)
            if server is None or not server.reads_state():
                return None

            read: list[asyncio.Task[dict[str, Any]]] = []

            async def state(rng: random.Random) -> dict[str, Any]:
                """The server's state after a reset: the same for every task, so read
                once per agent (the first caller starts it, the others wait on it)."""
                if not read:
                    read.append(asyncio.ensure_future(self._reset_state(agent)))
                return copy.deepcopy(await read[0])

        judge = self.clients["judge"] if self.settings.blueprint_judge else None
        return BlueprintPlan(
            lambda seed: self.environment(agent, seed), judge, state, seen=self._seen
        )

    async def run_task(self, task: TaskSpec, agent: AgentSpec, seed: int | None = None) -> Record:
        """Play ``task`` and judge it; always a record (failures are rejections).

        ``seed`` seeds the environment, the user and the agent's calls; by default it
        derives from the task id (the synthesis plays each task once). Playing one task
        several times (``rl.trials``) passes a seed per play."""
        from synth.judging import decide

        if seed is None:
            seed = int(task.id.split("-")[-1], 16) % 2**31
        env = self.environment(agent, seed)
        user = UserSimulator(task, self.clients["user"], seed=seed)
        trajectory = await roll_out(
            task, agent, env, self.clients["agent"], user, self.settings.limits, seed
        )
        record = await decide(
            task,
            trajectory,
            self.clients["judge"],
            self.settings.judge,
            box=self.sandbox() if task.checks.tests is not None else None,
        )
        return record.model_copy(update={"usage": self.usage_delta()})

    # ----------------------------------------------------------------- helpers
    def environment(self, agent: AgentSpec, seed: int) -> Environment:
        if agent.environment == "executable":
            if not agent.toolset:
                raise ValueError(f"agent {agent.id}: an executable agent names no tool set")
            return ExecutableEnvironment(load_toolset(agent.toolset))
        if agent.environment == "mcp":
            server = self.settings.mcp_servers.get(agent.domain)
            return MCPEnvironment(server or list(agent.mcp_command or []))
        if agent.environment == "docker" and agent.toolset == SWE_TOOLSET:
            from sandboxes.swe import SWEEnvironment

            return SWEEnvironment(self.settings.swe_image, labels=self.settings.sandbox_labels)
        if agent.environment == "docker":
            from sandboxes.code_env import CodeEnvironment

            return CodeEnvironment(self.sandbox())
        return SimulatedEnvironment(
            agent.tools,
            self.clients["tool_simulator"],
            failure_rates=self.settings.failure_rates,
            seed=seed,
        )

    async def _reset_state(self, agent: AgentSpec) -> dict[str, Any]:
        env = self.environment(agent, 0)
        try:
            await env.reset({})
            return await env.state()
        finally:
            await env.close()

    def sandbox(self) -> Any:
        if self._box is None:
            from sandboxes.docker import DockerSandbox

            self._box = DockerSandbox(
                pool_size=self.settings.sandbox_pool, labels=self.settings.sandbox_labels
            )
        return self._box

    def usage_delta(self) -> dict[str, dict[str, float]]:
        """Per role: what the meters counted since the last call (for the next result)."""
        delta: dict[str, dict[str, float]] = {}
        for role, client in self.clients.items():
            now = {k: float(v) for k, v in client.usage.as_dict().items()}
            before = self._reported.get(role, {})
            change = {k: v - before.get(k, 0.0) for k, v in now.items()}
            self._reported[role] = now
            if any(change.values()):
                delta[role] = change
        return delta
