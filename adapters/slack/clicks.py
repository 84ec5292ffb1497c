"""Fair page redraws for clicks: one user's clicking cannot starve other people's live turns.

A click's page update is a ``chat.update``, Slack's scarcest call (~50/min per workspace, shared
with every live turn). So clicks draw from a budget of their own per user (a fair share:
``CLICKS_PER_MIN``), and clicks on one message that come faster than that are coalesced: while
one redraw of a message runs or waits, a newer click on it supersedes the waiting one, and only
the last page requested is drawn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable

from adapters.slack.budget import RateBudget

#: One user's share of the workspace's chat.update budget (45/min) for page clicks; the rest keeps
#: live turns moving. A burst of 5 keeps ordinary paging instant.
CLICKS_PER_MIN = 20.0
CLICK_BURST = 5.0


class LatestOnly:
    """Runs jobs per key one at a time, dropping a waiting job when a newer one for its key arrives."""

    def __init__(self) -> None:
        self._latest: dict[Hashable, int] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def run(self, key: Hashable, ready: Callable[[], Awaitable[None]],
                  job: Callable[[], Awaitable[None]]) -> bool:
        """Wait for ``key``'s earlier jobs and for ``ready`` (a budget), then run ``job``; False
        (and ``job`` never runs) if a newer job for ``key`` arrived meanwhile."""
        ticket = self._latest[key] = self._latest.get(key, 0) + 1
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                if self._latest[key] != ticket:
                    return False
                await ready()
                if self._latest[key] != ticket:  # superseded while waiting for the budget
                    return False
                await job()
                return True
        finally:
            if self._latest.get(key) == ticket and not lock.locked():
                del self._latest[key]  # nothing newer waits: forget the key
                self._locks.pop(key, None)


class ClickBudgets:
    """Per-user page-click budgets and the per-message coalescing of their redraws."""

    def __init__(self, per_minute: float = CLICKS_PER_MIN, burst: float = CLICK_BURST) -> None:
        self._per_minute, self._burst = per_minute, burst
        self._budgets: dict[str, RateBudget] = {}
        self.redraws = LatestOnly()

    def of(self, user: str) -> RateBudget:
        """``user``'s budget (made on first use)."""
        budget = self._budgets.get(user)
        if budget is None:
            budget = self._budgets[user] = RateBudget(self._per_minute, burst=self._burst)
        return budget
