"""Synthesis throughput against the endpoint bound, and beside a distilabel pipeline.

One scripted endpoint on loopback answers every role (agent, user simulator, tool
simulator, judge) after ``--latency`` seconds, at most ``--capacity`` requests at a
time: it can serve at most C/L requests per second, the physical bound of this
benchmark. The same tasks (half on the LLM tool simulator, half on executable tool sets)
are played and judged by the roll-out stage on a real local Ray cluster with 1, 2 and 4
actors, each keeping ``--per-actor`` episodes in flight. Requests/s is measured in the
steady state (the middle 90% of the stage's requests; the start-up ramp and the final
drain belong to the job size, not the throughput), trajectories/hour over the whole stage.

Side by side on the same endpoint: a distilabel pipeline of comparable multi-call
generation — a chain of as many TextGeneration steps as our episodes made requests on
average, over the same number of items, with input batches big enough to fill the
endpoint. Both are timed from their first request to their last. The comparison is made
twice: with every request taking exactly L, and with latencies spread uniformly over
L × [0.1, 1.9] (same mean, so the same bound) as real endpoints answer unevenly. The
distilabel ratio in the JSON is the uneven case; the even one is printed beside it.

    python bench/synth.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm.endpoints import Endpoint
from llm.testing import Reply, ScriptedEndpoint
from synth.config import ROLES, SynthConfig
from synth.schema import AgentSpec, Record, TaskSpec
from synth.testing import ScriptedWorld


class Clock:
    """A responder wrapper that stamps each request's arrival."""

    def __init__(self, world: ScriptedWorld) -> None:
        self.world = world
        self.stamps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.stamps.append(time.monotonic())
        return self.world(request)

    def since(self, mark: int) -> list[float]:
        with self._lock:
            return self.stamps[mark:]


def rates(stamps: list[float]) -> tuple[float, float]:
    """(steady requests/s over the middle 90%, requests/s first to last)."""
    n = len(stamps)
    lo, hi = int(n * 0.05), max(int(n * 0.95) - 1, int(n * 0.05) + 1)
    steady = (hi - lo) / max(stamps[hi] - stamps[lo], 1e-9)
    whole = (n - 1) / max(stamps[-1] - stamps[0], 1e-9)
    return steady, whole


def make_work(server: ScriptedEndpoint, agents: int, per_agent: int, out: Path) -> tuple:
    """Agents and tasks for the roll-out stage, made in-process by the real stages."""
    from llm import ChatClient
    from synth.agents import plan_agents
    from synth.pipeline import settings
    from synth.tools import build_tools
    from synth.worker import Worker

    role = {"preset": "openai-compatible", "base_url": server.url, "max_concurrency": 256}
    config = SynthConfig.model_validate(
        {
            "output_dir": str(out),
            "endpoints": {r: role for r in ROLES},
            "agents": {"count": agents},
            "tasks": {"per_agent": per_agent},
            "environment_mix": {"simulated": 0.5, "executable": 0.5, "docker": 0.0},
        }
    )

    async def build() -> tuple[list[AgentSpec], list[TaskSpec]]:
        endpoints: dict[str, Endpoint] = {r: config.endpoint(r) for r in ROLES}
        async with ChatClient(endpoints["generator"]) as client:
            source = await build_tools(config, out, client)
        worker = Worker(endpoints, settings(config))
        try:
            planned = plan_agents(config, source)
            written = await asyncio.gather(*(worker.write_agent(a) for a in planned))
            made = await asyncio.gather(*(worker.make_tasks(a) for a, _, _ in written))
        finally:
            await worker.aclose()
        return [a for a, _, _ in written], [t for tasks, _, _, _ in made for t in tasks]

    agents_, tasks = asyncio.run(build())
    return config, agents_, tasks


def ours(config: SynthConfig, agents: list, tasks: list, clock: Clock, actors: int, per: int):
    import ray

    from synth.actors import ActorPool, stream
    from synth.pipeline import settings

    endpoints: dict[str, Endpoint] = {r: config.endpoint(r) for r in ROLES}
    endpoints = {
        r: e.model_copy(update={"max_concurrency": per * actors}) for r, e in endpoints.items()
    }
    pool = ActorPool(endpoints, settings(config), actors=actors, tasks_per_actor=per, num_cpus=0.1)
    ray.get([a.pid.remote() for a in pool.actors])  # actors up before the clock starts
    by_agent = {a.id: a for a in agents}
    mark = len(clock.stamps)
    started = time.monotonic()

    def failed(key: str, error: str) -> Record:
        raise RuntimeError(f"{key}: {error}")

    records = [
        r
        for _, r in stream(
            pool, "run_task", ((t.id, (t, by_agent[t.agent_id])) for t in tasks), failed
        )
    ]
    elapsed = time.monotonic() - started
    pool.shutdown()
    stamps = clock.since(mark)
    steady, whole = rates(stamps)
    return {
        "requests": len(stamps),
        "steady_rps": steady,
        "whole_rps": whole,
        "trajectories_per_hour": len(records) / elapsed * 3600,
        "accepted": sum(r.outcome == "accepted" for r in records),
    }


