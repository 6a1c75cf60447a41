"""Ctrl-C and SIGTERM as one exception, so a stopped job cleans up the same way either way.

Python turns SIGINT into ``KeyboardInterrupt`` but dies of SIGTERM on the spot: no
``finally`` block, no context manager exit, so Ray actors, the embedded model server and
sandbox containers are left to whoever notices, and records finished but not yet written
are lost. Inside :func:`stop_on_signals` both signals raise :class:`Interrupted` in the
main thread instead, the job unwinds through its ``finally`` blocks (write what is
finished, stop the actors, shut Ray down), and the command exits with the shell's code
for the signal (130, 143).

Catch ``KeyboardInterrupt``, not :class:`Interrupted`: a signal that arrives while Ray
waits comes out of Ray as a plain ``KeyboardInterrupt``. :class:`Stop` says which it was.

Not here: deciding what is safe to keep (the run store writes atomically), other signals.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The job was asked to stop by a signal. A ``KeyboardInterrupt``, so ``except
    Exception`` never swallows it and libraries that clean up on Ctrl-C do so."""


class Stop:
    """The signal handler of :func:`stop_on_signals`; remembers the first signal."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        raise Interrupted(signal.Signals(signum).name)

    @property
    def name(self) -> str:
        """The signal's name; SIGINT for a ``KeyboardInterrupt`` no signal explains."""
        return signal.Signals(self.signum or signal.SIGINT).name

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by the signal (130, 143)."""
        return 128 + (self.signum or signal.SIGINT)


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """While inside, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread
    (elsewhere nothing changes); the previous handlers are restored on exit.

    Example::

        try:
            with stop_on_signals() as stop:
                run_the_job()
        except KeyboardInterrupt:
            sys.exit(stop.exit_code)
    """
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop) for sig in SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def signals_held() -> Iterator[None]:
    """Inside :func:`stop_on_signals`: SIGINT and SIGTERM that arrive in the block wait for
    its end, then raise :class:`Interrupted` (so two files written as one are not cut in
    half). Elsewhere a no-op."""
    stop = signal.getsignal(signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    if not main or not isinstance(stop, Stop):
        yield
        return
    held: list[int] = []
    for sig in SIGNALS:
        signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for sig in SIGNALS:
            signal.signal(sig, stop)
    if held:
        stop(held[0], None)


def keeping_sigterm_handler(start: Callable[[], Any]) -> Any:
    """``start()`` (e.g. ``ray.init``), then put back a SIGTERM handler it replaced.

    ``ray.init`` installs its own (``sys.exit(15)``); a handler the caller installed on
    purpose, like :func:`stop_on_signals`'s, is kept. Without one, Ray's stays.
    """
    before = signal.getsignal(signal.SIGTERM)
    result = start()
    if callable(before) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, before)
    return result
