"""How many requests one client keeps in flight: a bound that adapts to what it sees.

A fixed bound is right for a provider with capacity to spare and wrong for a model on
this machine: when the CPU is taken by other work every request slows down, a client
that keeps sending at its full bound piles up requests that time out, and each retry
adds more. :class:`AdaptiveLimit` is additive-increase / multiplicative-decrease, the
rule TCP uses for the same problem: a timeout, a 429 or a 5xx halves the bound, and so
does a success that took more than half the request timeout (a timeout is coming); every
success that was neither raises it by ``1 / bound``, so by about one per round of
requests, back up to the configured maximum. One overload halves the bound once: answers
to requests sent before the last decrease do not decrease it again.

It does not share a bound across processes (each client adapts to what it sees), and it
does not decide what is retried; :class:`~llm.client.ChatClient` does both.

Example::

    limit = AdaptiveLimit(16)
    ticket = await limit.acquire()
    ...                                   # send the request
    await limit.release(ticket, Outcome.OK)
"""

from __future__ import annotations

import asyncio
import enum


class Outcome(enum.Enum):
    OK = "ok"
    SLOW = "slow"
    """Succeeded, but slowly enough that a timeout is near: back off."""
    OVERLOAD = "overload"
    """Timed out, or the server said it is overloaded (429, 5xx)."""
    OTHER = "other"
    """Failed for a reason that says nothing of the server's load (a 400, a bad body)."""


class AdaptiveLimit:
    """A concurrency bound between ``minimum`` and ``maximum`` that follows the server's load;
    with ``adaptive=False`` it is a plain bound at ``maximum``."""

    def __init__(self, maximum: int, *, minimum: int = 1, adaptive: bool = True) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {minimum} and {maximum}")
        self.maximum, self.minimum, self.adaptive = maximum, minimum, adaptive
        self.limit = float(maximum)
        self.in_flight = 0
        self.decreases = 0
        self.lowest = maximum
        """The lowest whole bound reached so far."""
        self._epoch = 0
        self._changed: asyncio.Condition | None = None

    @property
    def bound(self) -> int:
        return max(self.minimum, int(self.limit))

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def acquire(self) -> int:
        """Wait for a free slot; the returned ticket goes back to :meth:`release`."""
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: self.in_flight < self.bound)
            self.in_flight += 1
            return self._epoch

    async def release(self, ticket: int, outcome: Outcome) -> None:
        changed = self._condition()
        async with changed:
            self.in_flight -= 1
            if self.adaptive:
                self._adapt(ticket, outcome)
            changed.notify_all()

    def _adapt(self, ticket: int, outcome: Outcome) -> None:
        if outcome in (Outcome.OVERLOAD, Outcome.SLOW):
            if ticket == self._epoch:  # sent under the current bound: it is too high
                self.limit = max(float(self.minimum), self.limit / 2)
                self._epoch += 1
                self.decreases += 1
                self.lowest = min(self.lowest, self.bound)
        elif outcome is Outcome.OK:
            self.limit = min(float(self.maximum), self.limit + 1 / self.limit)
