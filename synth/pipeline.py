"""``python -m synth run CONFIG``: the stages on Ray, resumable, with live progress.

tools → agents → tasks → roll-out + judge → shards → manifest, RL prompts, report. The
agents and tasks stages are checkpointed as JSONL once complete; the roll-out stage
writes a parquet shard every ``shard_size`` records (and every 30 s), and the records it
holds when stopped (Ctrl-C, SIGTERM, a failure), so an interrupted run loses only the
tasks in flight, which the resubmitted run redoes — ids are deterministic, and a task
already in a shard is never played again. A run directory is bound to its config's
hash: resuming under a different config is refused.

A job that cannot do what it was asked raises :class:`JobFailed` with a one-line reason
(a full disk, a lost Ray node, every task failed, counts that do not reconcile); the
directory stays resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import ray
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from llm import ChatClient, Endpoint
from llm.interrupt import keeping_sigterm_handler, signals_held
from llm.progress import DEFAULT_EVERY_S, StageProgress
from synth.actors import ActorPool, ClusterLost, stream
from synth.agents import SWE_TOOLSET, ToolSource, plan_agents
from synth.config import ROLES, SynthConfig
from synth.decontam import DecontamError, OverlapIndex, decontaminate
from synth.errors import TaskError
from synth.manifest import (
    add_usage,
    build_manifest,
    export_rl_prompts,
    shortfall,
)
from synth.problems import Problem, generate_problems, real_problems
from synth.schema import (
    AgentSpec,
    BlueprintCounts,
    Manifest,
    ProblemCounts,
    Record,
    RepositoryCounts,
    TaskSpec,
)
from synth.store import RunStore, atomic_write
from synth.tools import build_tools
from synth.worker import WorkerSettings, preflight, settings_from

if TYPE_CHECKING:
    from llm.embedded import EmbeddedServers

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
FLUSH_EVERY_S = 30.0


class JobFailed(Exception):
    """The job could not do what it was asked; the message says why, in one line."""


def run(
    config: SynthConfig,
    *,
    console: Console | None = None,
    progress_every_s: float = DEFAULT_EVERY_S,
) -> Manifest:
    """Run (or resume) the job described by ``config``; returns the manifest.

    Raises :class:`JobFailed` when it cannot finish or finishes having failed every task;
    ``progress_every_s`` is the interval of progress lines when ``console`` is not a
    terminal.
    """
    console = console or Console(stderr=True)
    store = RunStore(config.output_dir)
    try:
        manifest = _run(config, store, console, progress_every_s)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise JobFailed(
            f"no space left on the device writing {exc.filename}; nothing half-written "
            "was kept: free some space and run the same command again to resume"
        ) from exc
    except ClusterLost as exc:
        raise JobFailed(f"{exc}; run the same command again to resume") from exc
    problem = shortfall(manifest)
    if problem is not None:
        raise JobFailed(f"{problem} (see {store.root / 'manifest.json'})")
    return manifest


def _run(
    config: SynthConfig, store: RunStore, console: Console, progress_every_s: float
) -> Manifest:
    _bind(store, config)
    with embedded_servers(config, console) as servers:
        endpoints: dict[str, Endpoint] = {role: config.endpoint(role, servers) for role in ROLES}
        asyncio.run(preflight(endpoints))
        if config.environment_mix.docker > 0:
            _sandbox_ready(console)
        # before Ray: an MCP server that will not list its tools fails the job in one line
        source = asyncio.run(_tools(config, endpoints["generator"]))
        run_id = uuid.uuid4().hex[:12]
        stages = store.load_json("stages.json") or {}
        with _ray(config), _sandboxes_swept(config, run_id):
            problems = _problems(config, store, stages, endpoints["generator"], run_id)
            mutations = _mutations(config, store, stages, endpoints["generator"])
            pool = ActorPool(
                endpoints,
                settings(config, run_id),
                actors=config.ray.actors,
                tasks_per_actor=config.ray.tasks_per_actor,
                num_cpus=config.ray.actor_cpus,
            )
            try:
                with _progress(console, progress_every_s) as progress:
                    agents = _agents(config, store, pool, source, stages, progress)
                    made: dict[str, list[Any]] = {"problems": problems, "mutations": mutations}
                    tasks = _tasks(config, store, pool, agents, made, stages, progress)
                    _rollouts(config, store, pool, agents, tasks, progress)
            finally:
                pool.shutdown()
        export_rl_prompts(store, agents, tasks)
        manifest = build_manifest(
            store,
            name=config.name,
            config_hash=config.content_hash(),
            endpoints=endpoints,
            stages=stages,
            tools=len(source.repository) + sum(len(v) for v in source.toolsets.values()),
            agents=agents,
            tasks=tasks,
        )
    store.save_json("manifest.json", manifest.model_dump(mode="json"))
    from synth.report import write_report

    write_report(store, manifest)
    return manifest


def settings(config: SynthConfig, run_id: str = "") -> WorkerSettings:
    return settings_from(
        config.rollout,
        config.judge,
        seed=config.seed,
        tasks_per_agent=config.tasks.per_agent,
        difficulties=tuple(config.tasks.difficulties),
        sandbox_labels={"summit.run": run_id} if run_id else {},
        mcp_servers={server.name: server for server in config.tools.mcp_servers},
        blueprints=tuple(config.tasks.blueprints),
        blueprint_judge=config.tasks.blueprint_judge,
        swe_image=config.tasks.repositories.image,
    )


def _sandbox_ready(console: Console) -> None:
    """The Docker engine answers and the sandbox image exists (built now when missing)."""
    from sandboxes.base import SandboxError
    from sandboxes.docker import ensure_image

    try:
        ensure_image(announce=console.print)
    except SandboxError as exc:
        raise TaskError(
            f"environment_mix.docker > 0 needs the Docker sandbox: {exc}; start Docker and run "
            "`python -m sandboxes build-image`, or pass --set environment_mix.docker=0"
        ) from exc


# ---------------------------------------------------------------------- stages
async def _tools(config: SynthConfig, generator: Endpoint) -> ToolSource:
    async with ChatClient(generator) as client:
        return await build_tools(config, Path(config.output_dir), client)


def _stage(
    store: RunStore,
    stages: dict[str, Any],
    name: str,
    model: type[M],
    produce: Callable[[dict[str, dict[str, float]]], tuple[list[M], dict[str, Any]]],
) -> list[M]:
    """A checkpointed stage: ``<name>.jsonl`` when a run already wrote it, else what
    ``produce(usage)`` returns, saved with its summary (and the usage it added up) in
    ``stages.json``. Nothing is saved of an empty result, so a rerun tries again."""
    saved = store.load_models(f"{name}.jsonl", model)
    if saved is not None:
        return saved
    usage: dict[str, dict[str, float]] = {}
    made, summary = produce(usage)
    stages[name] = {**summary, "usage": usage}
    store.save_json("stages.json", stages)
    if made:
        store.save_models(f"{name}.jsonl", made)
    return made


def _streamed(
    pool: ActorPool,
    method: str,
    items: Iterable[tuple[str, tuple[Any, ...]]],
    on_error: Callable[[str, str], tuple[Any, ...]],
    progress: StageProgress,
    bar: Any,
    usage: dict[str, dict[str, float]],
    step: int = 1,
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``stream``'s results, each (a tuple whose last item is the usage it spent) counted
    into ``usage`` and the bar advanced by ``step``; yields the key and the rest."""
    for key, result in stream(pool, method, items, on_error):
        add_usage(usage, result[-1])
        progress.advance(bar, step)
        yield key, result[:-1]


