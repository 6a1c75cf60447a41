"""TRL ``environment_factory`` classes over every kind of sandboxes environment, with the
simulated user.

TRL finds an environment's tools by listing the public functions of its *class*, renders
their schemas from type hints and Google-style docstrings once at init, and tells
environments apart by exact class. :func:`environment_for` therefore generates one class
per distinct tool list — per tool set (``executable``), per tool list of simulated agents
(``simulated``), per MCP server (``mcp``), one for the code sandbox (``docker``) — cached,
and registers it under a routing key that the gym writes into each row's ``environment``
column (:func:`environment_class` looks it up). Each generated method carries a tool's
name, typed signature and docstring, and its call goes through the synthesis' own
:class:`sandboxes.base.Environment` (:class:`~sandboxes.executable.ExecutableEnvironment`,
:class:`~sandboxes.simulated.SimulatedEnvironment`, :class:`~sandboxes.mcp_env.MCPEnvironment`,
:class:`~sandboxes.code_env.CodeEnvironment`): arguments are checked against the real JSON
Schema and a bad call comes back to the policy as an ``error: ...`` tool message.

The contract with the roll-out loop (``rl.multiturn``): ``reset(**row)`` is synchronous and
lazy (nothing starts); the tool methods and the hooks ``user_turn`` (only on classes made
with a user) and ``finish`` are coroutines run on the loop's one persistent event loop.
The hooks are :class:`hook` descriptors, so TRL does not offer them as tools. Verifiers
read ``state``, ``task``, ``failure`` (one line when the environment itself failed: the
simulator, the user model, the MCP server or the sandbox — the row's reward is then
``None``), ``calls`` and ``user_outcome`` afterwards.

Each episode's sandboxes environment lives in a task of its own on the loop
(:class:`_Owner`): MCP's stdio client must be closed by the task that opened it, while
the loop runs every tool call in whatever task it gathers. Model clients (user,
simulator) are shared: one long-lived ``ChatClient`` per endpoint per event loop
(:func:`shared_client`), resolved through :func:`use_endpoints`.

Not here: the roll-out loop itself, and rewards (``rl.gyms.tool_use``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import itertools
import json
import keyword
import logging
import re
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm import ChatClient, Endpoint, FunctionCall, LLMError, ToolCall
from llm.embedded.model import ModelDir, check_served_here
from rl.clients import ClientPool
from sandboxes.base import Environment, SandboxError
from sandboxes.mcp_env import MCPServerConfig
from sandboxes.toolsets import ToolSetError, load_toolset
from synth.schema import EnvironmentKind
from tool_registry import ToolSpec

log = logging.getLogger(__name__)
T = TypeVar("T")
KINDS: tuple[EnvironmentKind, ...] = ("executable", "simulated", "mcp", "docker")
RESERVED = frozenset(
    {"reset", "get_reward", "user_turn", "finish", "state", "task", "failure", "calls"}
    | {"policy_tokens", "user_outcome", "user_turns", "settings", "specs", "kind", "key"}
)
"""Names a tool cannot have: TRL's own methods and what the environment itself holds."""
_PY_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


# --------------------------------------------------------------------------- settings
class _RoleModel(BaseModel):
    """Where a role around the policy runs: a preset, or a checkpoint served here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = "embedded"
    """Endpoint preset the role's model runs on (``embedded``, a K2 preset, ...)."""
    model: str | None = None
    """Model name or variant at that endpoint; default: the preset's."""
    model_path: ModelDir | None = None
    """A local model directory the run serves for this role with the embedded engine;
    only with endpoint ``embedded``, without ``model``."""

    @model_validator(mode="after")
    def _served_here(self) -> _RoleModel:
        check_served_here(self.model_path, self.endpoint, model=self.model)
        return self


class UserSettings(_RoleModel):
    """The simulated user of multi-turn episodes (``synth.user``)."""

    max_user_turns: int = Field(3, ge=1)
    """User replies after the opening goal, at most; then the episode ends."""


