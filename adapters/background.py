"""Work a surface starts after acknowledging a request: kept referenced, failures logged, cancelled on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger(__name__)


class BackgroundWork:
    """Tasks started in the background (a turn, a click). asyncio keeps only weak references to
    tasks, so they are held here until they finish; a failure is logged with what the task was."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Awaitable[Any], what: str) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)

        def done(t: asyncio.Future[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed", what, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    async def aclose(self) -> None:
        """Cancel what is still running and wait for it to end."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
