"""``RateBudget``: a per-workspace token bucket that keeps Slack's edit calls under their limits."""

from __future__ import annotations

import asyncio
import time


class RateBudget:
    """A token bucket: ``per_minute`` calls on average, bursts up to ``burst``.

    ``acquire`` waits for a token (live edits: they coalesce while waiting); ``take`` spends one
    at once even into debt (a click must not wait behind live edits; later edits wait longer).
    """

    def __init__(self, per_minute: float, burst: float = 10.0) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self) -> None:
        self._refill()
        self._tokens -= 1

    async def acquire(self) -> None:
        async with self._lock:  # FIFO among waiters
            while True:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)
