"""State the engine keeps between turns and across restarts, behind one small interface.

The embedded default is SQLite (``bot.storage.local``); a later backend (DynamoDB) implements the
same protocol so several replicas can serve one workspace.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from bot.conversation import Conversation
from bot.journal import TurnInFlight
from bot.messages import ThreadKey


class StateStore(Protocol):
    async def conversation(self, key: ThreadKey) -> Conversation | None:
        """The current conversation of a thread, if it has one."""
        ...

    async def start_conversation(self, key: ThreadKey, owner: str) -> Conversation:
        """The thread's conversation, created with ``owner`` if it has none (idempotent, race-safe)."""
        ...

    async def reset_conversation(self, key: ThreadKey, owner: str) -> Conversation:
        """Start a fresh conversation for a thread (new ids and workspace), e.g. Teams ``new``."""
        ...

    async def touch(self, conversation: Conversation) -> None:
        """Record activity now."""
        ...

    async def claim_event(self, event_id: str, ttl: timedelta = timedelta(days=1)) -> bool:
        """True the first time an inbound delivery id is seen (within ``ttl``), False for repeats."""
        ...

    async def release_event(self, event_id: str) -> None:
        """Forget a claim, so the next delivery of ``event_id`` is claimed again (a turn a crash
        cut off: its redelivery runs)."""
        ...

    async def journal_turn(self, turn: TurnInFlight) -> None:
        """Record (or replace) the thread's turn in flight; one per thread."""
        ...

    async def end_turn(self, thread: ThreadKey) -> None:
        """The thread's turn ended (in any way): drop it from the journal."""
        ...

    async def turns_in_flight(self, platform: str) -> list[TurnInFlight]:
        """The journalled turns of ``platform`` that never ended, oldest first."""
        ...

    async def get_value(self, namespace: str, key: str) -> Any | None:
        """A JSON value stored by ``put_value`` (conversation references, agent history, ...)."""
        ...

    async def put_value(self, namespace: str, key: str, value: Any) -> None: ...

    async def aclose(self) -> None: ...
