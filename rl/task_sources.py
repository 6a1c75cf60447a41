"""Tasks to play, from where the synthesis (or someone else) wrote them, and their split.

A source is a synthesis run directory (``agents.jsonl`` + ``tasks.jsonl``, and the MCP
servers of its ``config.yaml``), two JSONL files of ``AgentSpec`` and ``TaskSpec`` rows, or
an external MCP domain (``rl.domains.load_domain``). Every task must name an agent of its
own source that plays in the same environment kind and can be played here (a known tool
set, an MCP server to start); a row that cannot be read or played is a
:class:`TaskSourceError` naming its file and line, before anything starts.

:func:`split_of` puts each task in ``train`` or ``heldout`` by a hash of its id alone, so
the recipe, the rejection sampler and the evaluation agree on which tasks training never
sees, whatever order or subset of tasks each of them loads.

Not here: playing the tasks (:mod:`rl.trials`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from llm.errors import ConfigError
from llm.yamlconf import YamlConfigError, error_message, format_loc, load_yaml
from rl.gyms.base import GymError, json_lines
from rl.trial_config import Split, TaskSource
from sandboxes.mcp_env import MCPServerConfig
from sandboxes.toolsets import ToolSetError, load_toolset
from synth.config import McpServer
from synth.schema import AgentSpec, EnvironmentKind, Record, TaskSpec

M = TypeVar("M", bound=BaseModel)
KINDS: tuple[str, ...] = get_args(EnvironmentKind)


class TaskSourceError(ConfigError):
    """A task source cannot be read or played; ``str()`` is one line naming the file (and
    line, and field) and what is wrong."""


@dataclass(frozen=True)
class TaskSet:
    """Tasks with the agents that play them and the MCP servers those agents need."""

    agents: dict[str, AgentSpec]
    tasks: list[TaskSpec]
    mcp_servers: dict[str, MCPServerConfig] = field(default_factory=dict)
    checks: dict[str, Callable[[Record], Record]] = field(default_factory=dict)
    """Per task id, a check applied to the judge stage's record after it (an MCP domain's
    checks on the conversation, such as τ²'s facts the agent must tell the user)."""

    def agent(self, task: TaskSpec) -> AgentSpec:
        return self.agents[task.agent_id]


def split_of(task_id: str, heldout_fraction: float) -> Literal["train", "heldout"]:
    """``heldout`` for about ``heldout_fraction`` of task ids, ``train`` for the others;
    a function of the id alone (the same answer in every process and command)."""
    digest = hashlib.sha256(f"heldout:{task_id}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") < heldout_fraction * 2**64 else "train"


def in_split(tasks: Sequence[TaskSpec], split: Split, heldout_fraction: float) -> list[TaskSpec]:
    """The tasks of ``split`` (``all``: every task), in their order."""
    if split == "all":
        return list(tasks)
    return [t for t in tasks if split_of(t.id, heldout_fraction) == split]


def verifiable(task: TaskSpec) -> bool:
    """Whether a check decides the task (expected final state or unit tests), not a judge."""
    return task.checks.expected_state is not None or task.checks.tests is not None


def load_task_set(sources: Sequence[TaskSource]) -> TaskSet:
    """Every source's tasks, pooled; :class:`TaskSourceError` for the first bad row, a
    task id that two sources both hold, or no task at all."""
    agents: dict[str, AgentSpec] = {}
    tasks: list[TaskSpec] = []
    servers: dict[str, MCPServerConfig] = {}
    checks: dict[str, Callable[[Record], Record]] = {}
    where: dict[str, str] = {}
    for source in sources:
        part, places = _load(source)
        for task, place in zip(part.tasks, places, strict=True):
            if task.id in where:
                raise TaskSourceError(f"{place}: task {task.id} is also in {where[task.id]}")
            where[task.id] = place
        for agent in part.agents.values():
            if agents.setdefault(agent.id, agent) != agent:
                raise TaskSourceError(f"{_name(source)}: agent {agent.id} differs between sources")
        tasks += part.tasks
        servers.update(part.mcp_servers)
        checks.update(part.checks)
    if not tasks:
        raise TaskSourceError(f"no tasks in {', '.join(_name(s) for s in sources)}")
    return TaskSet(agents, tasks, servers, checks)


