"""The embedded engine: SmolLM2-135M-Instruct (or any local checkpoint) behind a loopback
OpenAI-compatible server.

Exports load on first use, so importing :mod:`llm.embedded.model` (the checkpoint check
that configs run) does not import ``torch`` or the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm.embedded.server import EmbeddedServer
    from llm.embedded.servers import EmbeddedServers, embedded_endpoint

__all__ = ["EmbeddedServer", "EmbeddedServers", "embedded_endpoint"]
_HOMES = {
    "EmbeddedServer": "llm.embedded.server",
    "embedded_endpoint": "llm.embedded.servers",
    "EmbeddedServers": "llm.embedded.servers",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
