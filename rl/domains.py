"""External MCP domains: a real server, a tasks file with expected outcomes, a policy.

A domain is what τ²-bench calls one: a real MCP server whose tools act on a state (a
database), the policy the agent follows (its system prompt) and tasks for a simulated
user, each with the outcome that counts as success. :func:`load_domain` turns one into
exactly what synthesis's worker plays (:class:`Domain`): one MCP :class:`AgentSpec`, the
:class:`TaskSpec` list (environment ``mcp``, ``domain`` = the domain's name) and the
server config under that name for ``WorkerSettings.mcp_servers``, so evaluation and
rejection sampling play domain tasks with ``Worker.run_task`` like any synthesized task.

A domain is a YAML file (:class:`DomainConfig`) naming a JSONL tasks file (one
:class:`TaskRow` a line), or a built-in name (``tau2-airline``: :mod:`rl.tau2`). The
outcome is checked on the server's final state: a row's ``expected_state``, or, when it
gives only ``golden_actions``, the state those actions leave on a fresh episode of the
real server (replayed at load time, τ²'s way). Facts the agent must tell the user
(``communicate``) are checked on its replies by :meth:`Domain.verify`. Criteria in words
are kept as the task's rubric but not checked here: that needs a judge.

Loading starts the server once to list the tools the agent is offered; a server that
does not start, a tasks file with a bad row or a golden action that fails is a one-line
:class:`DomainError` naming the file (and line). Not covered: servers over HTTP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm import FunctionCall, ToolCall
from llm.errors import ConfigError
from llm.yamlconf import YamlConfigError, error_message, load_yaml_model, read_text
from rl.gyms.base import GymError, json_lines
from rubrics import Criterion, Rubric
from sandboxes.base import SandboxError
from sandboxes.mcp_env import MCPEnvironment, MCPServerConfig, anchored, list_server_tools
from synth.schema import AgentSpec, Checks, Difficulty, Record, TaskSpec, stable_id
from tool_registry import ToolSpec
from tool_registry.importers.mcp_server import MCPImportError

Split = Literal["train", "test", "all"]
T = TypeVar("T")
DEFAULT_USER = "a customer who writes short, plain messages"
DEFAULT_AGENT = "a support agent who follows the policy and acts through its tools"
REPLAY_CONCURRENCY = 4
"""Golden-action replays run at once while a domain loads (each its own server process)."""


class DomainError(ConfigError):
    """A domain that cannot be used: its file, tasks or server; ``str()`` is one line that
    names the file (and line)."""


class GoldenAction(BaseModel):
    """One tool call of the reference solution."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class TaskRow(BaseModel):
    """One line of a domain's tasks file (JSONL): the simulated user and the outcome."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    """The task's id in this file (the :class:`TaskSpec` id is derived from it)."""
    user_goal: str = Field(min_length=1)
    """What the user wants, in their words; also their first message."""
    persona: str = DEFAULT_USER
    """Who the user is, for the user simulator."""
    hidden_info: dict[str, str] = Field(default_factory=dict)
    """Facts the user reveals only when asked (``{"user id": "emma_kim_9957"}``)."""
    difficulty: Difficulty | None = None
    """Default: ``single`` with at most one golden action, else ``multi_step``."""
    split: Literal["train", "test"] = "test"
    """``test`` tasks are held out from training."""
    initial_state: dict[str, Any] = Field(default_factory=dict)
    """Written to the episode's directory as ``initial_state.json`` for the server."""
    expected_state: dict[str, Any] | None = None
    """Keys that must hold in the server's final state (see ``sandboxes.state_differences``)."""
    golden_actions: list[GoldenAction] = Field(default_factory=list)
    """The reference tool calls; without ``expected_state`` the state they leave on a
    fresh episode is the expected one."""
    communicate: list[str] = Field(default_factory=list)
    """Facts the agent must tell the user: each must appear in one of its replies (case
    and commas ignored, as τ²-bench checks ``communicate_info``)."""
    criteria: list[str] = Field(default_factory=list)
    """The outcome in words (the task's rubric); not checked here, that needs a judge."""

    @model_validator(mode="after")
    def _has_outcome(self) -> TaskRow:
        if self.expected_state is None and not self.golden_actions:
            raise ValueError("a task needs expected_state or golden_actions (its outcome)")
        return self

    def level(self) -> Difficulty:
        if self.difficulty is not None:
            return self.difficulty
        return "single" if len(self.golden_actions) <= 1 else "multi_step"


class DomainConfig(BaseModel):
    """A domain file (YAML). Paths are relative to the file's directory."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """The domain's name: the tasks' and agent's ``domain``, the server's key."""
    server: MCPServerConfig
    """How to start the server, per episode (``{episode_dir}`` keeps state apart)."""
    tasks: Path
    """The tasks file: JSONL, one :class:`TaskRow` a line."""
    policy: Path
    """The agent's system prompt (Markdown or text)."""
    agent_persona: str = DEFAULT_AGENT
    """Who the agent is, in one line."""
    split: Split = "test"
    """Which tasks to load: ``test`` (held out), ``train`` or ``all``."""


