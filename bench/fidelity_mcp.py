"""State leaks between MCP episodes: concurrent and consecutive episodes of a stateful server.

The stateful fixture server (``tests/sandboxes/fixtures/stateful_server.py``) keeps notes
in a file, as many real servers keep state on disk. Every episode is seeded with its own
note (the task's ``initial_state``), adds a second, reads the notes back after the other
episodes running beside it have written theirs, and reports the server's state through the
configured state tool. A leak is an episode that sees any note that is not its own; a
loss, one that misses its own. Three ways of playing the server, all expected to leak
nothing:

- concurrent: many episodes at once, each its own server in its own directory;
- consecutive, fresh: one environment, episode after episode, a new server each time;
- consecutive, reset tool: a few environments side by side, each keeping its server across
  episodes and calling the server's reset tool between them.

A control shows the count can see a leak: consecutive episodes whose server keeps its
file at one shared path outside the episode directory, with no reset tool, leak every
time after the first.

Target: ``mcp_state_leaks`` = 0 (the control excluded).

    python bench/fidelity_mcp.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm import FunctionCall, ToolCall  # noqa: E402
from sandboxes.mcp_env import MCPEnvironment, MCPServerConfig  # noqa: E402

SERVER = [sys.executable, str(ROOT / "tests" / "sandboxes" / "fixtures" / "stateful_server.py")]
TIMEOUT_S = 120.0
"""Dozens of servers start at once on a few cores: give them time; a leak is not a timeout."""


@dataclass
class Tally:
    episodes: int = 0
    leaks: int = 0
    lost: int = 0
    errors: int = 0
    wall_s: float = 0.0

    def add(self, other: Tally) -> None:
        self.episodes += other.episodes
        self.leaks += other.leaks
        self.lost += other.lost
        self.errors += other.errors


def _call(name: str, arguments: dict[str, str]) -> ToolCall:
    return ToolCall(id=name, function=FunctionCall(name=name, arguments=json.dumps(arguments)))


async def _notes(env: MCPEnvironment) -> list[str]:
    reply = await env.call(_call("list_notes", {}))
    return list(json.loads(str(reply.content))["notes"])


async def episode(env: MCPEnvironment, eid: str, barrier: asyncio.Barrier | None) -> Tally:
    """One episode: seeded, writes, waits for its neighbours to write, reads everything."""
    own = {f"seed:{eid}", f"note:{eid}"}
    try:
        await env.reset({"id": eid, "initial_state": {"notes": [f"seed:{eid}"]}})
        start = await _notes(env)
        await env.call(_call("add_note", {"text": f"note:{eid}"}))
        if barrier is not None:
            await barrier.wait()
        end = await _notes(env)
        final = (await env.state()).get("notes", [])
    except Exception:  # noqa: BLE001 - a failed episode is counted, the run goes on
        if barrier is not None:
            await barrier.abort()
        return Tally(episodes=1, errors=1)
    seen = set(start) | set(end) | set(final)
    missing = own - set(end) or own - set(final)
    return Tally(episodes=1, leaks=int(bool(seen - own)), lost=int(bool(missing)))


async def concurrent(count: int) -> Tally:
    """``count`` episodes at once, each its own environment (so its own server)."""
    config = MCPServerConfig(command=SERVER, state_tool="dump_state", timeout_s=TIMEOUT_S)
    envs = [MCPEnvironment(config) for _ in range(count)]
    barrier = asyncio.Barrier(count)
    try:
        results = await asyncio.gather(
            *(episode(env, f"c{i}", barrier) for i, env in enumerate(envs))
        )
    finally:
        await asyncio.gather(*(env.close() for env in envs))
    return _sum(results)


async def consecutive(config: MCPServerConfig, count: int, prefix: str) -> Tally:
    """``count`` episodes one after the other in one environment."""
    env = MCPEnvironment(config)
    try:
        return _sum([await episode(env, f"{prefix}{i}", None) for i in range(count)])
    finally:
        await env.close()


async def side_by_side_with_reset(groups: int, rounds: int) -> Tally:
    """``groups`` environments side by side, each keeping its server for ``rounds``
    episodes and calling the reset tool between them; each round waits for all groups."""
    config = MCPServerConfig(
        command=SERVER, state_tool="dump_state", reset_tool="reset_notes", timeout_s=TIMEOUT_S
    )
    envs = [MCPEnvironment(config) for _ in range(groups)]
    total = Tally()
    try:
        for r in range(rounds):
            barrier = asyncio.Barrier(groups)
            results = await asyncio.gather(
                *(episode(env, f"r{g}.{r}", barrier) for g, env in enumerate(envs))
            )
            total.add(_sum(results))
    finally:
        await asyncio.gather(*(env.close() for env in envs))
    return total


def _sum(results: list[Tally]) -> Tally:
    total = Tally()
    for result in results:
        total.add(result)
    return total


async def _timed(work: Awaitable[Tally]) -> Tally:
    started = time.perf_counter()
    tally = await work
    tally.wall_s = time.perf_counter() - started
    return tally


async def _measure(quick: bool) -> dict[str, object]:
    scale = 1 if quick else 3
    fresh = MCPServerConfig(command=SERVER, state_tool="dump_state", timeout_s=TIMEOUT_S)
    modes = {
        "concurrent": await _timed(concurrent(40 * scale)),
        "consecutive_fresh": await _timed(consecutive(fresh, 10 * scale, "s")),
        "consecutive_reset_tool": await _timed(side_by_side_with_reset(5 * scale, 10)),
    }
    with tempfile.TemporaryDirectory() as shared:
        leaky = fresh.model_copy(update={"env": {"NOTES_FILE": f"{shared}/notes.json"}})
        control = await _timed(consecutive(leaky, 3 if quick else 10, "x"))
    total = _sum(list(modes.values()))
    return {
        "mcp_state_leaks": total.leaks,
        "mcp_episodes": total.episodes,
        "mcp_state_lost": total.lost,
        "mcp_episode_errors": total.errors,
        "mcp_modes": {name: vars(t) for name, t in modes.items()},
        "mcp_control_leaks": control.leaks,
        "mcp_control_episodes": control.episodes,
    }


def measure(quick: bool) -> dict[str, object]:
    """Leaks over concurrent and consecutive episodes of the stateful fixture server."""
    return asyncio.run(_measure(quick))


def table(figures: dict[str, object]) -> Table:
    out = Table(title="MCP state leaks (stateful fixture server; target 0)")
    for column in ("mode", "episodes", "leaks", "lost", "errors", "wall s"):
        out.add_column(column, justify="right")
    modes = figures["mcp_modes"]
    assert isinstance(modes, dict)
    for name, t in modes.items():
        out.add_row(
            name,
            *(str(t[k]) for k in ("episodes", "leaks", "lost", "errors")),
            f"{t['wall_s']:.1f}",
        )
    out.add_row(
        "control: shared file, no reset",
        str(figures["mcp_control_episodes"]),
        str(figures["mcp_control_leaks"]),
        "",
        "",
        "",
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 episodes instead of 300")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    args = parser.parse_args()
    figures = measure(args.quick)
    Console().print(table(figures))
    if args.json:
        for mode in figures["mcp_modes"].values():  # type: ignore[attr-defined]
            mode["wall_s"] = round(mode["wall_s"], 2)
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