class SimulatorSettings(_RoleModel):
    """The LLM tool simulator of ``simulated`` tasks (``sandboxes.simulated``)."""

    failure_rates: dict[str, float] = Field(default_factory=dict)
    """Seeded injected failures per call (``timeout``, ``permission_denied``, ``not_found``,
    ``rate_limited``, ``partial``): the policy sees them as tool errors."""
    max_tokens: int = Field(512, ge=16)
    """Token cap of one simulated answer."""


class EpisodeSettings(BaseModel):
    """What every episode of a generated class shares (part of its routing key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: UserSettings | None = None
    """The simulated user; ``None``: single-goal episodes (no ``user_turn``)."""
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    max_tool_calls: int = Field(8, ge=1)
    """Tool calls per episode; later calls answer ``error: tool-call budget exhausted``."""
    timeout_s: float = Field(50.0, gt=0)
    """Longest wait for one tool call, user turn or start: past it the episode failed."""


# ---------------------------------------------------------------- shared model clients
Resolver = Callable[[str, str | None, Path | None], Endpoint]
"""(preset, model, model_path) -> the endpoint."""


def _default_resolver(name: str, model: str | None, model_path: Path | None) -> Endpoint:
    from llm import get_endpoint

    if model_path is not None:
        raise ValueError(f"model_path {model_path} is served by a run (rl.trainer.Services)")
    return get_endpoint(name, model=model)


_resolver: Resolver = _default_resolver
_pool = ClientPool()


def use_endpoints(resolver: Resolver | None, pool: ClientPool | None = None) -> None:
    """How endpoint names become endpoints, and the pool whose clients they get (the
    trainer passes its services' resolver, which starts the embedded server once per run,
    and the run's :class:`~rl.clients.ClientPool`, which it closes at the end); ``None``
    restores ``llm.get_endpoint`` and a pool of this module's own."""
    global _resolver, _pool
    _resolver = resolver or _default_resolver
    _pool = pool or ClientPool()


async def shared_client(role: _RoleModel) -> ChatClient:
    """The one client of ``role``'s endpoint on the running loop, made on first use (its
    HTTP pool belongs to the loop that opened it, so each loop gets its own)."""
    resolver, name, model, path = _resolver, role.endpoint, role.model, role.model_path
    key = f"environment:{name}|{model or ''}|{path or ''}"
    return _pool.get(key, lambda: resolver(name, model, path))


async def close_clients() -> None:
    """Close the running loop's shared clients (at the end of a run or a test)."""
    await _pool.aclose()


# ------------------------------------------------------------------ hooks, owner task
class hook(Generic[T]):
    """A coroutine method the roll-out loop calls but TRL must not offer as a tool: TRL
    lists the plain functions of an environment's class; on the class this is no
    function, on an instance it is an ordinary bound method."""

    def __init__(self, fn: Callable[..., Awaitable[T]]) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        return self if instance is None else types.MethodType(self.fn, instance)


Operation = Callable[[Environment], Awaitable[Any]]


class _Owner:
    """One sandboxes environment driven from a task of its own: every operation (reset,
    call, state, close) is queued to that task, so what it opens it also closes."""

    def __init__(self, world: Environment) -> None:
        self.world = world
        self._jobs: asyncio.Queue[tuple[Operation | None, asyncio.Future[Any] | None]] = (
            asyncio.Queue()
        )
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def run(self, operation: Operation, timeout_s: float) -> Any:
        if self._task.done():
            raise SandboxError("the environment has stopped")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait((operation, future))
        return await asyncio.wait_for(future, timeout_s)

    async def stop(self, timeout_s: float) -> None:
        """Close the environment (in its task); cancel it when closing hangs."""
        if self._task.done():
            return
        self._jobs.put_nowait((None, None))
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, timeout_s)

    async def _serve(self) -> None:
        try:
            while True:
                operation, future = await self._jobs.get()
                if operation is None or future is None:
                    return
                try:
                    result = await operation(self.world)
                except Exception as exc:  # noqa: BLE001 - handed to the caller, who decides
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(result)
        finally:
            await self.world.close()