def _name(source: TaskSource) -> str:
    return str(source.run or source.tasks or source.domain)


def _load(source: TaskSource) -> tuple[TaskSet, list[str]]:
    """One source's tasks and, for each, where it was read (``file:line``)."""
    if source.domain is not None:
        return _domain(source.domain)
    if source.run is not None:
        agents_path, tasks_path = source.run / "agents.jsonl", source.run / "tasks.jsonl"
        servers = _run_servers(source.run / "config.yaml")
    else:
        assert source.agents is not None and source.tasks is not None  # the model checks it
        agents_path, tasks_path, servers = source.agents, source.tasks, {}
    agents: dict[str, AgentSpec] = {}
    for place, agent in _rows(agents_path, AgentSpec):
        _playable(place, agent, servers)
        agents[agent.id] = agent
    tasks, places = [], []
    for place, task in _rows(tasks_path, TaskSpec):
        player = agents.get(task.agent_id)
        if player is None:
            raise TaskSourceError(f"{place}: agent_id: no agent {task.agent_id!r} in {agents_path}")
        if player.environment != task.environment:
            raise TaskSourceError(
                f"{place}: environment: {task.environment!r}, but its agent {player.id} plays "
                f"in {player.environment!r}"
            )
        tasks.append(task)
        places.append(place)
    return TaskSet(agents, tasks, servers), places


def _rows(path: Path, model: type[M]) -> list[tuple[str, M]]:
    """``(file:line, row)`` for each non-blank line of a JSONL file of ``model`` rows."""
    try:
        values = json_lines(path)
    except GymError as exc:  # missing, a directory, binary, bad JSON, empty: one line
        raise TaskSourceError(str(exc)) from None
    rows = []
    for place, value in values:
        try:
            rows.append((place, model.model_validate(value)))
        except ValidationError as exc:
            raise TaskSourceError(f"{place}: {_problem(exc)}") from None
    return rows


def _problem(exc: ValidationError) -> str:
    """The first problem of a row, with the known kinds when an environment is unknown."""
    first = exc.errors()[0]
    field = format_loc(tuple(first["loc"]))
    if first["loc"] == ("environment",):
        known = ", ".join(KINDS)
        return f"{field}: unknown environment kind {first['input']!r}; known: {known}"
    return f"{field}: {error_message(first)}"


def _playable(place: str, agent: AgentSpec, servers: dict[str, MCPServerConfig]) -> None:
    if agent.environment == "executable":
        try:
            load_toolset(agent.toolset or "")
        except ToolSetError as exc:
            raise TaskSourceError(f"{place}: toolset: {exc}") from exc
    if agent.environment == "mcp" and agent.domain not in servers and not agent.mcp_command:
        raise TaskSourceError(
            f"{place}: agent {agent.id} plays in an MCP server but has no mcp_command, and no "
            f"server named {agent.domain!r} is configured"
        )


def _run_servers(config: Path) -> dict[str, MCPServerConfig]:
    """The MCP servers of a synthesis run's resolved ``config.yaml`` (none when absent)."""
    if not config.exists():
        return {}
    try:
        data, _ = load_yaml(config)
    except YamlConfigError as exc:
        raise TaskSourceError(str(exc).splitlines()[0]) from None
    listed: Any = ((data or {}).get("tools") or {}).get("mcp_servers") or []
    try:
        servers = [McpServer.model_validate(entry) for entry in listed]
    except ValidationError as exc:
        raise TaskSourceError(f"{config}: tools.mcp_servers: {_problem(exc)}") from None
    return {server.name: server for server in servers}


def _domain(name: str) -> tuple[TaskSet, list[str]]:
    """An external MCP domain's agents, tasks and servers (``rl.domains``), with its
    checks on the conversation applied to each trial after the judge stage."""
    from rl import domains  # imported on use: it starts a server to list the tools

    domain = domains.load_domain(name)
    tasks = list(domain.tasks)
    places = [f"domain {name}: task {t.id}" for t in tasks]
    checks: dict[str, Callable[[Record], Record]] = {t.id: domain.verify for t in tasks}
    task_set = TaskSet({a.id: a for a in domain.agents}, tasks, dict(domain.mcp_servers), checks)
    return task_set, places