@dataclass(frozen=True)
class TaskInfo:
    """What a domain knows about one of its tasks beyond the :class:`TaskSpec`."""

    source_id: str
    """The id in the domain's own tasks file."""
    split: str
    where: str
    """``file:line`` (or file and id) of the task, for messages."""
    communicate: tuple[str, ...] = ()


@dataclass(frozen=True)
class Domain:
    """A loaded domain: what ``WorkerSettings`` and ``Worker.run_task`` need."""

    name: str
    agents: list[AgentSpec]
    tasks: list[TaskSpec]
    mcp_servers: dict[str, MCPServerConfig]
    """For ``WorkerSettings(mcp_servers=...)``."""
    info: dict[str, TaskInfo] = field(default_factory=dict)
    """By task id."""

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as ``(agents, tasks, mcp_servers)``, what a task source reads."""
        return iter((self.agents, self.tasks, self.mcp_servers))

    def agent_for(self, task: TaskSpec) -> AgentSpec:
        return next(a for a in self.agents if a.id == task.agent_id)

    def verify(self, record: Record, task_id: str | None = None) -> Record:
        """``record`` (from ``Worker.run_task`` on task ``task_id``, default its own id)
        with the checks on the conversation applied: an accepted record whose agent never
        told the user a ``communicate`` fact becomes a rejection (``not_communicated``)."""
        info = self.info.get(task_id or record.task_id)
        if info is None or not info.communicate or record.outcome != "accepted":
            return record
        missing = untold(info.communicate, record.trajectory.messages if record.trajectory else [])
        if not missing:
            return record
        return record.model_copy(
            update={
                "outcome": "rejected",
                "reason": "not_communicated",
                "detail": f"the agent never told the user: {', '.join(missing)}"[:500],
                "verified": False,
            }
        )


def untold(facts: tuple[str, ...] | list[str], messages: list[dict[str, Any]]) -> list[str]:
    """The ``facts`` no assistant reply contains (case and commas ignored)."""
    said = [
        str(m.get("content") or "").lower().replace(",", "")
        for m in messages
        if m.get("role") == "assistant"
    ]
    return [f for f in facts if not any(f.lower().replace(",", "") in s for s in said)]


# --------------------------------------------------------------------------- loading
def load_domain(spec: str | Path, *, split: Split | None = None) -> Domain:
    """The domain a YAML file or a built-in name (``tau2-airline``) describes.

    Starts its server once (to list the agent's tools) and, for rows with only golden
    actions, replays them; ``split`` overrides the file's. Raises :class:`DomainError`.

    Example::

        domain = load_domain("tau2-airline", split="test")
        settings = WorkerSettings(mcp_servers=domain.mcp_servers)
        record = await worker.run_task(domain.tasks[0], domain.agents[0])
    """
    return _run(aload_domain(spec, split=split))


async def aload_domain(spec: str | Path, *, split: Split | None = None) -> Domain:
    """:func:`load_domain` inside an event loop."""
    source = domain_source(spec)
    chosen = split or source.split
    rows = [(w, r) for w, r in source.rows if chosen == "all" or r.split == chosen]
    tools = await _tools(source)
    _check_actions(rows, {t.name for t in tools})
    expected = await _expected_states(source, rows)
    agent = AgentSpec(
        id=stable_id("agent", source.name, source.policy),
        name=f"{source.name} agent",
        domain=source.name,
        environment="mcp",
        system_prompt=source.policy,
        persona=source.agent_persona,
        tools=tools,
        mcp_command=source.server.command,
    )
    tasks, info = [], {}
    for (where, row), state in zip(rows, expected, strict=True):
        task = _task(source.name, agent.id, row, state)
        tasks.append(task)
        info[task.id] = TaskInfo(row.id, row.split, where, tuple(row.communicate))
    return Domain(source.name, [agent], tasks, {source.name: source.server}, info)


def check_domain(spec: str | Path) -> list[ToolSpec]:
    """The tools the domain's agent is offered, listed from its server started once, the
    tasks file read and checked; :class:`DomainError` when anything is wrong."""
    source = domain_source(spec)
    tools = _run(_tools(source))
    _check_actions(source.rows, {t.name for t in tools})
    return tools


@dataclass(frozen=True)
class DomainSource:
    """A domain before its server is started: what a file or an adapter provides."""

    name: str
    server: MCPServerConfig
    rows: list[tuple[str, TaskRow]]
    """``(where, row)``: ``where`` names the row's file and line for messages."""
    policy: str
    origin: str
    """The file (or package) the domain comes from, for messages."""
    agent_persona: str = DEFAULT_AGENT
    split: Split = "test"


def domain_source(spec: str | Path) -> DomainSource:
    """A built-in domain by name, else the domain file at ``spec``."""
    if str(spec) == "tau2-airline":
        from rl.tau2 import airline

        return airline()
    path = Path(spec)
    try:
        config = load_yaml_model(path, DomainConfig)
    except YamlConfigError as exc:
        raise DomainError(exc.problems[0]) from exc
    base = path.parent
    server = config.server.model_copy(
        update={"command": [_near(base, a) for a in config.server.command]}
    )
    try:
        policy = read_text(base / config.policy)
    except YamlConfigError as exc:
        raise DomainError(exc.problems[0]) from exc
    return DomainSource(
        name=config.name,
        server=server,
        rows=read_rows(base / config.tasks),
        policy=policy,
        origin=str(path),
        agent_persona=config.agent_persona,
        split=config.split,
    )


def _near(base: Path, argument: str) -> str:
    """A command argument naming a file beside the domain file, made absolute."""
    candidate = base / argument
    if argument.startswith("-") or Path(argument).is_absolute() or not candidate.is_file():
        return anchored(argument)
    return str(candidate.resolve())


def read_rows(path: Path) -> list[tuple[str, TaskRow]]:
    """``(file:line, row)`` for each line of a tasks file; :class:`DomainError` naming the
    line of the first bad one (not JSON, a bad field, a repeated id), or no rows."""
    try:
        lines = json_lines(path)
    except GymError as exc:
        raise DomainError(str(exc)) from exc
    rows: list[tuple[str, TaskRow]] = []
    seen: dict[str, str] = {}
    for where, value in lines:
        try:
            row = TaskRow.model_validate(value)
        except ValidationError as exc:
            problem = exc.errors()[0]
            name = ".".join(str(p) for p in problem["loc"]) or "(row)"
            raise DomainError(f"{where}: {name}: {error_message(problem)}") from exc
        if row.id in seen:
            raise DomainError(f"{where}: id: {row.id!r} is already the id of {seen[row.id]}")
        seen[row.id] = where
        rows.append((where, row))
    return rows


async def _tools(source: DomainSource) -> list[ToolSpec]:
    try:
        return await list_server_tools(source.server)
    except MCPImportError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise DomainError(f"{source.origin}: server: {detail}") from exc


def _check_actions(rows: list[tuple[str, TaskRow]], offered: set[str]) -> None:
    for where, row in rows:
        for i, action in enumerate(row.golden_actions):
            if action.name not in offered:
                raise DomainError(
                    f"{where}: golden_actions[{i}].name: the server offers the agent no "
                    f"tool {action.name!r}"
                )


async def _expected_states(
    source: DomainSource, rows: list[tuple[str, TaskRow]]
) -> list[dict[str, Any]]:
    """Each row's expected state: its own, or what its golden actions leave."""
    server = source.server
    if any(r.expected_state is None for _, r in rows) and not (
        server.state_tool or server.state_resource or server.state_reader
    ):
        raise DomainError(
            f"{source.origin}: server: replaying golden actions needs the server's state "
            "(state_tool, state_resource or state_reader), or give each task expected_state"
        )
    slots = asyncio.Semaphore(REPLAY_CONCURRENCY)

    async def one(where: str, row: TaskRow) -> dict[str, Any]:
        if row.expected_state is not None:
            return row.expected_state
        async with slots:
            return await replay(server, row, where)

    return list(await asyncio.gather(*(one(w, r) for w, r in rows)))


async def replay(server: MCPServerConfig, row: TaskRow, where: str) -> dict[str, Any]:
    """The state ``row``'s golden actions leave on a fresh episode of ``server``."""
    env = MCPEnvironment(server)
    try:
        await env.reset({"id": row.id, "initial_state": row.initial_state})
        for i, action in enumerate(row.golden_actions):
            call = ToolCall(
                id=f"golden-{i}",
                function=FunctionCall(name=action.name, arguments=json.dumps(action.arguments)),
            )
            reply = str((await env.call(call)).content)
            if reply.startswith("error:"):
                raise DomainError(f"{where}: golden_actions[{i}] ({action.name}): {reply[:300]}")
        return await env.state()
    except SandboxError as exc:
        raise DomainError(f"{where}: replaying golden actions: {exc}") from exc
    finally:
        await env.close()


def _task(domain: str, agent_id: str, row: TaskRow, expected: dict[str, Any]) -> TaskSpec:
    task_id = stable_id(domain, row.id)
    words = row.criteria or ["The server's final state is the expected outcome."]
    rubric = Rubric(
        id=f"task.{task_id}",
        kind="task",
        description=f"Outcome of {domain} task {row.id}: {row.user_goal[:120]}",
        criteria=[
            Criterion(id=f"outcome_{i + 1}", description=text, scale="binary", mandatory=i == 0)
            for i, text in enumerate(words)
        ],
    )
    return TaskSpec(
        id=task_id,
        agent_id=agent_id,
        domain=domain,
        difficulty=row.level(),
        environment="mcp",
        user_goal=row.user_goal,
        user_persona=row.persona,
        hidden_info=row.hidden_info,
        initial_state=row.initial_state,
        rubric=rubric,
        expected_tools=list(dict.fromkeys(a.name for a in row.golden_actions)),
        checks=Checks(expected_state=expected),
    )


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end, also when called from inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
