"""Long-lived chat clients for a training run: one per endpoint and event loop.

A :class:`~llm.ChatClient` holds an HTTP session, a concurrency bound and a usage meter,
and its session and bound belong to the event loop they are first used on. TRL runs async
reward functions on one persistent loop of its own (``trainer.async_loop``); the roll-out
loop runs another. :class:`ClientPool` hands each loop, per endpoint name, the same client
for the whole run — so the judge's and the critic's concurrency bounds hold across
batches, their connections are reused, and their usage adds up — and closes them all at
the end (``rl.trainer.Services`` owns the run's pool).

Not here: which endpoint a name means (``rl.trainer.Services``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from llm import ChatClient, Endpoint

log = logging.getLogger(__name__)
CLOSE_TIMEOUT_S = 10.0


class ClientPool:
    """``get(name, endpoint)``: the loop's one client for ``name``, made on first use."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, int], tuple[asyncio.AbstractEventLoop, ChatClient]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, endpoint: Endpoint | Callable[[], Endpoint]) -> ChatClient:
        """The client for ``name`` on the running loop (call it from a coroutine);
        ``endpoint`` (or a function returning it) is read only when the client is made."""
        loop = asyncio.get_running_loop()
        key = (name, id(loop))
        with self._lock:
            held = self._clients.get(key)
            if held is not None and held[0] is loop:
                return held[1]
        resolved = endpoint() if callable(endpoint) else endpoint
        with self._lock:
            held = self._clients.get(key)
            if held is None or held[0] is not loop:  # the loop object is held: ids stay unique
                held = (loop, ChatClient(resolved))
                self._clients[key] = held
            return held[1]

    def clients(self, name: str | None = None) -> list[ChatClient]:
        """The clients made so far (for ``name`` only, when given)."""
        with self._lock:
            return [c for (n, _), (_, c) in self._clients.items() if name in (None, n)]

    async def aclose(self) -> None:
        """Close the clients of the running loop (the others stay)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = [k for k, (held, _) in self._clients.items() if held is loop]
            clients = [self._clients.pop(k)[1] for k in mine]
        for client in clients:
            await client.aclose()

    def close(self) -> None:
        """Close every client on its own loop; a client whose loop is gone is dropped."""
        with self._lock:
            held, self._clients = list(self._clients.values()), {}
        for loop, client in held:
            try:
                _close_on(loop, client)
            except Exception as exc:  # noqa: BLE001 - closing is best effort at the end of a run
                log.warning("could not close the %s client: %s", client.endpoint.name, exc)


def _close_on(loop: asyncio.AbstractEventLoop, client: ChatClient) -> None:
    if loop.is_closed():
        return
    if loop.is_running():
        try:
            running: Any = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:  # cannot wait for our own loop: let it close the client later
            loop.create_task(client.aclose())
            return
        asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(CLOSE_TIMEOUT_S)
        return
    loop.run_until_complete(client.aclose())
