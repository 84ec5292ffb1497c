"""``MessageRecords`` (``bot/message_records.py``) on the SQLite store with a movable clock: a card
is found again by any token it carries, a rated message by its id, in its own thread only, until
the record's retention passes (the rules for every store are in the state-store contract suite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.intents import ListFiles, ShowPage
from bot.message_records import RATED_AT_LEAST, MessageRecords
from bot.messages import ThreadKey
from bot.reply import Button, Buttons, Option, Reply, Select
from bot.storage.local import SqliteStateStore

THREAD = ThreadKey("teams", "tenant", "19:chan@thread.tacv2", "1732180811554")
OTHER = ThreadKey("teams", "tenant", "19:chan@thread.tacv2", "1732180899999")
RETENTION = timedelta(hours=6)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def kept(tmp_path: Path) -> AsyncIterator[tuple[MessageRecords, Clock]]:
    clock = Clock()
    state = SqliteStateStore(tmp_path / "state.sqlite3", tmp_path / "workspaces", clock)
    yield MessageRecords(state, RETENTION), clock
    await state.aclose()


async def test_a_card_is_found_by_any_token_it_carries_in_its_thread_until_retention_ends(
        kept: tuple[MessageRecords, Clock]) -> None:
    records, clock = kept
    page = Reply((Buttons((Button("Next", ShowPage("d", 2), "t-next"),
                           Select("Sort", (Option("a", ShowPage("d", 1), "t-sort"),)))),))
    await records.card_shows(THREAD, "card-1", page)
    assert (await records.card_with(THREAD, "t-next"), await records.card_with(THREAD, "t-sort"),
            await records.card_with(THREAD, "nope"), await records.card_with(THREAD, "")) == \
        ("card-1", "card-1", None, None)
    assert await records.card_with(OTHER, "t-next") is None  # tokens are thread-bound, so are records
    await records.card_shows(THREAD, "card-2", Reply((Buttons((Button("Files", ListFiles(), "t-next"),)),)))
    assert await records.card_with(THREAD, "t-next") == "card-2"  # a token on a newer card finds that one
    clock.now += RETENTION + timedelta(seconds=1)
    assert await records.card_with(THREAD, "t-sort") is None  # its dataset is gone too by now


async def test_a_rated_message_names_its_turn_for_at_least_a_week(kept: tuple[MessageRecords, Clock]) -> None:
    records, clock = kept
    await records.rated(THREAD, "1732180900001", "turn-a")
    await records.rated(THREAD, "1732180900002", "turn-b")
    assert await records.turn_of(THREAD, "1732180900001") == "turn-a"
    assert await records.turn_of(OTHER, "1732180900001") == ""  # unknown: the thread's latest turn
    clock.now += RATED_AT_LEAST - timedelta(minutes=1)  # verdicts come late: longer than the data's 6 h
    assert await records.turn_of(THREAD, "1732180900002") == "turn-b"
    clock.now += timedelta(minutes=2)
    assert await records.turn_of(THREAD, "1732180900002") == ""
