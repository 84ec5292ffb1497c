"""The engine's journal of running turns when turns come from the SQS queue (``JournalStore``).

On one process the journal lives in the state store and start-up ends what a crash left. With
several replicas, a dead replica's turn is found by whichever replica SQS hands its message next,
through the turn's own record: so the live message ids the engine journals go into that record
(``TurnRecords.note_live``), and the end of the turn marks it answered (``TurnRecords.answered``),
so a replica that dies after answering but before deleting the message is not taken for one that
died mid-turn. The engine journals by thread; SQS FIFO runs one message of a thread at a time
across all replicas, so the worker's thread → delivery map names the delivery exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.aws.turn_records import TurnRecords
from bot.journal import TurnInFlight
from bot.messages import ThreadKey


class QueuedTurnJournal:
    """``JournalStore`` writing into the turn record of the delivery each thread is running here."""

    def __init__(self, records: TurnRecords) -> None:
        self._records = records
        self._deliveries: dict[ThreadKey, str] = {}

    @contextmanager
    def running(self, thread: ThreadKey, delivery: str) -> Iterator[None]:
        """While the block runs, the engine's turn of ``thread`` is ``delivery``'s."""
        self._deliveries[thread] = delivery
        try:
            yield
        finally:
            if self._deliveries.get(thread) == delivery:
                del self._deliveries[thread]

    async def journal_turn(self, turn: TurnInFlight) -> None:
        delivery = self._deliveries.get(turn.thread)
        if delivery is not None:  # a turn not from the queue (a workflow step) has no record to carry it
            await self._records.note_live(delivery, turn.messages)

    async def end_turn(self, thread: ThreadKey) -> None:
        delivery = self._deliveries.get(thread)
        if delivery is not None:
            await self._records.answered(delivery)
