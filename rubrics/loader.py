"""Load rubric YAML files, resolve ``extends``, and report every problem as ``file:line: field``.

:meth:`RubricSet.load` reads files and folders, validates each file against
:class:`~rubrics.schema.Rubric`, then checks what no single file can: duplicate rubric
ids, ``extends`` naming an unknown rubric, and ``extends`` cycles. All problems found are
raised together in one :class:`RubricError`. It does not judge anything.

Example::

    rubrics = RubricSet.load(["rubrics/library", "my_rubrics/"])
    criteria = rubrics.criteria("my-task")      # own + inherited, overrides applied
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from llm.yamlconf import (
    YamlConfigError,
    line_of,
    load_yaml,
    require_mapping,
    validation_problems,
)
from rubrics.schema import Criterion, Rubric

LIBRARY = Path(__file__).resolve().parent / "library"


class RubricError(YamlConfigError):
    """One or more rubric files are invalid; ``problems`` lists ``file:line: field: message``."""


@dataclass(frozen=True)
class Source:
    path: Path
    node: yaml.Node | None

    def at(self, *loc: int | str) -> str:
        line = line_of(self.node, tuple(loc))
        return f"{self.path}:{line}" if line else str(self.path)


class RubricSet:
    """Validated rubrics by id, with ``extends`` resolved on demand."""

    def __init__(self, rubrics: dict[str, Rubric], sources: dict[str, Source] | None = None):
        self.rubrics = rubrics
        self.sources = sources or {}

    @classmethod
    def load(cls, paths: Sequence[str | Path] | str | Path) -> RubricSet:
        """Load ``.yaml``/``.yml`` files (folders are searched recursively)."""
        if isinstance(paths, str | Path):
            paths = [paths]
        problems: list[str] = []
        rubrics: dict[str, Rubric] = {}
        sources: dict[str, Source] = {}
        for file in _files(paths, problems):
            try:
                data, node = load_yaml(file)
            except YamlConfigError as exc:
                problems.extend(exc.problems)
                continue
            source = Source(file, node)
            rubric = _validate(data, source, problems)
            if rubric is None:
                continue
            if rubric.id in rubrics:
                first = sources[rubric.id].at("id")
                problems.append(
                    f"{source.at('id')}: id: duplicate rubric id {rubric.id!r} (first in {first})"
                )
                continue
            rubrics[rubric.id] = rubric
            sources[rubric.id] = source
        result = cls(rubrics, sources)
        problems.extend(result._extends_problems())
        if problems:
            raise RubricError(problems)
        return result

    def __contains__(self, rubric_id: str) -> bool:
        return rubric_id in self.rubrics

    def __iter__(self) -> Iterator[Rubric]:
        return iter(self.rubrics.values())

    def get(self, rubric_id: str) -> Rubric:
        """The rubric with its criteria resolved (inherited + own)."""
        if rubric_id not in self.rubrics:
            known = ", ".join(sorted(self.rubrics))
            raise KeyError(f"unknown rubric {rubric_id!r}; known: {known}")
        rubric = self.rubrics[rubric_id]
        return rubric.model_copy(update={"criteria": self.criteria(rubric_id), "extends": []})

    def criteria(self, rubric_id: str) -> list[Criterion]:
        """Inherited criteria first (in ``extends`` order), then own; a later id wins."""
        rubric = self.rubrics[rubric_id]
        merged: dict[str, Criterion] = {}
        for parent in rubric.extends:
            for criterion in self.criteria(parent):
                merged[criterion.id] = criterion
        for criterion in rubric.criteria:
            merged[criterion.id] = criterion
        return list(merged.values())

    def merged(self, rubric_ids: list[str]) -> list[tuple[str, Criterion]]:
        """Criteria of several rubrics, each tagged with its rubric id (for a judge prompt)."""
        return [(rid, c) for rid in rubric_ids for c in self.criteria(rid)]

    def _extends_problems(self) -> list[str]:
        problems = []
        for rid, rubric in self.rubrics.items():
            source = self.sources.get(rid)
            for index, parent in enumerate(rubric.extends):
                if parent not in self.rubrics:
                    where = source.at("extends", index) if source else rid
                    problems.append(f"{where}: extends[{index}]: unknown rubric {parent!r}")
            cycle = self._cycle_from(rid)
            if cycle and cycle[0] == rid:
                where = source.at("extends") if source else rid
                problems.append(f"{where}: extends: cycle {' -> '.join([*cycle, rid])}")
        if problems:
            return problems
        for rid in self.rubrics:
            if not self.criteria(rid):
                where = self.sources[rid].at("criteria") if rid in self.sources else rid
                problems.append(f"{where}: criteria: a rubric needs at least one criterion")
        return problems

    def _cycle_from(self, start: str) -> list[str]:
        path: list[str] = []

        def visit(rid: str) -> list[str]:
            if rid in path:
                return path[path.index(rid) :]
            if rid not in self.rubrics:
                return []
            path.append(rid)
            for parent in self.rubrics[rid].extends:
                found = visit(parent)
                if found:
                    return found
            path.pop()
            return []

        return visit(start)


def _files(paths: Sequence[str | Path], problems: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files


def _validate(data: Any, source: Source, problems: list[str]) -> Rubric | None:
    try:
        require_mapping(data, source.node, source.path, "rubric fields (id, kind, criteria)")
    except YamlConfigError as exc:
        problems.extend(exc.problems)
        return None
    before = len(problems)
    seen: dict[str, int] = {}
    for index, item in enumerate(data.get("criteria") or []):
        cid = item.get("id") if isinstance(item, dict) else None
        if isinstance(cid, str) and cid in seen:
            problems.append(
                f"{source.at('criteria', index, 'id')}: criteria[{index}].id: duplicate criterion "
                f"id {cid!r} (first at criteria[{seen[cid]}])"
            )
        elif isinstance(cid, str):
            seen[cid] = index
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        found = validation_problems(exc, source.path, source.node)
        problems.extend(p for p in found if "duplicate criterion id" not in p)
        return None
    return rubric if len(problems) == before else None


def library(*extra: str | Path) -> RubricSet:
    """The built-in rubrics of ``rubrics/library``, plus a user's own rubric files or
    folders in ``extra`` (their ids must not clash with the library's; they may extend it).

    Loaded again only when a file changes; raises :class:`RubricError`. The library
    itself, a path given twice or a file inside a folder also given are read once::

        rubrics = library("my_rubrics/")      # my_rubrics/refund.yaml: id refund-policy
        rubrics.criteria("refund-policy")
    """
    chosen: list[Path] = []
    for path in (Path(p).resolve() for p in extra):
        inside = [LIBRARY, *chosen]
        if not any(path.is_relative_to(seen) for seen in inside):
            chosen = [c for c in chosen if not c.is_relative_to(path)] + [path]
    return _library(tuple(_stamp(path) for path in chosen))


def _stamp(path: Path) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``path`` with the name and content hash of each rubric file in it (the cache key)."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    stamps = tuple(
        (str(f), _digest(f))
        for f in files
        if f.is_file() and (f == path or f.suffix in (".yaml", ".yml"))
    )
    return str(path), stamps


def _digest(file: Path) -> str:
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"  # loading reports it with the file's name


def require(rubric_ids: Sequence[str], files: Sequence[str | Path] = ()) -> RubricSet:
    """The library plus ``files``, once every id in ``rubric_ids`` is known to it.

    For config validators: raises ``ValueError`` naming the rubric file and line at fault,
    or the unknown ids and the known ones::

        require(["core", "refund-policy"], ["my_rubrics/"])
    """
    try:
        rubric_set = library(*files)
    except RubricError as exc:
        raise ValueError(f"rubric files: {exc}") from exc
    unknown = [r for r in rubric_ids if r not in rubric_set]
    if unknown:
        known = ", ".join(sorted(rubric_set.rubrics))
        raise ValueError(f"unknown rubric ids {unknown}; known: {known}")
    return rubric_set


@lru_cache(maxsize=16)
def _library(extra: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]) -> RubricSet:
    return RubricSet.load([LIBRARY, *(path for path, _ in extra)])
