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
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import ray
from ray.exceptions import RayError

from llm import Endpoint
from synth.schema import AgentSpec, TaskSpec
from synth.worker import Worker, WorkerSettings

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
CLOSE_S = 5.0
"""How long the actors get to close their clients and sandboxes before they are killed."""


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

    async def make_tasks(self, agent: AgentSpec) -> Any:
        return await self.worker.make_tasks(agent)

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
        self.actors = [remote.remote(shared, settings) for _ in range(actors)]
        self.capacity = actors * tasks_per_actor
        self._load = [0] * actors

    def submit(self, method: str, *args: Any) -> tuple[int, Any]:
        index = min(range(len(self.actors)), key=self._load.__getitem__)
        self._load[index] += 1
        return index, getattr(self.actors[index], method).remote(*args)

    def done(self, index: int) -> None:
        self._load[index] -= 1

    def shutdown(self) -> None:
        """Let the actors close their clients and sandboxes (``CLOSE_S`` at most), then
        kill them."""
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
    pending: dict[Any, tuple[str, tuple[Any, ...], int, int]] = {}
    exhausted = False
    while pending or not exhausted:
        while not exhausted and len(pending) < pool.capacity:
            item = next(queue, None)
            if item is None:
                exhausted = True
                break
            key, args = item
            index, ref = pool.submit(method, *args)
            pending[ref] = (key, args, index, 1)
        if not pending:
            break
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        key, args, index, attempt = pending.pop(ref)
        pool.done(index)
        try:
            yield key, ray.get(ref)
        except RayError as exc:
            if attempt >= MAX_ATTEMPTS:
                yield key, on_failure(key, f"{type(exc).__name__}: {exc}"[:500])
                continue
            log.warning("retrying %s after %s", key, type(exc).__name__)
            index, retry = pool.submit(method, *args)
            pending[retry] = (key, args, index, attempt + 1)