def _agents(
    config: SynthConfig,
    store: RunStore,
    pool: ActorPool,
    source: ToolSource,
    stages: dict[str, Any],
    progress: StageProgress,
) -> list[AgentSpec]:
    def produce(usage: dict[str, dict[str, float]]) -> tuple[list[AgentSpec], dict[str, Any]]:
        planned = plan_agents(config, source)
        by_id = {a.id: a for a in planned}
        bar = progress.add_task("agents", total=len(planned))
        items = ((a.id, (a,)) for a in planned)
        written, fallback = {}, 0
        for key, (agent, ok) in _streamed(
            pool, "write_agent", items, lambda k, e: (by_id[k], False, {}), progress, bar, usage
        ):
            written[key], fallback = agent, fallback + (not ok)
        return [written[a.id] for a in planned], {"fallback": fallback}

    return _stage(store, stages, "agents", AgentSpec, produce)


def _problems(
    config: SynthConfig,
    store: RunStore,
    stages: dict[str, Any],
    generator: Endpoint,
    run_id: str,
) -> list[Problem]:
    """The coding problems Docker tasks are drawn from (checkpointed as a stage): the
    configured real sets, and generated problems the sandbox validated."""
    if config.environment_mix.docker <= 0:
        return []

    def produce(usage: dict[str, dict[str, float]]) -> tuple[list[Problem], dict[str, Any]]:
        coding = config.tasks.coding
        made = [
            p
            for real in coding.real_sets
            for p in real_problems(real.name, real.path)
            if not (coding.exclude_eval_sets and p.eval_set)
        ]
        counts = ProblemCounts(real=len(made))
        if coding.generated:
            kept, rejected = asyncio.run(
                _generated_problems(generator, coding.generated, config.seed, run_id, usage)
            )
            made += kept
            generated = {
                "generated_tried": coding.generated,
                "generated_kept": len(kept),
                "rejected_by_reason": dict(rejected),
            }
            counts = counts.model_copy(update=generated)
        return made, {"counts": counts.model_dump()}

    return _stage(store, stages, "problems", Problem, produce)


