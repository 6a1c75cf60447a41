"""Playing tasks ``n`` times with a policy: the core of rejection sampling and agentic eval.

Each (task, sample) pair is a :class:`Trial` with an id and a seed derived from the task id
and the sample number alone. A trial is played by :meth:`synth.worker.Worker.run_task` —
the synthesis' own roll-out with its simulated user, decided by ``synth.judging.decide``
(the verifiable check where the task has one, else the rubrics judge) — never a copy of
it, with the policy as the ``agent`` role. Trials run concurrently (at most
``concurrency`` in flight) on one event loop, and each one is written the moment it
finishes as its own parquet shard (:class:`synth.store.RunStore`: an atomic rename), its
row's ``id`` being the trial id. A killed run so loses only the trials in flight; the next
run reads the ids already written and plays only the missing ones, never one twice. A
trial whose worker raised (a sandbox that broke under it) is logged, counted and not
written, so the next run tries it again.

A trials directory is bound to the hash of the config that decides its trials
(``TrialsConfig.trials_hash``): running another config into it is refused.

Not here: where tasks come from (:mod:`rl.task_sources`), what the trials are for
(:mod:`rl.rejection`, :mod:`rl.agentic_eval`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from llm import Endpoint
from llm.errors import ConfigError
from llm.files import atomic_write
from llm.progress import DEFAULT_EVERY_S, StageProgress
from rl.task_sources import TaskSet
from rl.trial_config import TrialsConfig
from sandboxes.mcp_env import MCPServerConfig
from synth import TaskError
from synth.config import RoleEndpoint
from synth.schema import AgentSpec, Record, TaskSpec, stable_id
from synth.store import RunStore
from synth.worker import Worker, preflight, settings_from

log = logging.getLogger(__name__)
EMBEDDED = "embedded"


class TrialsError(ConfigError):
    """Trials cannot start: a directory of another config, an endpoint that does not
    answer, no Docker sandbox for docker tasks. ``str()`` is one line saying what to do."""


@dataclass(frozen=True)
class Trial:
    """One play of one task: the ``sample``-th of its trials."""

    task: TaskSpec
    agent: AgentSpec
    sample: int
    check: Callable[[Record], Record] | None = field(default=None, compare=False)
    """The task source's own check after the judge stage (``TaskSet.checks``), if any."""

    @property
    def id(self) -> str:
        return trial_id(self.task.id, self.sample)

    @property
    def seed(self) -> int:
        """Seeds the environment, the user and the policy's calls of this trial."""
        return int(self.id.rsplit("-", 1)[1], 16) % 2**31


def trial_id(task_id: str, sample: int) -> str:
    """``trial-<12 hex>`` of (task id, sample): the key of a trial's row."""
    return stable_id("trial", task_id, sample)


def plan(task_set: TaskSet, tasks: Sequence[TaskSpec], samples: int) -> list[Trial]:
    """Every (task, sample) pair, sample by sample: a run cut short has covered every
    task about equally."""
    return [
        Trial(t, task_set.agent(t), s, task_set.checks.get(t.id))
        for s in range(samples)
        for t in tasks
    ]


@dataclass
class Played:
    """What one run of :func:`run_trials` did (the directory holds more when resumed)."""

    written: int = 0
    passed: int = 0
    errors: list[str] = field(default_factory=list)
    """One line per trial whose worker raised (not written: the next run tries again)."""


# ------------------------------------------------------------------------ directory
def open_store(root: str | Path, config: TrialsConfig) -> RunStore:
    """The trials directory ``root``; a directory that holds another config's trials is
    refused here, before anything starts (it is bound to this config once trials run)."""
    store = RunStore(root)
    state = store.load_json("run.json")
    digest = config.trials_hash()
    if state is not None and state.get("config_hash") != digest:
        raise TrialsError(
            f"{store.root} holds trials of another config (hash {state.get('config_hash')}, "
            f"this one {digest}); choose another directory or delete it"
        )
    return store


def _bind(store: RunStore, config: TrialsConfig) -> None:
    """Bind the directory to ``config``'s trials hash and record the resolved config."""
    resolved = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    atomic_write(store.root / "config.yaml", resolved.encode())
    store.save_json("run.json", {"config_hash": config.trials_hash()})


def finished(store: RunStore, trials: Sequence[Trial]) -> list[tuple[Trial, dict[str, Any]]]:
    """The written rows of ``trials`` (``id``, ``outcome``, ``reason``, ``verified``,
    ``usage``), each with its trial, in plan order; other rows in the directory are not
    read back."""
    by_id = {t.id: t for t in trials}
    rows = {
        r["id"]: r
        for r in store.rows(["id", "outcome", "reason", "verified", "usage"])
        if r["id"] in by_id
    }
    return [(t, rows[t.id]) for t in trials if t.id in rows]


