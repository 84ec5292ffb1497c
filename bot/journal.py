"""The journal of turns in flight: what a restart needs to end a turn a crash left running.

A turn is journalled when its live message first shows and removed when it ended (done, failed or
stopped). Whatever is still in the journal at start-up was cut off by a crash (``kill -9``, out
of memory): ``bot.recovery`` ends its live message with ``INTERRUPTED`` and clears its status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bot.messages import ThreadKey

INTERRUPTED = "Interrupted by a restart — send your message again."


@dataclass(frozen=True)
class TurnInFlight:
    """One running turn, as the state store keeps it (JSON-safe fields only).

    ``address`` is the surface's own description of the thread (Slack: the user's message ts for
    the 👀 reaction; Teams: the conversation reference), enough to rebuild a surface after a
    restart. ``messages`` are the ids of the turn's live messages so far; ``event`` is the claimed
    delivery id of the message that started the turn (released at recovery, so a redelivery runs).
    """

    thread: ThreadKey
    user: str
    started: float
    event: str | None = None
    messages: tuple[str, ...] = ()
    address: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        key = self.thread
        return {"thread": [key.platform, key.team, key.channel, key.thread], "user": self.user,
                "started": self.started, "event": self.event, "messages": list(self.messages),
                "address": dict(self.address)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TurnInFlight:
        return cls(ThreadKey(*data["thread"]), data["user"], float(data["started"]), data.get("event"),
                   tuple(data.get("messages") or ()), dict(data.get("address") or {}))


@runtime_checkable
class Addressable(Protocol):
    """A surface that can be rebuilt after a restart from ``address()`` (Slack, Teams; not the console,
    whose turns end with its process)."""

    def address(self) -> dict[str, Any]:
        """What the adapter needs, besides the thread key and user, to reach this thread again (JSON)."""
        ...


class JournalStore(Protocol):
    """Where the engine journals its running turns: the ``StateStore`` on one process; with a turn
    queue shared by replicas, the queue's own turn records (``TurnIntake.journal``), so the replica
    that receives a dead replica's turn can end that turn's live message."""

    async def journal_turn(self, turn: TurnInFlight) -> None:
        """Record (or replace) the thread's running turn: called again when its message ids change."""
        ...

    async def end_turn(self, thread: ThreadKey) -> None:
        """The thread's running turn ended (done, failed or stopped)."""
        ...