async def _generated_problems(
    generator: Endpoint, count: int, seed: int, run_id: str, usage: dict[str, dict[str, float]]
) -> tuple[list[Problem], Counter[str]]:
    from sandboxes.docker import DockerSandbox

    async with ChatClient(generator) as client:
        with DockerSandbox(labels={"summit.run": run_id}) as box:
            made = await generate_problems(client, count, seed, box)
        add_usage(usage, {"generator": client.usage.as_dict()})
    return made


def _mutations(
    config: SynthConfig, store: RunStore, stages: dict[str, Any], generator: Endpoint
) -> list[TaskSpec]:
    """The repository tasks (checkpointed as a stage): per project of
    ``tasks.repositories``, the mutants whose tests fail while the original's pass, each
    with the issue the generator wrote from the failing output. A project that cannot be
    used (not in the image, tests failing before any mutation) is counted with its
    reason; the run goes on."""
    block = config.tasks.repositories
    if config.environment_mix.docker <= 0 or not block.projects:
        return []

    def produce(usage: dict[str, dict[str, float]]) -> tuple[list[TaskSpec], dict[str, Any]]:
        from sandboxes.docker import image_exists

        if not image_exists(block.image):
            raise TaskError(
                f"tasks.repositories needs the image {block.image}: run "
                "`python -m sandboxes build-swe-image` (it fetches the projects' sources)"
            )
        made, summary = asyncio.run(_mutation_tasks(config, generator, usage))
        return made, {"projects": summary}

    return _stage(store, stages, "mutations", TaskSpec, produce)


async def _mutation_tasks(
    config: SynthConfig, generator: Endpoint, usage: dict[str, dict[str, float]]
) -> tuple[list[TaskSpec], dict[str, Any]]:
    from sandboxes.base import SandboxError
    from synth.swe_tasks import build_swe_tasks

    block = config.tasks.repositories
    made: list[TaskSpec] = []
    summary: dict[str, RepositoryCounts] = {}
    async with ChatClient(generator) as client:
        for project in block.projects:
            try:
                kept, dropped = await build_swe_tasks(
                    project,
                    client,
                    image=block.image,
                    seed=config.seed,
                    per_function=block.per_function,
                    max_mutants=block.max_mutants,
                )
            except SandboxError as exc:
                summary[project] = RepositoryCounts(error=str(exc))
                continue
            made += [t.task_spec(agent_id="") for t in kept]
            summary[project] = RepositoryCounts(
                tried=len(kept) + sum(dropped.values()),
                kept=len(kept),
                dropped_by_reason=dict(dropped),
            )
        add_usage(usage, {"generator": client.usage.as_dict()})
    return made, {name: counts.model_dump() for name, counts in summary.items()}


def drawn_problems(
    agents: list[AgentSpec], problems: list[Problem | TaskSpec], per_agent: int, seed: int
) -> dict[str, list[Problem | TaskSpec]]:
    """Per agent of ``agents`` (those whose tasks the pool makes: the coding agents for
    coding problems, the repository agents for mutation tasks), what its tasks are made
    from: consecutive slices of the pool in one seeded order, so no two agents share an
    item until the pool is used up (then it wraps)."""
    if not problems or not agents:
        return {}
    order = list(problems)
    random.Random(f"problems:{seed}").shuffle(order)
    drawn: dict[str, list[Problem | TaskSpec]] = {}
    for index, agent in enumerate(agents):
        start = index * per_agent
        drawn[agent.id] = [order[(start + k) % len(order)] for k in range(per_agent)]
    return drawn


