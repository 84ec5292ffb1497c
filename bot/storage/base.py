"""State the engine keeps between turns and across restarts, behind one small interface.

The embedded default is SQLite (``bot.storage.local``); a later backend (DynamoDB) implements the
same protocol so several replicas can serve one workspace.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.conversation import Conversation
from bot.feedback import FeedbackRecord
from bot.journal import TurnInFlight
from bot.messages import ThreadKey
from bot.workflows.record import RunRecord


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

    async def remember(self, namespace: str, entries: Mapping[str, str], ttl: timedelta) -> None:
        """Keep each ``key -> text`` of ``entries`` under ``namespace`` for ``ttl`` from now (a key
        kept again takes the new text and a new expiry). For small records that end on their own,
        such as which platform message stands for which turn or card."""
        ...

    async def recall(self, namespace: str, key: str) -> str | None:
        """The text ``remember`` kept under ``key``; ``None`` if there is none or its ``ttl`` has
        passed (checked on every read: expired records are never returned, whenever they are deleted)."""
        ...

    async def save_run(self, run: RunRecord) -> None:
        """Create or replace the record of a workflow run (keyed by ``run.id``)."""
        ...

    async def workflow_run(self, run_id: str) -> RunRecord | None:
        """The record of a run, if there is one."""
        ...

    async def workflow_runs(self, limit: int = 20, workflow: str | None = None) -> list[RunRecord]:
        """The most recent runs first (of ``workflow`` only, when given), at most ``limit``."""
        ...

    async def record_feedback(self, record: FeedbackRecord) -> None:
        """Keep a reader's verdict; one from the same user on the same turn of the same
        conversation replaces the earlier one."""
        ...

    async def feedback(self, since: datetime | None = None) -> list[FeedbackRecord]:
        """Verdicts recorded at or after ``since`` (all without it), oldest first."""
        ...

    async def aclose(self) -> None: ...
