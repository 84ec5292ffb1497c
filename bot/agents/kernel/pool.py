"""Admission of kernel processes: at most ``capacity`` at once, waiting turns served in arrival order.

``KernelPool`` only counts; the executor decides which idle kernel to stop to make room (least
recently used first) and hands the room to the first waiter with ``release``.
"""

from __future__ import annotations

import asyncio
from collections import deque


class KernelPool:
    """A counting gate for kernel processes with a first-come-first-served queue.

    Every started kernel (warm or bound to a conversation, starting or running) holds one place from
    ``acquire``/``try_acquire`` until ``release``. A released place goes to the longest waiter first.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Turns waiting for a place now."""
        return sum(not w.done() for w in self._waiters)

    def try_acquire(self) -> bool:
        """Take a place if one is free and nobody waits for it; never waits."""
        if self.running < self.capacity and not self.waiting:
            self.running += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a place, after everyone who asked earlier. Cancellation gives up the turn in the queue."""
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the place was handed over just as we gave up: pass it on
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self) -> None:
        """Give a place back: to the first waiter if any, else to the free count."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the place moves to the waiter: ``running`` is unchanged
                return
        self.running = max(0, self.running - 1)