def _tasks(
    config: SynthConfig,
    store: RunStore,
    pool: ActorPool,
    agents: list[AgentSpec],
    material: dict[str, list[Any]],
    stages: dict[str, Any],
    progress: StageProgress,
) -> list[TaskSpec]:
    """Every agent's tasks; ``material`` holds the pools Docker agents' tasks are drawn
    from (``problems``, ``mutations``)."""

    def produce(usage: dict[str, dict[str, float]]) -> tuple[list[TaskSpec], dict[str, Any]]:
        per_agent = config.tasks.per_agent
        bar = progress.add_task("tasks", total=len(agents) * per_agent)
        docker = [a for a in agents if a.environment == "docker"]
        coders = [a for a in docker if a.toolset != SWE_TOOLSET]
        fixers = [a for a in docker if a.toolset == SWE_TOOLSET]
        drawn = {
            **drawn_problems(coders, material["problems"], per_agent, config.seed),
            **drawn_problems(fixers, material["mutations"], per_agent, config.seed),
        }
        items = ((a.id, (a, drawn.get(a.id, []))) for a in agents)
        made: dict[str, list[TaskSpec]] = {}
        failures: list[str] = []
        blueprints = BlueprintCounts()
        for key, (tasks, failed, counts) in _streamed(
            pool,
            "make_tasks",
            items,
            lambda k, e: ([], [f"{k}: {e}"], BlueprintCounts(), {}),
            progress,
            bar,
            usage,
            per_agent,
        ):
            made[key] = tasks
            failures += failed
            blueprints = blueprints.plus(counts)
        tasks = [t for a in agents for t in made[a.id]]
        removed: list[dict[str, str]] = []
        if config.tasks.decontaminate.against:
            tasks, removed = _decontaminated(config, tasks)
        summary = {
            "failures": failures,
            "blueprints": blueprints.model_dump(),
            "decontaminated": removed,
        }
        return tasks, summary

    return _stage(store, stages, "tasks", TaskSpec, produce)


def _decontaminated(
    config: SynthConfig, tasks: list[TaskSpec]
) -> tuple[list[TaskSpec], list[dict[str, str]]]:
    """``tasks`` without those overlapping the named evaluation sets, and what was removed
    (task, set, item, why)."""
    block = config.tasks.decontaminate
    try:
        index = OverlapIndex.of(block.against, n=block.n, threshold=block.threshold)
    except DecontamError as exc:
        raise TaskError(f"tasks.decontaminate: {exc}") from exc
    kept, removed = decontaminate(tasks, index)
    return kept, [
        {
            "task_id": r.task_id,
            "source": r.match.source,
            "item": r.match.item_id,
            "reason": r.match.reason(),
        }
        for r in removed
    ]


def _rollouts(
    config: SynthConfig,
    store: RunStore,
    pool: ActorPool,
    agents: list[AgentSpec],
    tasks: list[TaskSpec],
    progress: StageProgress,
) -> None:
    done = store.done_ids()
    todo = [t for t in tasks if t.id not in done]
    by_agent = {a.id: a for a in agents}
    by_task = {t.id: t for t in tasks}
    accepted = sum(1 for r in store.rows(["outcome"]) if r["outcome"] == "accepted")
    bar = progress.add_task("trajectories", total=len(tasks), completed=len(done))
    buffer: list[Record] = []
    last_flush, finished = time.monotonic(), len(done)

    def failed(key: str, error: str) -> Record:
        task = by_task[key]
        return Record(
            task_id=task.id,
            agent_id=task.agent_id,
            domain=task.domain,
            environment=task.environment,
            difficulty=task.difficulty,
            outcome="rejected",
            reason="worker_error",
            detail=error,
        )

    items = ((t.id, (t, by_agent[t.agent_id])) for t in todo)
    try:
        for _, record in stream(pool, "run_task", items, failed):
            buffer.append(record)
            accepted += record.outcome == "accepted"
            finished += 1
            progress.update(
                bar, advance=1, description=f"trajectories ({accepted}/{finished} kept)"
            )
            if len(buffer) >= config.shard_size or time.monotonic() - last_flush > FLUSH_EVERY_S:
                full, buffer, last_flush = buffer, [], time.monotonic()
                _write(store, full)
    finally:
        # Finished records are kept however the loop ends (a stop, a lost node); a write
        # that failed is not tried again (its records are redone on resume).
        if buffer:
            _write(store, buffer)


