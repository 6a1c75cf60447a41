"""The run directory: stage checkpoints, parquet shards written whole or not at all.

Layout::

    OUT/config.yaml            the resolved config (and its hash in run.json)
    OUT/run.json               config hash, how many times the job was started
    OUT/tools.jsonl            the tool repository used (after evolution)
    OUT/agents.jsonl           AgentSpecs          (a stage checkpoint)
    OUT/tasks.jsonl            TaskSpecs           (a stage checkpoint)
    OUT/data/accepted/*.parquet    accepted trajectories: messages + tools (TRL SFT ready)
    OUT/data/rejected/*.parquet    rejected ones, with reason and detail
    OUT/rl_prompts.parquet     tasks as an RL prompt dataset
    OUT/manifest.json, OUT/report.html

Resuming reads the ids already in the shards and skips them: a shard appears by an
atomic rename, so an interrupted write leaves nothing half-written, and a task is either
in exactly one shard or redone. Counts in the manifest are read back from the shards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from llm import ConfigError
from llm.files import atomic_write
from llm.yamlconf import first_problem
from synth.schema import Record

M = TypeVar("M", bound=BaseModel)
_TEXT = pa.string()
_CALL = pa.struct(
    [
        ("id", _TEXT),
        ("type", _TEXT),
        ("function", pa.struct([("name", _TEXT), ("arguments", _TEXT)])),
    ]
)
_MESSAGE = pa.struct(
    [("role", _TEXT), ("content", _TEXT), ("tool_calls", pa.list_(_CALL)), ("tool_call_id", _TEXT)]
)
# One explicit schema for every shard, so shards written at different times (some with no
# tool calls at all) load together.
SCHEMA = pa.schema(
    [
        *((name, _TEXT) for name in ("id", "agent_id", "domain", "environment", "difficulty")),
        *((name, _TEXT) for name in ("outcome", "reason", "detail")),
        ("score", pa.float64()),
        ("verified", pa.bool_()),
        ("messages", pa.list_(_MESSAGE)),
        *((name, _TEXT) for name in ("tools", "verdict", "usage", "trajectory_meta")),
    ]
)


class RunStateError(ConfigError):
    """A file of a run directory is unreadable (edited by hand, cut short by an old
    version): one line naming it and what to do, instead of a traceback on resume."""


def _unreadable(path: Path, line: int, why: str) -> RunStateError:
    return RunStateError(
        f"{path}:{line}: {why}; delete it to redo its stage, or choose another output_dir"
    )


class RunStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.accepted = self.root / "data" / "accepted"
        self.rejected = self.root / "data" / "rejected"

    # ------------------------------------------------------------- checkpoints
    def save_models(self, name: str, items: Iterable[BaseModel]) -> Path:
        lines = "".join(item.model_dump_json() + "\n" for item in items)
        path = self.root / name
        atomic_write(path, lines.encode())
        return path

    def load_models(self, name: str, model: type[M]) -> list[M] | None:
        path = self.root / name
        if not path.exists():
            return None
        models = []
        for number, line in enumerate(_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                models.append(model.model_validate_json(line))
            except ValidationError as exc:
                raise _unreadable(path, number, first_problem(exc, "(line)")) from None
        return models

    def save_json(self, name: str, data: Any) -> Path:
        path = self.root / name
        atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False, default=str).encode())
        return path

    def load_json(self, name: str) -> Any:
        path = self.root / name
        if not path.exists():
            return None
        try:
            return json.loads(_text(path))
        except json.JSONDecodeError as exc:
            raise _unreadable(path, exc.lineno, f"not JSON: {exc.msg}") from None

    # ------------------------------------------------------------------ shards
    def write_shard(self, records: list[Record]) -> list[Path]:
        """Write ``records`` as (at most) one accepted and one rejected shard."""
        written = []
        for folder, outcome in ((self.accepted, "accepted"), (self.rejected, "rejected")):
            rows = [r.to_row() for r in records if r.outcome == outcome]
            if not rows:
                continue
            table = pa.Table.from_pylist(rows, schema=SCHEMA)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            first = min(row["id"] for row in rows)
            path = folder / f"part-{len(list(folder.glob('part-*'))):05d}-{first}.parquet"
            atomic_write(path, sink.getvalue().to_pybytes())
            written.append(path)
        return written

    def shards(self) -> list[Path]:
        return sorted(self.accepted.glob("part-*.parquet")) + sorted(
            self.rejected.glob("part-*.parquet")
        )

    def rows(self, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
        for shard in self.shards():
            yield from pq.read_table(shard, columns=columns).to_pylist()

    def done_ids(self) -> set[str]:
        return {row["id"] for row in self.rows(["id"])}


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise _unreadable(path, line, "not a text file") from None
