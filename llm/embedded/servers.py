"""One embedded server per model directory, for a run whose roles use several; the one
place that decides whether an embedded server must be started.

A synthesis job or a training run may put the embedded default model on one role and a
trained checkpoint on another (``model_path`` in their configs). :class:`EmbeddedServers`
starts one :class:`~llm.embedded.server.EmbeddedServer` per distinct directory on first
use and stops them all together; the default model is the user's own running server
instead when ``SUMMIT_EMBEDDED_URL`` names one. It does not decide which roles use which
model: the configs do, and ask it for endpoints, which they are handed (no process
environment carries them).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llm.embedded.server import EmbeddedServer
from llm.endpoints import EMBEDDED_URL_ENV, Endpoint, get_endpoint


class EmbeddedServers:
    """Servers keyed by model directory (``None``: the embedded default model), started
    on first use, all stopped on :meth:`close` or on leaving the ``with`` block. Thread
    safe: training asks for endpoints from verifier threads and the reward loop at once.

    Example::

        with EmbeddedServers(max_batch=8) as servers:
            agent = servers.endpoint("runs/sft/final")   # serves the checkpoint
            judge = servers.endpoint()                   # the default model
    """

    def __init__(self, announce: Callable[[str], None] | None = None, **server_args: Any) -> None:
        self.server_args = server_args
        """Arguments of every :class:`EmbeddedServer` started here (``max_batch``, ...)."""
        self.announce = announce
        """Told, in a line, of every server about to start (a CLI prints it)."""
        self._servers: dict[Path | None, EmbeddedServer] = {}
        self._lock = threading.Lock()
        self._closed = False

    def server(self, model_path: str | Path | None = None) -> EmbeddedServer:
        """The running server of ``model_path``, started now if it is not yet; a bad
        checkpoint raises :class:`~llm.errors.ConfigError` (one line) before any port."""
        key = Path(model_path).resolve() if model_path is not None else None
        with self._lock:
            if self._closed:
                raise RuntimeError("these embedded servers were closed")
            server = self._servers.get(key)
            if server is None:
                if self.announce is not None:
                    what = "the embedded model" if key is None else f"the checkpoint {model_path}"
                    self.announce(f"serving {what} on 127.0.0.1 ...")
                server = EmbeddedServer(**self.server_args, model_path=model_path).start()
                self._servers[key] = server
            return server

    def endpoint(self, model_path: str | Path | None = None, **fields: Any) -> Endpoint:
        """The endpoint of ``model_path``'s server (its URL, the directory's name as the
        model); ``fields`` override :class:`~llm.endpoints.Endpoint` limits. The default
        model (``None``) is the server at ``SUMMIT_EMBEDDED_URL`` when that is set, so a
        user's running server is shared and nothing is started."""
        if model_path is None and os.environ.get(EMBEDDED_URL_ENV):
            return get_endpoint("embedded", **fields)
        return self.server(model_path).endpoint(**fields)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            servers, self._servers = list(self._servers.values()), {}
        for server in reversed(servers):
            server.stop()

    def __enter__(self) -> EmbeddedServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def embedded_endpoint(**server_args: Any) -> Iterator[Endpoint]:
    """The endpoint of the embedded default model, or of ``model_path=...``, for the block:
    the user's running server when ``SUMMIT_EMBEDDED_URL`` names one (default model only),
    else a server started for the block (:meth:`EmbeddedServers.endpoint`)."""
    model_path = server_args.pop("model_path", None)
    with EmbeddedServers(**server_args) as servers:
        yield servers.endpoint(model_path)
