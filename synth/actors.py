"""The Ray side: thin actors around :class:`synth.worker.Worker`, and bounded dispatch.

Why actors and not Ray Data: an item here is a multi-turn episode of many dependent LLM
calls with long, uneven latency, not a batch transform. An async actor keeps dozens of
episodes in flight on one process (``tasks_per_actor``), holds its HTTP clients and its
Docker pool across items, and is restarted by Ray when it dies, with its in-flight calls
retried (``max_restarts=-1, max_task_retries=-1``). :func:`stream` keeps at most
``actors × tasks_per_actor`` items in flight and hands results back as they finish, so
memory stays flat however many tasks are queued (backpressure lives in the driver).

Each endpoint's concurrency limit is split across the actors (floor, at least one per
actor), so all actors together never exceed it.

A restarted actor's calls wait for a node to host it, for ever if none is left, so while
no result comes back the driver looks at the cluster every ``WAIT_S`` seconds and raises
:class:`ClusterLost` once a node has died and no live node can host an actor, or once the
head's GCS no longer accepts a connection (asked directly: Ray's client would wait a
minute for it, then end the process from C++). An actor
Ray gives up on (``ActorDiedError``: its node died) is replaced and its items go again,
without counting against them: they did not fail, their actor did.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayError

from llm import Endpoint
from synth.problems import Problem
from synth.schema import AgentSpec, TaskSpec
from synth.worker import Worker, WorkerSettings

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
WAIT_S = 5.0
"""How often the driver looks at the cluster while no result comes back."""
CLOSE_S = 5.0
"""How long the actors get to close their clients and sandboxes before they are killed."""
HEAD_TIMEOUT_S = 5.0
"""How long the cluster's head (its GCS) gets to accept a connection before it counts as lost."""


class ClusterLost(Exception):
    """A Ray node died and no live node can host the actors: the job cannot go on."""


# Ray's overloads for @ray.remote do not list concurrency_groups, which it accepts.
@ray.remote(  # type: ignore[call-overload]
    max_restarts=-1, max_task_retries=-1, concurrency_groups={"control": 1}
)
class SynthActor:
    """One worker; every method is a stage call (see :class:`synth.worker.Worker`)."""

    def __init__(self, endpoints: dict[str, Endpoint], settings: WorkerSettings) -> None:
        logging.basicConfig(level=logging.WARNING)
        self.worker = Worker(endpoints, settings)

    async def write_agent(self, agent: AgentSpec) -> Any:
        return await self.worker.write_agent(agent)

    async def make_tasks(self, agent: AgentSpec, problems: list[Problem | TaskSpec]) -> Any:
        return await self.worker.make_tasks(agent, problems)

    async def run_task(self, task: TaskSpec, agent: AgentSpec) -> Any:
        return await self.worker.run_task(task, agent)

    def pid(self) -> int:
        return os.getpid()

    @ray.method(concurrency_group="control")  # not queued behind busy stage calls
    async def close(self) -> None:
        await self.worker.aclose()