def _write(store: RunStore, records: list[Record]) -> None:
    """A shard pair (accepted, rejected) that a stop cannot cut in half: a record in one
    file and redone from the other would be doubled."""
    with signals_held():
        store.write_shard(records)


# --------------------------------------------------------------------- helpers
def _bind(store: RunStore, config: SynthConfig) -> None:
    """Tie the directory to this config (refuse another), record the resolved config.

    Every state file a resumed run reads is read here first, so an unreadable one fails
    the job in one line before a model, Ray or a container starts."""
    state = store.load_json("run.json")
    store.load_json("stages.json")
    store.load_models("agents.jsonl", AgentSpec)
    store.load_models("tasks.jsonl", TaskSpec)
    digest = config.content_hash()
    if state is not None and state.get("config_hash") != digest:
        raise TaskError(
            f"{store.root} holds a run of another config (hash {state.get('config_hash')}, "
            f"this one {digest}); choose another output_dir or delete it"
        )
    store.root.mkdir(parents=True, exist_ok=True)
    resolved = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    atomic_write(store.root / "config.yaml", resolved.encode())
    runs = (state or {}).get("starts", 0) + 1
    store.save_json("run.json", {"config_hash": digest, "starts": runs})


_MULTI_NODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch for multi-node clusters, by the name Ray 2.60 gives it."""


@contextlib.contextmanager
def _ray(config: SynthConfig) -> Iterator[None]:
    """Ray for the job: the caller's when already initialised (left running), else a
    cluster joined or started here and shut down on the way out, however it is left."""
    if ray.is_initialized():
        yield
        return
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    try:
        if address and address != "local":
            keeping_sigterm_handler(lambda: ray.init(address=address, log_to_driver=False))
        else:
            start_local_ray(config.ray.num_cpus or max(2, os.cpu_count() or 2))
        yield
    finally:
        ray.shutdown()


def start_local_ray(num_cpus: int) -> None:
    """Start a single-node Ray cluster in this process that listens on loopback only.

    Ray turns a node address of 127.0.0.1 into the machine's reachable address and then
    listens on every interface. With multi-node clusters switched off (Ray's own switch,
    on by default on Linux despite its name) it keeps to loopback: the environment
    variable tells the processes Ray starts, the constant tells this one (it was read when
    ``ray`` was imported). Both are restored once the cluster runs, so a later
    ``ray.init(address=...)`` in this process joins clusters as usual. A test checks
    every listening socket, so a Ray release that moves the switch fails there.
    """
    from ray._private import ray_constants

    variable = getattr(ray_constants, "ENABLE_RAY_CLUSTERS_ENV_VAR", _MULTI_NODE)
    saved = os.environ.get(variable), getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[variable] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        keeping_sigterm_handler(
            lambda: ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
            )
        )
    finally:
        if saved[0] is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = saved[0]
        if saved[1] is not None:
            ray_constants.ENABLE_RAY_CLUSTER = saved[1]


@contextlib.contextmanager
def _sandboxes_swept(config: SynthConfig, run_id: str) -> Iterator[None]:
    """Remove this run's sandbox containers once its workers are gone, however it ended:
    a worker that died (signal, OOM, lost node) never closed its pool."""
    try:
        yield
    finally:
        if config.environment_mix.docker > 0:
            from sandboxes.docker import remove_containers

            left = remove_containers({"summit.run": run_id})
            if left:
                log.info("removed %d sandbox containers a worker left behind", left)


@contextlib.contextmanager
def embedded_servers(config: SynthConfig, console: Console) -> Iterator[EmbeddedServers | None]:
    """The run's embedded servers when a role is on the embedded model or on a checkpoint
    (``model_path``), None otherwise; each checkpoint is started now, so a bad one fails
    before Ray. The roles resolve their endpoints against what is yielded."""
    if not config.roles_on("embedded") and not config.checkpoints():
        yield None
        return
    from llm.embedded import EmbeddedServers

    announce = lambda line: console.print(line, highlight=False)  # noqa: E731
    with EmbeddedServers(announce=announce) as servers:
        for path in config.checkpoints():
            servers.server(path)
        yield servers


def _progress(console: Console, every_s: float) -> StageProgress:
    return StageProgress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        every_s=every_s,
    )
