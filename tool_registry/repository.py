"""The tool repository: add, look up, query, sample coherent subsets, persist, describe.

Persisted as JSONL, one ToolSpec per line (``datasets.load_dataset("json", ...)`` reads
it). Exact duplicates (same id) are skipped. A name clash — same name, different
interface — is resolved deterministically: the tool that arrives second is renamed
``name_<first 6 hex of its id>`` and the clash is reported. Near-duplicate detection
lives in ``dedup.py``. A line that cannot be loaded (not JSON, not UTF-8, not a valid
ToolSpec) is skipped and listed in :attr:`ToolRepository.problems` as ``file:line: why``
rather than making the whole file unloadable; a file that is no repository at all
(missing, a directory, binary) raises :class:`~llm.yamlconf.YamlConfigError`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from llm.files import atomic_write
from llm.yamlconf import YamlConfigError, error_message, format_loc, read_bytes
from tool_registry.spec import ToolSpec


@dataclass
class AddResult:
    added: list[ToolSpec] = field(default_factory=list)
    duplicates: list[ToolSpec] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    """(original name, new name) for each name clash."""


class ToolRepository:
    def __init__(self, specs: list[ToolSpec] | None = None) -> None:
        self._by_id: dict[str, ToolSpec] = {}
        self._by_name: dict[str, str] = {}
        self.problems: list[str] = []
        """Lines of the loaded file that were skipped, as ``file:line: why``."""
        if specs:
            self.add(specs)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._by_id.values())

    def __contains__(self, spec_id: str) -> bool:
        return spec_id in self._by_id

    def add(self, specs: list[ToolSpec]) -> AddResult:
        result = AddResult()
        for spec in specs:
            if spec.id in self._by_id:
                result.duplicates.append(spec)
                continue
            if spec.name in self._by_name:
                new_name = f"{spec.name[:57]}_{spec.id[2:8]}"
                result.renamed.append((spec.name, new_name))
                spec = spec.model_copy(update={"name": new_name})
                if spec.id in self._by_id:
                    result.duplicates.append(spec)
                    continue
            self._by_id[spec.id] = spec
            self._by_name[spec.name] = spec.id
            result.added.append(spec)
        return result

    def get(self, spec_id: str) -> ToolSpec:
        return self._by_id[spec_id]

    def by_name(self, name: str) -> ToolSpec | None:
        spec_id = self._by_name.get(name)
        return self._by_id[spec_id] if spec_id else None

    def query(
        self,
        *,
        category: str | None = None,
        domain: str | None = None,
        tag: str | None = None,
        text: str | None = None,
        side_effect: Literal["read", "write"] | None = None,
    ) -> list[ToolSpec]:
        """Tools matching every given filter (``text`` searches name and description)."""
        needle = text.lower() if text else None
        return [
            s
            for s in self._by_id.values()
            if (category is None or s.category == category)
            and (domain is None or s.domain == domain)
            and (tag is None or tag in s.tags)
            and (side_effect is None or s.side_effect == side_effect)
            and (needle is None or needle in s.name.lower() or needle in s.description.lower())
        ]

    def sample(self, k: int, rng: random.Random, *, domain: str | None = None) -> list[ToolSpec]:
        """A coherent subset for one agent: tools of one domain, topped up from its category."""
        domains = sorted({s.domain for s in self._by_id.values()})
        chosen_domain = domain or (rng.choice(domains) if domains else "")
        pool = sorted(self.query(domain=chosen_domain), key=lambda s: s.id)
        picked = rng.sample(pool, min(k, len(pool)))
        if len(picked) < k and pool:
            category = pool[0].category
            more = sorted(
                (s for s in self.query(category=category) if s not in picked), key=lambda s: s.id
            )
            picked += rng.sample(more, min(k - len(picked), len(more)))
        return picked

    def stats(self) -> dict[str, Any]:
        specs = list(self._by_id.values())
        params = Counter(_complexity(s) for s in specs)
        return {
            "tools": len(specs),
            "by_source": dict(Counter(s.provenance.source for s in specs)),
            "by_category": dict(Counter(s.category or "(none)" for s in specs)),
            "by_domain": dict(Counter(s.domain or "(none)" for s in specs)),
            "by_side_effect": dict(Counter(s.side_effect for s in specs)),
            "by_parameter_count": dict(sorted(params.items())),
        }

    def save(self, path: str | Path) -> Path:
        """Write JSONL atomically (a crash mid-write leaves the old file intact)."""
        path = Path(path)
        lines = (
            json.dumps(spec.model_dump(mode="json", exclude={"id"}), allow_nan=False) + "\n"
            for spec in sorted(self._by_id.values(), key=lambda s: s.id)
        )
        atomic_write(path, "".join(lines).encode())
        return path

    @classmethod
    def load(cls, path: str | Path) -> ToolRepository:
        """The tools of a JSONL file (none if it does not exist); bad lines are skipped and
        listed in ``problems``."""
        path = Path(path)
        if not path.exists():
            return cls()
        raw = read_bytes(path)
        if b"\x00" in raw:
            line = raw[: raw.index(b"\x00")].count(b"\n") + 1
            raise YamlConfigError([f"{path}:{line}: not a text file (binary content)"])
        specs, problems = [], []
        for number, text in enumerate(raw.splitlines(), start=1):
            if not text.strip():
                continue
            try:
                specs.append(ToolSpec.model_validate(json.loads(text.decode("utf-8-sig"))))
            except (ValueError, RecursionError) as exc:  # ValidationError is a ValueError
                problems.append(f"{path}:{number}: {_line_problem(exc)}")
        repo = cls(specs)
        repo.problems = problems
        return repo


def _line_problem(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg}"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply to read"
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{format_loc(tuple(error['loc']))}: {error_message(error)}"
    return str(exc)


def _complexity(spec: ToolSpec) -> str:
    n = spec.parameter_count()
    return "0" if n == 0 else "1-2" if n <= 2 else "3-5" if n <= 5 else "6+"