# ------------------------------------------------------------------------ endpoints
@contextlib.contextmanager
def serving(
    policy: str | Path | RoleEndpoint, config: TrialsConfig
) -> Iterator[dict[str, Endpoint]]:
    """The Worker's endpoints for the block: ``agent`` (the policy), ``user``,
    ``tool_simulator`` and ``judge``.

    ``policy`` is ``embedded`` (the default model), a model directory (a checkpoint) or
    an endpoint block. The embedded engine serves what runs here, one server per model
    directory for the block (:class:`llm.embedded.EmbeddedServers`); roles on the
    ``embedded`` preset use the running server when ``SUMMIT_EMBEDDED_URL`` is set. Each
    block resolves as the synthesis resolves it (``RoleEndpoint.endpoint``).
    """
    from llm.embedded import EmbeddedServers

    if not isinstance(policy, RoleEndpoint):
        policy = RoleEndpoint(model_path=None if str(policy) == EMBEDDED else Path(policy))
    with EmbeddedServers() as servers:
        endpoints = {"agent": policy.endpoint(servers)}
        for role in ("user", "tool_simulator", "judge"):
            endpoints[role] = getattr(config.endpoints, role).endpoint(servers)
        if config.temperature is not None:
            endpoints["agent"] = endpoints["agent"].model_copy(
                update={"temperature": config.temperature}
            )
        yield endpoints


# -------------------------------------------------------------------------- playing
def play_missing(
    trials: Sequence[Trial],
    policy: str | Path | RoleEndpoint,
    config: TrialsConfig,
    store: RunStore,
    mcp_servers: dict[str, MCPServerConfig] | None = None,
    **options: Any,
) -> Played:
    """Serve ``policy`` and the roles (:func:`serving`) and play the trials not yet in
    ``store`` (:func:`run_trials`, which ``options`` go to); when none is missing,
    nothing is served or played."""
    done = store.done_ids()
    if all(t.id in done for t in trials):
        return Played()
    with serving(policy, config) as endpoints:
        return run_trials(trials, endpoints, config, store, mcp_servers, **options)


def run_trials(
    trials: Sequence[Trial],
    endpoints: dict[str, Endpoint],
    config: TrialsConfig,
    store: RunStore,
    mcp_servers: dict[str, MCPServerConfig] | None = None,
    *,
    console: Console | None = None,
    progress_every_s: float = DEFAULT_EVERY_S,
    max_trials: int | None = None,
    label: str = "trials",
) -> Played:
    """Play the trials not yet in ``store``, writing each as it finishes.

    ``max_trials`` bounds the trials this call writes (a budget: the next call plays the
    rest). Raises :class:`TrialsError` before any trial when an endpoint does not answer
    or docker trials have no sandbox."""
    done = store.done_ids()
    todo = [t for t in trials if t.id not in done]
    if any(t.task.environment == "docker" for t in todo):
        _sandbox_ready()
    settings = settings_from(
        config.limits,
        config.judge,
        sandbox_pool=config.sandbox_pool,
        mcp_servers=dict(mcp_servers or {}),
    )
    progress = StageProgress(
        TextColumn("{task.description:<30}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        every_s=progress_every_s,
    )

    async def main() -> Played:
        try:
            await preflight(endpoints)
        except TaskError as exc:
            raise TrialsError(str(exc)) from None
        _bind(store, config)
        worker = Worker(endpoints, settings)
        bar = progress.add_task(label, total=len(trials), completed=len(trials) - len(todo))

        def advance(played: Played) -> None:
            progress.update(
                bar, advance=1, description=f"{label} ({played.passed}/{played.written} passed)"
            )

        try:
            return await play(todo, worker, store, config.concurrency, advance, max_trials)
        finally:
            await worker.aclose()

    with progress:
        return asyncio.run(main())


async def play(
    trials: Sequence[Trial],
    worker: Worker,
    store: RunStore,
    concurrency: int,
    on_written: Callable[[Played], None] | None = None,
    max_trials: int | None = None,
) -> Played:
    """Play ``trials`` (at most ``concurrency`` at once), writing each as it finishes;
    trials still in flight when ``max_trials`` are written are cancelled, unwritten."""
    played = Played()
    gate = asyncio.Semaphore(concurrency)

    async def one(trial: Trial) -> Record | str:
        async with gate:
            try:
                record = await worker.run_task(trial.task, trial.agent, seed=trial.seed)
                if trial.check is not None:
                    record = trial.check(record)
            except Exception as exc:  # noqa: BLE001 - one broken trial is reported, not fatal
                log.warning("trial %s of task %s failed: %s", trial.id, trial.task.id, exc)
                return f"{trial.id} ({trial.task.id}): {type(exc).__name__}: {exc}"[:300]
        return record.model_copy(update={"trial_id": trial.id})

    pending = [asyncio.ensure_future(one(t)) for t in trials]
    try:
        for next_done in asyncio.as_completed(pending):
            result = await next_done
            if isinstance(result, str):
                played.errors.append(result)
                continue
            store.write_shard([result])
            played.written += 1
            played.passed += result.outcome == "accepted"
            if on_written is not None:
                on_written(played)
            if max_trials is not None and played.written >= max_trials:
                break
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return played


def _sandbox_ready() -> None:
    """The Docker engine answers and the sandbox image exists (built now when missing)."""
    from sandboxes.base import SandboxError
    from sandboxes.docker import ensure_image

    try:
        ensure_image()
    except SandboxError as exc:
        raise TrialsError(
            f"docker tasks need the Docker sandbox: {exc}; start Docker and run "
            "`python -m sandboxes build-image`, or leave docker tasks out"
        ) from exc
