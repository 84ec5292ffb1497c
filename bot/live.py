"""Coalescing live updates: at most one update per interval, always ending on the latest state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.reply import Reply

log = logging.getLogger(__name__)


class Coalescer:
    """Sends ``render()`` through ``send`` when poked, no more often than ``interval`` seconds.

    Pokes between two sends collapse into one send of the newest state. With ``interval == 0``
    every poke is sent at once, in order (the console prints as events arrive). A failing send is
    logged and does not stop later sends: a live view is best effort, the final state is sent by
    the caller through ``LiveMessage.finish``.
    """

    def __init__(self, send: Callable[[Reply], Awaitable[None]], render: Callable[[], Reply], interval: float) -> None:
        self._send = send
        self._render = render
        self._interval = interval
        self._dirty = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        if interval > 0:
            self._task = asyncio.create_task(self._pump())

    async def _deliver(self) -> None:
        try:
            await self._send(self._render())
        except Exception:
            log.warning("live update failed", exc_info=True)

    async def poke(self) -> None:
        if self._task is None:
            await self._deliver()
        else:
            self._dirty.set()

    async def _pump(self) -> None:
        # The first update goes out right away, later ones at most once per interval.
        while True:
            await self._dirty.wait()
            if self._closed:
                return
            self._dirty.clear()
            await self._deliver()
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        """Stop pacing; pending state is dropped because the caller sends the final state."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