def split_limits(endpoints: dict[str, Endpoint], actors: int) -> dict[str, Endpoint]:
    """Per-actor endpoints: each role's ``max_concurrency`` shared out across the actors."""
    return {
        role: e.model_copy(update={"max_concurrency": max(1, e.max_concurrency // actors)})
        for role, e in endpoints.items()
    }


class ActorPool:
    def __init__(
        self,
        endpoints: dict[str, Endpoint],
        settings: WorkerSettings,
        *,
        actors: int,
        tasks_per_actor: int,
        num_cpus: float = 0.5,
    ) -> None:
        shared = split_limits(endpoints, actors)
        options = {"max_concurrency": tasks_per_actor, "num_cpus": num_cpus}
        remote = SynthActor.options(**options)  # type: ignore[attr-defined]  # from @ray.remote
        self._spawn = lambda: remote.remote(shared, settings)
        self.actors = [self._spawn() for _ in range(actors)]
        self.capacity = actors * tasks_per_actor
        self.num_cpus = num_cpus
        self.replaced = 0
        self._load = [0] * actors
        self._nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        self.head_lost = False
        """Set once the head is gone: no Ray call can be answered any more."""

    def submit(self, method: str, *args: Any) -> tuple[int, Any]:
        index = min(range(len(self.actors)), key=self._load.__getitem__)
        self._load[index] += 1
        return index, getattr(self.actors[index], method).remote(*args)

    def done(self, index: int) -> None:
        self._load[index] -= 1

    def replace(self, index: int, dead: Any) -> None:
        """A new actor in place of ``dead``, one Ray gave up restarting (its node died, or
        it was killed); nothing when that one was replaced already. Raises
        :class:`ClusterLost` when the cluster cannot host actors any more."""
        if self.actors[index] is not dead:
            return
        self.check_cluster()
        self.replaced += 1
        if self.replaced > MAX_ATTEMPTS * len(self.actors):
            raise ClusterLost(f"{self.replaced} actors died for good; the cluster keeps none")
        log.warning("actor %d died for good; starting another", index)
        self.actors[index] = self._spawn()

    def check_cluster(self) -> None:
        """Raise :class:`ClusterLost` when a node alive at the start has died and no live
        node has the CPUs of an actor (its calls would wait for ever), or once the head
        node is gone: Ray's own client would wait a minute for it and then end the process
        from C++, so the socket is asked first."""
        address = ray.get_runtime_context().gcs_address
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=HEAD_TIMEOUT_S).close()
        except OSError as exc:
            self.head_lost = True
            raise ClusterLost(
                f"Ray head node at {address} died (its GCS does not answer: {exc.strerror or exc})"
            ) from exc
        try:
            nodes = ray.nodes()
        except Exception as exc:  # any failure to answer means the same here
            raise ClusterLost(f"the Ray cluster does not answer: {exc}") from exc
        alive = [n for n in nodes if n["Alive"]]
        dead = self._nodes - {n["NodeID"] for n in alive}
        cpus = max((n["Resources"].get("CPU", 0.0) for n in alive), default=0.0)
        if dead and cpus < self.num_cpus:
            names = ", ".join(sorted(d[:8] for d in dead))
            raise ClusterLost(
                f"Ray node {names} died and no live node has the {self.num_cpus:g} CPU "
                "an actor needs"
            )

    def shutdown(self) -> None:
        """Let the actors close their clients and sandboxes (``CLOSE_S`` at most), then
        kill them; nothing to do once the head is gone (they went with it)."""
        if self.head_lost:
            return
        try:
            closing = [actor.close.remote() for actor in self.actors]
            ray.wait(closing, num_returns=len(closing), timeout=CLOSE_S)
        finally:
            for actor in self.actors:
                ray.kill(actor, no_restart=True)


def stream(
    pool: ActorPool,
    method: str,
    items: Iterable[tuple[str, tuple[Any, ...]]],
    on_failure: Callable[[str, str], Any],
) -> Iterator[tuple[str, Any]]:
    """``(key, result)`` for each ``(key, args)`` item, as they finish, at most
    ``pool.capacity`` in flight. An item whose actor call fails ``MAX_ATTEMPTS`` times
    yields ``on_failure(key, error)`` instead."""
    queue = iter(items)
    pending: dict[Any, tuple[str, tuple[Any, ...], int, int, Any]] = {}

    def submit(key: str, args: tuple[Any, ...], attempt: int) -> None:
        index, ref = pool.submit(method, *args)
        pending[ref] = (key, args, index, attempt, pool.actors[index])

    exhausted = False
    while pending or not exhausted:
        while not exhausted and len(pending) < pool.capacity:
            item = next(queue, None)
            if item is None:
                exhausted = True
                break
            submit(*item, 1)
        if not pending:
            break
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
        if not ready:
            pool.check_cluster()
            continue
        ref = ready[0]
        key, args, index, attempt, actor = pending.pop(ref)
        pool.done(index)
        try:
            yield key, ray.get(ref)
        except ActorDiedError:  # the actor's loss, not this item's: it goes again
            pool.replace(index, actor)
            submit(key, args, attempt)
        except RayError as exc:
            pool.check_cluster()  # a lost node is the job's failure, not this item's
            if attempt >= MAX_ATTEMPTS:
                yield key, on_failure(key, f"{type(exc).__name__}: {exc}"[:500])
                continue
            log.warning("retrying %s after %s", key, type(exc).__name__)
            submit(key, args, attempt + 1)