# ------------------------------------------------------------------- the environment
class AgenticEnvironment:
    """Base of the generated classes; one instance per concurrent roll-out (TRL pools
    them and resets them between batches). Subclasses say how to make the world."""

    kind: ClassVar[str]
    key: ClassVar[str]
    specs: ClassVar[tuple[ToolSpec, ...]]
    settings: ClassVar[EpisodeSettings]

    def __init__(self) -> None:
        self.task: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.failure: str | None = None
        self.calls = 0
        self.policy_tokens = 0
        self.user_turns = 0
        self.user_outcome: str | None = None
        """Why the user stopped: ``satisfied``, ``stuck``, ``max_user_turns``, ``failed``."""
        self._owner: _Owner | None = None
        self._retired: list[_Owner] = []
        self._ids = itertools.count()
        self._episodes = 0

    def reset(self, **row: Any) -> None:
        """Start an episode from a dataset row: its ``task`` column (JSON) carries the
        TaskSpec. Synchronous and lazy: the world starts at the first tool call."""
        payload = json.loads(row.get("task") or "{}")
        self.task = payload.get("task") or {}
        self.state = json.loads(json.dumps(self.task.get("initial_state") or {}))
        self.failure, self.user_outcome = None, None
        self.calls = self.policy_tokens = self.user_turns = 0
        if self._owner is not None:  # the last episode was not finished: stop it later
            self._retired.append(self._owner)
            self._owner = None
        self._episodes += 1
        return None

    async def _make_world(self) -> Environment:
        raise NotImplementedError

    async def _world(self) -> _Owner:
        for old in self._retired:
            await old.stop(self.settings.timeout_s)
        self._retired.clear()
        if self._owner is None:
            world = await self._make_world()
            self._owner = _Owner(world)
            start = {"id": self.task.get("id", ""), "initial_state": self.task.get("initial_state")}
            await self._owner.run(lambda w: w.reset(start), self.settings.timeout_s)
        return self._owner

    async def _call(self, name: str, arguments: dict[str, Any]) -> str:
        if self.failure is not None:
            return f"error: the environment has failed: {self.failure}"
        if self.calls >= self.settings.max_tool_calls:
            return f"error: tool-call budget exhausted ({self.settings.max_tool_calls} calls)"
        self.calls += 1
        call = ToolCall(
            id=f"call_{next(self._ids)}",
            function=FunctionCall(name=name, arguments=json.dumps(arguments, default=str)),
        )
        try:
            owner = await self._world()
            message = await owner.run(lambda w: w.call(call), self.settings.timeout_s)
            self.state = await owner.run(lambda w: w.state(), self.settings.timeout_s)
        except (SandboxError, LLMError, TimeoutError) as exc:
            self._fail(f"{name}: {_why(exc, self.settings.timeout_s)}")
            return f"error: the environment has failed: {self.failure}"
        return str(message.content)

    def _fail(self, why: str) -> None:
        if self.failure is None:
            self.failure = " ".join(why.split())[:300]
            log.warning("%s episode %s failed: %s", self.key, self.task.get("id"), self.failure)

    async def _finish(self) -> None:
        """Take the final state into ``state`` and stop the episode's world (its MCP
        server process); safe to call twice."""
        owner, self._owner = self._owner, None
        if owner is not None:
            if self.failure is None:
                try:
                    self.state = await owner.run(lambda w: w.state(), self.settings.timeout_s)
                except (SandboxError, LLMError, TimeoutError) as exc:
                    self._fail(f"final state: {_why(exc, self.settings.timeout_s)}")
            await owner.stop(self.settings.timeout_s)
        for old in self._retired:
            await old.stop(self.settings.timeout_s)
        self._retired.clear()

    finish = hook(_finish)


def _why(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g}s"
    return f"{type(exc).__name__}: {exc}"


