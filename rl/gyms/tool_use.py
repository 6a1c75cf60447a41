"""The tool-use gym: synthesized (or hand-written) agentic tasks of every environment kind.

Tasks come from the synthesis pipeline's ``rl_prompts.parquet`` (columns ``prompt``,
``task`` — a TaskSpec as JSON —, ``tools`` — the agent's OpenAI tools as JSON —,
``environment`` and ``toolset``) or from a JSONL file whose rows are TaskSpec objects with,
beside them, ``toolset`` (executable), ``tools`` (OpenAI tools, for simulated or MCP
tasks), ``mcp_server`` (a server's name in ``mcp_servers`` or a whole
:class:`~sandboxes.mcp_env.MCPServerConfig`) and optionally ``system_prompt``. Every kind
plays (:mod:`rl.environments`): ``executable`` in its tool set, ``simulated`` against the
LLM tool simulator, ``mcp`` in a real server process per roll-out (the server named by
the row, else the one in ``mcp_servers`` named like the task's domain, as the synthesis
names them), ``docker`` with ``run_python`` and ``run_shell`` in the shared sandbox pool.
A task that cannot be played (no tool set, no tools, no server, a tool that cannot be a
method) is skipped with a warning naming it and why; a kind left out of ``kinds`` is
skipped on purpose.

Rewards, read from the environment after the roll-out: ``None`` when the environment
itself failed (``env.failure``: the simulator, the user model, the MCP server or the
sandbox), never a 0 the policy did not earn. Else, with an expected final state that the
initial state does not already meet: 1 when the final state matches it
(``sandboxes.executable.state_differences``), else 0. Else, for a docker task with tests: 1
when the final code passes them in the sandbox (``sandboxes.code.run_python_tests`` on
``synth.judging.final_code``), else 0; ``None`` when the sandbox fails. Else the rubrics
judge scores the whole trajectory (prompt, user turns, tool calls and results, final
answer) against the task's rubric plus ``judge_rubrics`` — ``None`` if the judge fails.
A roll-out whose final answer is empty or degenerate scores 0 in the gate
(:mod:`rl.gyms.base`) whatever the state: the agent is asked to say what it did.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from llm.yamlconf import InputFile, first_problem
from rl.environments import (
    KINDS,
    EpisodeSettings,
    SimulatorSettings,
    UserSettings,
    docker_specs,
    environment_for,
)
from rl.gyms.base import (
    Gym,
    GymError,
    GymOptions,
    Sample,
    Split,
    Task,
    json_lines,
    register,
    split_items,
)
from sandboxes.executable import state_differences
from sandboxes.mcp_env import MCPServerConfig
from sandboxes.toolsets import ToolSetError, load_toolset
from synth.config import McpServer
from synth.schema import EnvironmentKind, RLPromptRow, TaskSpec
from tool_registry import ToolSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from rubrics import RubricSet

log = logging.getLogger(__name__)
SYSTEM = (
    "You are a careful assistant. Use the tools to do what the user asks, then say what you did."
)
SYSTEM_CODE = (
    "You are a careful programmer. Try your code with run_python, then answer with the "
    "final code in one ```python block."
)


class ToolTask(BaseModel):
    """One playable task: its prompt, its TaskSpec and the environment class it plays in."""

    model_config = ConfigDict(extra="forbid")

    prompt: list[dict[str, Any]]
    task: TaskSpec
    environment: str
    """The routing key of its class in :mod:`rl.environments`."""
    toolset: str | None = None


class ToolUseOptions(GymOptions):
    path: InputFile
    """``rl_prompts.parquet`` from ``python -m synth run``, or a ``.jsonl`` of TaskSpec rows
    (with ``toolset``, ``tools``, ``mcp_server``, ``system_prompt`` beside them)."""
    kinds: list[EnvironmentKind] = Field(default_factory=lambda: list(KINDS))
    """Environment kinds to play; tasks of other kinds are left out."""
    user: UserSettings | None = None
    """The simulated user (``{endpoint, model, max_user_turns}``): it answers each policy
    turn that ends without a tool call. ``null``: single-goal roll-outs."""
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    """The tool simulator of ``simulated`` tasks (endpoint, model, injected failure rates)."""
    mcp_servers: list[McpServer] = Field(default_factory=list)
    """MCP servers by name (as the synthesis' ``tools.mcp_servers``): an ``mcp`` task plays
    in the one named by its row's ``mcp_server``, else by its domain."""
    max_tool_calls: int = Field(8, ge=1)
    """Tool calls per roll-out; later calls answer the policy with an error."""
    timeout_s: float = Field(50.0, gt=0)
    """Longest wait for one tool call, user turn or server start; past it the roll-out's
    environment has failed (reward ``None``)."""
    judge_rubrics: list[str] = Field(default_factory=lambda: ["trajectory"])
    """Rubrics added to the task's own rubric when there is no check: built-in ids or
    ids from ``judge_rubric_files``."""
    judge_rubric_files: list[str] = Field(default_factory=list)
    """Your own rubric YAML files or folders, loaded beside the built-in library."""

    _rubric_set: RubricSet | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load_rubrics(self) -> ToolUseOptions:
        from rubrics.loader import require

        self._rubric_set = require(self.judge_rubrics, self.judge_rubric_files)
        return self

    def rubric_set(self) -> RubricSet:
        """The library plus ``judge_rubric_files``, as read when the options were loaded."""
        assert self._rubric_set is not None  # set by the validator
        return self._rubric_set

    def episode_settings(self) -> EpisodeSettings:
        return EpisodeSettings(
            user=self.user,
            simulator=self.simulator,
            max_tool_calls=self.max_tool_calls,
            timeout_s=self.timeout_s,
        )


@register
class ToolUseGym(Gym):
    name = "tool_use"
    Options = ToolUseOptions
    options: ToolUseOptions

    def load(self, split: Split) -> list[Task]:
        tasks = read_tasks(self.options.path, self.options, sandbox=self._sandbox)
        return [
            Task(
                prompt=t.prompt,
                payload={"task": t.task.model_dump(mode="json"), "toolset": t.toolset},
                environment=t.environment,
            )
            for t in split_items(tasks, split, self.options)
        ]

    def _sandbox(self) -> Any:
        return self.resources.get("sandbox")

    def verify_batch(self, samples: list[Sample]) -> list[float | None]:
        scores: list[float | None] = [None] * len(samples)
        judged, tested = [], []
        for index, sample in enumerate(samples):
            env = sample.environment
            if getattr(env, "state", None) is None or getattr(env, "failure", None):
                continue  # not played, or the environment failed: no reward to give
            task = sample.payload.get("task") or {}
            checks = task.get("checks") or {}
            expected = checks.get("expected_state")
            if expected is not None and state_differences(
                task.get("initial_state") or {}, expected
            ):
                scores[index] = 0.0 if state_differences(env.state, expected) else 1.0
            elif checks.get("tests") and task.get("environment") == "docker":
                tested.append(index)
            else:  # no check, or an expected state that doing nothing already meets
                judged.append(index)
        if tested:
            results = self._run_tests([samples[i] for i in tested])
            for index, result in zip(tested, results, strict=True):
                scores[index] = result
        if judged:
            verdicts = asyncio.run(self._judge([samples[i] for i in judged]))
            for index, verdict in zip(judged, verdicts, strict=True):
                scores[index] = verdict
        return scores

    def _run_tests(self, samples: list[Sample]) -> list[float | None]:
        """The final code of each docker roll-out against its task's tests, on the pool."""
        from sandboxes.base import SandboxError
        from sandboxes.code import run_python_tests
        from sandboxes.code_env import NO_ANSWER
        from synth.judging import final_code
        from synth.schema import Trajectory

        box = self._sandbox()

        def one(sample: Sample) -> float | None:
            task = sample.payload["task"]
            played = Trajectory(
                task_id=task["id"],
                agent_id=task["agent_id"],
                messages=sample.completion,
                tools=[],
                final_state=sample.environment.state,
            )
            checks = task["checks"]
            try:
                run = run_python_tests(
                    box, final_code(played), checks["tests"], checks.get("entry_point")
                )
            except SandboxError as exc:
                log.warning("tool_use: tests of %s could not run: %s", task["id"], exc)
                return None
            if run.stderr.startswith(NO_ANSWER):
                return None
            return 1.0 if run.ok else 0.0

        with ThreadPoolExecutor(max_workers=max(1, getattr(box, "pool_size", 1))) as pool:
            return list(pool.map(one, samples))

    async def _judge(self, samples: list[Sample]) -> list[float | None]:
        from llm import ChatClient
        from rubrics import JudgeError, RubricSet, judge

        async def one(sample: Sample, client: ChatClient) -> float | None:
            spec = TaskSpec.model_validate(sample.payload["task"])
            base = self.options.rubric_set()
            rubrics = RubricSet({**base.rubrics, spec.rubric.id: spec.rubric})
            trajectory = sample.prompt + sample.completion
            ids = [spec.rubric.id, *self.options.judge_rubrics]
            try:
                verdict = await judge(spec.user_goal, trajectory, ids, client, rubric_set=rubrics)
            except JudgeError:
                return None
            return verdict.overall

        async with ChatClient(self.resources.get("judge")) as client:
            return list(await asyncio.gather(*(one(s, client) for s in samples)))


# ------------------------------------------------------------------------ task files
def read_tasks(
    path: str | Path,
    options: ToolUseOptions | None = None,
    *,
    sandbox: Callable[[], Any] | None = None,
) -> list[ToolTask]:
    """Playable tasks from parquet or JSONL, each with its environment class registered;
    unplayable ones are skipped with a warning naming them. ``GymError`` for a bad row
    (naming file, row and field) or a file with nothing playable."""
    path = Path(path)
    if not path.exists():
        raise GymError(f"{path}: no such file")
    options = options or ToolUseOptions(path=path)
    rows = _parquet_rows(path) if path.suffix == ".parquet" else json_lines(path)
    reader = _Reader(options, sandbox)
    tasks, left_out = [], 0
    for where, row in rows:
        task = reader.task(where, row)
        if task is None:
            left_out += 1
        else:
            tasks.append(task)
    if left_out:
        log.warning("%s: %d of %d tasks left out (see above why)", path, left_out, len(rows))
    if not tasks:
        raise GymError(f"{path}: no playable task of the kinds {', '.join(options.kinds)}")
    return tasks


def _parquet_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The rows of an ``rl_prompts.parquet``, each checked against the synthesis' own
    contract (:class:`synth.schema.RLPromptRow`)."""
    import pyarrow.parquet as pq

    rows = []
    for index, row in enumerate(pq.read_table(path).to_pylist()):
        where = f"{path}: row {index}"
        try:
            RLPromptRow.model_validate(row)
        except ValidationError as exc:
            raise GymError(f"{where}: {first_problem(exc, '(row)')}") from exc
        rows.append((where, row))
    return rows


class _Reader:
    """Turns rows into tasks for one options set; lists each MCP server's tools once."""

    def __init__(self, options: ToolUseOptions, sandbox: Callable[[], Any] | None) -> None:
        self.options, self.sandbox = options, sandbox
        self.settings = options.episode_settings()
        self.servers = {s.name: s for s in options.mcp_servers}
        self._listed: dict[str, list[ToolSpec]] = {}

    def task(self, where: str, row: dict[str, Any]) -> ToolTask | None:
        row = dict(row)
        extra = {k: row.pop(k, None) for k in ("toolset", "system_prompt", "tools", "mcp_server")}
        spec = _spec(where, row)
        if spec.environment not in self.options.kinds:
            log.info(
                "%s: task %s left out: kind %s is not in kinds", where, spec.id, spec.environment
            )
            return None
        try:
            environment = self._environment(where, spec, extra)
        except _Unplayable as exc:
            log.warning(
                "%s: task %s (%s) cannot be played: %s", where, spec.id, spec.environment, exc
            )
            return None
        prompt = row.get("prompt") if isinstance(row.get("prompt"), list) else None
        if prompt is None:
            system = extra["system_prompt"] or (
                SYSTEM_CODE if spec.environment == "docker" else SYSTEM
            )
            prompt = [
                {"role": "system", "content": system},
                {"role": "user", "content": spec.user_goal},
            ]
        return ToolTask(
            prompt=[_clean(m) for m in prompt],
            task=spec,
            environment=environment,
            toolset=extra["toolset"],
        )

    def _environment(self, where: str, spec: TaskSpec, extra: dict[str, Any]) -> str:
        kind = spec.environment
        try:
            if kind == "executable":
                toolset = extra["toolset"]
                if not toolset:
                    raise _Unplayable("no toolset names its tool set")
                try:
                    specs = load_toolset(toolset).specs()
                except ToolSetError as exc:
                    raise GymError(f"{where}: toolset: {exc}") from exc
                cls = environment_for(kind, toolset, specs, self.settings)
            elif kind == "simulated":
                specs = _tools(where, extra["tools"])
                if not specs:
                    raise _Unplayable("it has no tools for the simulator to play")
                cls = environment_for(kind, spec.domain, specs, self.settings)
            elif kind == "mcp":
                name, server = self._server(where, spec, extra["mcp_server"])
                specs = _tools(where, extra["tools"]) or self._list(name, server)
                cls = environment_for(kind, name, specs, self.settings, server=server)
            elif spec.checks.repo is not None:
                raise _Unplayable(
                    "a repository (SWE) task: its project's container is played by the "
                    "synthesis, not by the RL gyms yet"
                )
            else:
                cls = environment_for(
                    kind, "code", docker_specs(), self.settings, sandbox=self.sandbox
                )
        except ValueError as exc:
            raise _Unplayable(str(exc)) from exc
        return cls.key

    def _server(self, where: str, spec: TaskSpec, given: Any) -> tuple[str, MCPServerConfig]:
        if isinstance(given, dict):
            try:
                return "inline", _interpreted(MCPServerConfig.model_validate(given))
            except ValidationError as exc:
                problem = first_problem(exc, "(server)")
                raise GymError(f"{where}: mcp_server.{problem}") from exc
        name = str(given or spec.domain)
        if name not in self.servers:
            known = ", ".join(self.servers) or "none"
            raise _Unplayable(f"no MCP server named {name!r} in mcp_servers (configured: {known})")
        server = self.servers[name]
        return name, _interpreted(
            MCPServerConfig.model_validate(server.model_dump(exclude={"name"}))
        )

    def _list(self, name: str, server: MCPServerConfig) -> list[ToolSpec]:
        """The server's tools, listed once per load from a server started for it."""
        from sandboxes.mcp_env import list_server_tools

        key = server.model_dump_json()
        if key not in self._listed:
            try:
                self._listed[key] = asyncio.run(list_server_tools(server))
            except Exception as exc:  # named and re-raised as a load error
                raise GymError(f"MCP server {name!r}: its tools cannot be listed: {exc}") from exc
        return self._listed[key]


def _interpreted(server: MCPServerConfig) -> MCPServerConfig:
    """``python`` (or ``python3``) as a server's program means the interpreter running the
    training, whose environment has the server installed, whatever ``PATH`` says."""
    if server.command[0] not in ("python", "python3"):
        return server
    return server.model_copy(update={"command": [sys.executable, *server.command[1:]]})


class _Unplayable(Exception):
    """Why a task cannot be played (it is skipped with this reason)."""


def _spec(where: str, row: dict[str, Any]) -> TaskSpec:
    raw = row.get("task", row) if "task" in row else row
    try:
        return (
            TaskSpec.model_validate_json(raw)
            if isinstance(raw, str)
            else TaskSpec.model_validate(raw)
        )
    except ValidationError as exc:
        raise GymError(f"{where}: task.{first_problem(exc, '(task)')}") from exc


def _tools(where: str, raw: Any) -> list[ToolSpec]:
    """ToolSpecs from OpenAI tools (a list, or its JSON as parquet stores it)."""
    if raw is None or raw == "":
        return []
    try:
        tools = json.loads(raw) if isinstance(raw, str) else raw
        return [ToolSpec.from_openai(t) for t in tools]
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise GymError(f"{where}: tools: {' '.join(str(exc).split())[:200]}") from exc


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    """Parquet gives every message every key; keep role and content."""
    return {"role": message["role"], "content": message.get("content") or ""}
