"""Every ``JournalStore`` (``bot/journal.py``) keeps its contract: what it holds while a turn runs is
what the process (or replica) that finds the turn cut off ends — the newest ids of its live
messages — and once the turn ended there is nothing to end.

Parametrized over ``JOURNALS``: the state stores (found again at start-up, ``bot.recovery``) and
the SQS queue's turn records (found by the replica that receives a dead replica's turn).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bot.aws.turn_journal import QueuedTurnJournal
from bot.aws.turn_records import DEAD_AFTER, TurnRecords
from bot.journal import JournalStore, TurnInFlight
from bot.messages import ThreadKey
from bot.storage.base import StateStore
from bot.storage.dynamodb import DynamoStateStore, utc_now
from bot.storage.local import SqliteStateStore
from tests.fakes import moto_aws


@dataclass
class Harness:
    """``store`` to journal into; ``left(thread)`` the message ids whoever finds the turn cut off
    would end (``None``: nothing to end); ``aclose`` releases what the harness opened."""

    store: JournalStore
    left: Callable[[ThreadKey], Awaitable[tuple[str, ...] | None]]
    stack: AsyncExitStack


async def state_harness(state: StateStore) -> Harness:
    async def left(thread: ThreadKey) -> tuple[str, ...] | None:
        found = [t for t in await state.turns_in_flight(thread.platform) if t.thread == thread]
        return found[0].messages if found else None

    stack = AsyncExitStack()
    stack.push_async_callback(state.aclose)
    return Harness(state, left, stack)


async def queue_harness(tmp: Path) -> Harness:
    dynamodb, table = moto_aws.shared().clients().dynamodb, moto_aws.settings_for(str(tmp)).table
    journal = QueuedTurnJournal(TurnRecords(dynamodb, table, "runner"))
    deliveries: dict[ThreadKey, str] = {}
    stack = AsyncExitStack()
    running = TurnRecords(dynamodb, table, "runner")

    # The receiver finds the turn when the runner is dead: past ``DEAD_AFTER`` without its heartbeat.
    later = TurnRecords(dynamodb, table, "receiver", clock=lambda: utc_now() + DEAD_AFTER + timedelta(seconds=1))

    async def left(thread: ThreadKey) -> tuple[str, ...] | None:
        found = await later.begin(deliveries[thread], thread)
        return None if found.status == "done" else found.live

    class Begun:
        """The worker's side first: a turn of the thread was received and begun before the engine journals it."""

        async def journal_turn(self, turn: TurnInFlight) -> None:
            if turn.thread not in deliveries:
                deliveries[turn.thread] = secrets.token_hex(8)
                await running.begin(deliveries[turn.thread], turn.thread)
                stack.enter_context(journal.running(turn.thread, deliveries[turn.thread]))
            await journal.journal_turn(turn)

        async def end_turn(self, thread: ThreadKey) -> None:
            await journal.end_turn(thread)

    return Harness(Begun(), left, stack)


JOURNALS: dict[str, Callable[[Path], Awaitable[Harness]]] = {
    "sqlite": lambda tmp: state_harness(SqliteStateStore(tmp / "state.sqlite3", tmp / "workspaces")),
    "dynamodb": lambda tmp: state_harness(DynamoStateStore(
        moto_aws.shared().clients().dynamodb, moto_aws.settings_for(str(tmp)).table, tmp / "workspaces")),
    "sqs-turn-records": queue_harness,
}
E2E_JOURNALS = {"dynamodb", "sqs-turn-records"}  # moto's server


@pytest.fixture(params=[pytest.param(name, marks=[pytest.mark.e2e] if name in E2E_JOURNALS else [])
                        for name in sorted(JOURNALS)])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    made = await JOURNALS[request.param](tmp_path)
    async with made.stack:
        yield made


THREAD = ThreadKey("slack", "T0001", "C0CHAN", "1700000000.000100")


async def test_a_turn_cut_off_leaves_the_newest_ids_of_its_live_messages(harness: Harness) -> None:
    await harness.store.journal_turn(TurnInFlight(THREAD, "UALICE", 100.0, None, ("1700000000.000200",)))
    await harness.store.journal_turn(TurnInFlight(THREAD, "UALICE", 100.0, None, ("1700000000.000300",)))
    assert await harness.left(THREAD) == ("1700000000.000300",)


async def test_a_turn_that_ended_leaves_nothing_to_end(harness: Harness) -> None:
    await harness.store.journal_turn(TurnInFlight(THREAD, "UALICE", 100.0, None, ("1700000000.000200",)))
    await harness.store.end_turn(THREAD)
    assert await harness.left(THREAD) is None