class UserMixin:
    """Adds the simulated user: ``user_turn`` answers after each policy turn without a
    tool call, from the task's persona, goal and hidden facts (``synth.user``)."""

    async def _user_turn(self: Any, conversation: list[dict[str, Any]]) -> str | None:
        """The user's next message, or None when satisfied, stuck, out of turns or failed."""
        from synth.schema import TaskSpec
        from synth.user import UserSimulator

        user: UserSettings = self.settings.user
        if self.failure is not None or self.user_outcome is not None:
            return None
        if self.user_turns >= user.max_user_turns:
            self.user_outcome = "max_user_turns"
            return None
        try:
            client = await shared_client(user)
            simulator = UserSimulator(TaskSpec.model_validate(self.task), client, seed=self._seed())
            simulator.turns = self.user_turns
            turn = await asyncio.wait_for(simulator.reply(conversation), self.settings.timeout_s)
        except (LLMError, TimeoutError, ValidationError) as exc:
            self.user_outcome = "failed"
            self._fail(f"user simulator: {_why(exc, self.settings.timeout_s)}")
            return None
        self.user_turns += 1
        if turn.status != "continue":
            self.user_outcome = turn.status
            return None
        return turn.message

    def _seed(self: Any) -> int:
        digest = hashlib.sha256(f"{self.task.get('id')}:{self._episodes}".encode()).hexdigest()
        return int(digest[:8], 16)

    user_turn = hook(_user_turn)


# ---------------------------------------------------------------------- per kind
class ExecutableTools(AgenticEnvironment):
    kind = "executable"
    toolset: ClassVar[str]

    async def _make_world(self) -> Environment:
        from sandboxes.executable import ExecutableEnvironment

        return ExecutableEnvironment(load_toolset(self.toolset))


class SimulatedTools(AgenticEnvironment):
    kind = "simulated"

    async def _make_world(self) -> Environment:
        from sandboxes.simulated import SimulatedEnvironment

        sim = self.settings.simulator
        client = await shared_client(sim)
        return SimulatedEnvironment(
            list(self.specs),
            client,
            failure_rates=sim.failure_rates,
            seed=0,
            max_tokens=sim.max_tokens,
        )


class MCPTools(AgenticEnvironment):
    kind = "mcp"
    server: ClassVar[MCPServerConfig]

    async def _make_world(self) -> Environment:
        from sandboxes.mcp_env import MCPEnvironment

        return MCPEnvironment(self.server)


class DockerTools(AgenticEnvironment):
    kind = "docker"
    _sandbox: ClassVar[Callable[[], Any] | None] = None
    """Returns the shared ``DockerSandbox`` (its warm pool); the gym sets it. Private:
    TRL would offer a public function of the class as a tool."""

    async def _make_world(self) -> Environment:
        from sandboxes.code_env import CodeEnvironment

        provider = type(self)._sandbox
        if provider is None:
            raise SandboxError("no Docker sandbox is configured for docker tasks")
        box = await asyncio.to_thread(provider)
        return CodeEnvironment(box)


_BASES: dict[str, type[AgenticEnvironment]] = {
    "executable": ExecutableTools,
    "simulated": SimulatedTools,
    "mcp": MCPTools,
    "docker": DockerTools,
}


# ------------------------------------------------------------------ class registry
_REGISTRY: dict[str, type[AgenticEnvironment]] = {}


def docker_specs() -> list[ToolSpec]:
    """The code sandbox's tools (``run_python``, ``run_shell``)."""
    from sandboxes.code_env import RUN_PYTHON, RUN_SHELL

    return [RUN_PYTHON, RUN_SHELL]