def distilabel_run(server: ScriptedEndpoint, clock: Clock, items: int, steps: int, batch: int):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from distilabel.models import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    with tempfile.TemporaryDirectory() as cache:
        os.environ["DISTILABEL_CACHE_DIR"] = cache
        with Pipeline(name="summit-bench-synth", cache_dir=cache) as pipeline:
            previous = LoadDataFromDicts(
                data=[{"instruction": f"task {i}: plan the next step"} for i in range(items)],
                batch_size=batch,
            )
            for k in range(steps):
                step = TextGeneration(
                    name=f"call_{k}",
                    llm=OpenAILLM(
                        model="scripted", base_url=server.url, api_key="scripted", max_retries=2
                    ),
                    input_batch_size=batch,
                    output_mappings={"generation": f"generation_{k}"},
                    input_mappings={} if k == 0 else {"instruction": f"generation_{k - 1}"},
                )
                previous >> step
                previous = step
        mark = len(clock.stamps)
        distiset = pipeline.run(
            use_cache=False,
            parameters={
                f"call_{k}": {"llm": {"generation_kwargs": {"max_new_tokens": 64}}}
                for k in range(steps)
            },
        )
    stamps = clock.since(mark)
    rows = len(distiset["default"]["train"])
    steady, whole = rates(stamps)
    return {"requests": len(stamps), "steady_rps": steady, "whole_rps": whole, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer tasks")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per request (L)")
    parser.add_argument("--capacity", type=int, default=32, help="requests at a time (C)")
    parser.add_argument("--per-actor", type=int, default=16, help="episodes in flight per actor")
    parser.add_argument("--spread", type=float, default=0.9, help="latency spread, uneven case")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "scripted")

    import ray

    from synth.pipeline import start_local_ray

    agents_n, per_agent = (20, 6) if args.quick else (60, 8)
    bound = args.capacity / args.latency
    clock = Clock(ScriptedWorld())
    console = Console(stderr=True)
    results: dict[int, dict[str, float]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        ScriptedEndpoint(clock, latency_s=args.latency, capacity=args.capacity) as server,
    ):
        console.print(f"bound C/L = {args.capacity}/{args.latency:g} s = {bound:.0f} requests/s")
        config, agents, tasks = make_work(server, agents_n, per_agent, Path(tmp))
        console.print(f"{len(agents)} agents, {len(tasks)} tasks")
        start_local_ray(num_cpus=2)
        try:
            for actors in (1, 2, 4):
                results[actors] = ours(config, agents, tasks, clock, actors, args.per_actor)
                console.print(f"{actors} actor(s): {results[actors]}")
            server.latency_spread = args.spread
            uneven = ours(config, agents, tasks, clock, 4, args.per_actor)
            console.print(f"4 actors, uneven latency: {uneven}")
        finally:
            ray.shutdown()
        per_episode = results[4]["requests"] / len(tasks)
        steps = max(1, round(per_episode))
        peer_uneven = distilabel_run(server, clock, len(tasks), steps, batch=2 * args.capacity)
        console.print(f"distilabel ({steps} chained steps), uneven latency: {peer_uneven}")
        server.latency_spread = 0.0
        peer = distilabel_run(server, clock, len(tasks), steps, batch=2 * args.capacity)
        console.print(f"distilabel ({steps} chained steps): {peer}")

    table = Table(title=f"synthesis roll-out stage vs the endpoint bound C/L = {bound:.0f} req/s")
    for column in (
        "pipeline",
        "latency",
        "requests",
        "steady req/s",
        "of bound",
        "req/s first→last",
        "traj/hour",
    ):
        table.add_column(column, justify="left" if column in ("pipeline", "latency") else "right")
    even, spread = f"{args.latency:g} s", f"{args.latency:g} s ± {args.spread:.0%}"
    rows = [(f"summit, {a} actor(s) × {args.per_actor}", even, r) for a, r in results.items()]
    rows.append((f"summit, 4 actors × {args.per_actor}", spread, uneven))
    peer_name = f"distilabel, {steps} chained TextGeneration, batch {2 * args.capacity}"
    rows += [(peer_name, even, peer), (peer_name, spread, peer_uneven)]
    for name, latency, r in rows:
        table.add_row(
            name,
            latency,
            str(r["requests"]),
            f"{r['steady_rps']:.1f}",
            f"{r['steady_rps'] / bound:.2f}",
            f"{r['whole_rps']:.1f}",
            f"{r['trajectories_per_hour']:.0f}" if "trajectories_per_hour" in r else "-",
        )
    Console(width=140).print(table)
    figures = {
        "bound_rps": bound,
        "tasks": len(tasks),
        "requests_per_episode": per_episode,
        **{f"bound_fraction_{a}": r["steady_rps"] / bound for a, r in results.items()},
        "trajectories_per_hour_4": results[4]["trajectories_per_hour"],
        "bound_fraction_4_uneven": uneven["steady_rps"] / bound,
        "distilabel_rps": peer_uneven["whole_rps"],
        "distilabel_ratio": uneven["whole_rps"] / peer_uneven["whole_rps"],
        "distilabel_ratio_even_latency": results[4]["whole_rps"] / peer["whole_rps"],
    }
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
