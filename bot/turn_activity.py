"""A small public hook on turns: who is watching a thread hears when its turn starts, steps and ends.

The engine publishes a ``TurnActivity`` when a turn starts, at each new code step and when it ends;
watchers (the browser's workspace page) subscribe per thread. Publishing never blocks and never
fails a turn: a watcher that falls behind keeps only the newest state, which is all a page shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from bot import events as ev
from bot.messages import ThreadKey
from bot.presenter import TurnState

#: Characters of a step title (the first line of its code).
STEP_TITLE_CHARS = 80


@dataclass(frozen=True)
class TurnActivity:
    """The state of a thread's latest turn and the titles of its steps so far."""

    thread: ThreadKey
    state: TurnState
    steps: tuple[str, ...] = ()


def step_titles(events: Sequence[ev.AgentEvent]) -> tuple[str, ...]:
    """One title per code step: the first non-blank line of its code, cut to ``STEP_TITLE_CHARS``."""
    titles = []
    for event in events:
        if isinstance(event, ev.CodeStarted):
            first = next((line.strip() for line in event.code.splitlines() if line.strip()), "(empty)")
            titles.append(first if len(first) <= STEP_TITLE_CHARS else first[: STEP_TITLE_CHARS - 1] + "…")
    return tuple(titles)


class TurnWatchers:
    """Per-thread subscriptions to ``TurnActivity``; the latest activity of each thread is kept."""

    def __init__(self) -> None:
        self._queues: dict[ThreadKey, set[asyncio.Queue[TurnActivity]]] = {}
        self._latest: dict[ThreadKey, TurnActivity] = {}

    def latest(self, thread: ThreadKey) -> TurnActivity | None:
        """The last activity published for ``thread`` in this process, if any."""
        return self._latest.get(thread)

    def publish(self, activity: TurnActivity) -> None:
        """Tell every watcher of the thread; a full queue drops its older entry (only the newest matters)."""
        self._latest[activity.thread] = activity
        for queue in self._queues.get(activity.thread, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(activity)

    @contextmanager
    def watch(self, thread: ThreadKey) -> Iterator[asyncio.Queue[TurnActivity]]:
        """A queue receiving the thread's activity while the ``with`` block lasts."""
        queue: asyncio.Queue[TurnActivity] = asyncio.Queue(maxsize=8)
        self._queues.setdefault(thread, set()).add(queue)
        try:
            yield queue
        finally:
            watchers = self._queues.get(thread)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._queues[thread]
