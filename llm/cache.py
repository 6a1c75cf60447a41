"""An opt-in on-disk cache of chat responses, keyed by the full request.

A rerun with the same endpoint URL, model and request body replays the stored answer
instead of paying for it again. Sampling is part of the key, so ``temperature`` or
``seed`` changes miss the cache. It does not expire entries and is not shared
safely between hosts (one file per key, written atomically, is safe between processes).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from llm.types import ChatResult


def request_key(base_url: str, request: dict[str, Any]) -> str:
    """A stable hash of everything that shapes the answer."""
    canonical = json.dumps({"base_url": base_url, "request": request}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    """Files under ``root/ab/abcdef….json``, one per request key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> ChatResult | None:
        path = self._path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.misses += 1
            return None
        try:
            result = ChatResult.model_validate_json(text)
        except ValueError:
            self.misses += 1
            return None
        self.hits += 1
        return result.model_copy(update={"cached": True})

    def put(self, key: str, result: ChatResult) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(result.model_dump_json())
        os.replace(tmp, path)