def environment_for(
    kind: str,
    name: str,
    specs: list[ToolSpec],
    settings: EpisodeSettings | None = None,
    *,
    server: MCPServerConfig | None = None,
    sandbox: Callable[[], Any] | None = None,
) -> type[AgenticEnvironment]:
    """The class for ``kind`` episodes offering ``specs``, made once per distinct tool
    list, settings and server, and registered under its ``key`` (the rows' routing key).

    ``name`` is the tool set, the MCP server's name, or any label; ``ValueError`` when a
    tool cannot be a method (a reserved or non-identifier name, a parameter that is not
    an identifier) — such a task cannot be played through TRL.
    """
    if kind not in _BASES:
        raise ValueError(f"unknown environment kind {kind!r}; known: {', '.join(KINDS)}")
    if kind == "executable":
        load_toolset(name)  # ToolSetError (a ValueError) naming the set and why
    if kind == "mcp" and server is None:
        raise ValueError(f"MCP server {name!r} has no configuration")
    settings = settings or EpisodeSettings()
    identity = json.dumps(
        [
            [s.to_openai() for s in specs],
            settings.model_dump(mode="json"),
            server.model_dump(mode="json") if server else None,
        ],
        sort_keys=True,
    )
    key = f"{kind}:{name}:{hashlib.sha256(identity.encode()).hexdigest()[:8]}"
    if key not in _REGISTRY:
        _REGISTRY[key] = _make_class(kind, name, key, specs, settings, server)
    cls = _REGISTRY[key]
    if sandbox is not None:
        cls._sandbox = sandbox  # type: ignore[attr-defined]
    return cls


def _make_class(
    kind: str,
    name: str,
    key: str,
    specs: list[ToolSpec],
    settings: EpisodeSettings,
    server: MCPServerConfig | None,
) -> type[AgenticEnvironment]:
    members: dict[str, Any] = {
        "key": key,
        "specs": tuple(specs),
        "settings": settings,
        "__doc__": f"Tools of {kind} environment {name}.",
    }
    if kind == "executable":
        members["toolset"] = name
    if server is not None:
        members["server"] = server
    for spec in specs:
        members[spec.name] = tool_method(spec)
    bases: tuple[type, ...] = (_BASES[kind],)
    if settings.user is not None:
        bases = (UserMixin, *bases)
    title = "".join(part.title() for part in re.split(r"[\W_]+", f"{kind} {name}") if part)
    return type(f"{title}Environment", bases, members)


def environment_class(key: str) -> type[AgenticEnvironment]:
    """The class registered under routing ``key``; a bare tool-set name (``bank``) gives
    that set's single-goal class."""
    if key in _REGISTRY:
        return _REGISTRY[key]
    try:
        toolset = load_toolset(key)
    except ToolSetError:
        raise KeyError(
            f"no environment registered as {key!r} (the gym registers them as it loads)"
        ) from None
    return environment_for("executable", key, toolset.specs())


def tool_method(spec: ToolSpec) -> Callable[..., Awaitable[str]]:
    """An async method with ``spec``'s name, typed signature and Google docstring, calling
    the world; ``ValueError`` when ``spec`` cannot be a method."""
    if spec.name in RESERVED or not spec.name.isidentifier() or spec.name.startswith("_"):
        raise ValueError(f"tool name {spec.name!r} cannot be an environment method")

    async def method(self: AgenticEnvironment, **arguments: Any) -> str:
        return await self._call(spec.name, arguments)

    properties: dict[str, Any] = spec.parameters.get("properties") or {}
    required = set(spec.parameters.get("required") or [])
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    lines = []
    for arg, schema in properties.items():
        if not arg.isidentifier() or keyword.iskeyword(arg) or arg == "self":
            raise ValueError(f"tool {spec.name}: parameter {arg!r} cannot be a Python argument")
        kind = _PY_TYPES.get(str(schema.get("type")), str)
        annotation = kind if arg in required else kind | None
        default = inspect.Parameter.empty if arg in required else None
        parameters.append(
            inspect.Parameter(
                arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
        annotations[arg] = annotation
        description = " ".join(str(schema.get("description") or f"The {arg}.").split())
        if schema.get("enum"):
            description += f" (choices: {json.dumps(schema['enum'])})"
        lines.append(f"    {arg}: {description}")
    annotations["return"] = str
    method.__name__ = method.__qualname__ = spec.name
    method.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    summary = " ".join((spec.description or spec.name).split())
    method.__doc__ = summary + ("\n\nArgs:\n" + "\n".join(lines) if lines else "")
    return method
