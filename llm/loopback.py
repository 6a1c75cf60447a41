"""Serve an aiohttp application on loopback from a background thread.

Both the scripted endpoint and the embedded model server are real HTTP servers that a
test or program starts and stops around its work; this is the one place that knows how.
The default port 0 asks the OS for a free one; :attr:`LoopbackServer.url` tells which.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from aiohttp import web


class LoopbackServer:
    """Subclasses implement :meth:`build_app`; use as a sync or async context manager."""

    thread_name = "loopback-server"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    async def build_app(self) -> web.Application:
        raise NotImplementedError

    async def on_stop(self) -> None:
        """Called on the server's loop before it stops."""

    @property
    def url(self) -> str:
        """Base URL of the OpenAI-compatible API (…/v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> Any:
        self._started.clear()
        self._error = None
        self._thread = threading.Thread(target=self._serve, name=self.thread_name, daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise RuntimeError(
                f"{type(self).__name__} failed to start: {self._error}"
            ) from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            # Shutting down: a failed cleanup leaves nothing to save, and must not mask
            # the caller's own exception.
            with contextlib.suppress(Exception):
                future.result(timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._thread = None
        self._runner = None

    def serve_forever(self) -> None:
        """Run until interrupted (Ctrl-C), starting first unless already started."""
        if self._thread is None:
            self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Any:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_app())
        except BaseException as exc:  # noqa: BLE001 - re-raised by start() in the caller
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        loop.run_forever()
        loop.close()

    async def _start_app(self) -> None:
        app = await self.build_app()
        # A client that disconnects cancels its handler, so an abandoned request stops
        # costing work (the embedded engine drops its row at the next decoding step).
        self._runner = web.AppRunner(
            app, shutdown_timeout=0.5, access_log=None, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=2048)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:  # learn the ephemeral port
            self.port = sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        await self.on_stop()
        if self._runner is not None:
            await self._runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
