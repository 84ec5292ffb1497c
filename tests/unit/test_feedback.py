"""Feedback and typed Stop through the engine (SQLite state, the recording surface), and the export.

A finished answer offers 👍 / 👎 naming its turn; typed ``good`` / ``bad [comment]`` rate the
thread's latest answer; a second verdict by the same reader replaces the first; ``stop`` typed
while a turn runs stops it at once instead of waiting behind it in the thread's queue.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bot import events as ev
from bot.actions import THANKS
from bot.config import Settings
from bot.datasets.local import LocalDatasetStore
from bot.engine import Engine
from bot.feedback import FeedbackRecord, export, export_feedback, parse_since
from bot.intents import Feedback
from bot.messages import ActionInvoked, IncomingMessage, MessageRef, ThreadKey
from bot.reply import Button, Buttons, Notice
from bot.storage.local import SqliteStateStore
from tests.fakes.scripted_agent import ScriptedAgent, Sleep
from tests.surfaces import RecordingSurface

T1 = ThreadKey("test", "team", "C1", "1.0")
OWNER = "U1"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path)})
    settings.home.mkdir(parents=True, exist_ok=True)

    def script(turn: object) -> list[object]:
        text = getattr(turn, "text", "")
        return [ev.Rationale("Working. "), Sleep(30)] if "slow" in text else [ev.FinalText(f"answer to {text}")]

    built = Engine(settings, SqliteStateStore(settings.state_db, settings.workspaces),
                   LocalDatasetStore(settings.datasets), ScriptedAgent(script))  # type: ignore[arg-type]
    yield built
    await built.aclose()


async def say(engine: Engine, text: str, surface: RecordingSurface, ts: str) -> None:
    await engine.submit(IncomingMessage(T1, OWNER, text, event_id=ts), surface)


async def until(condition: Callable[[], object], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def feedback_buttons(surface: RecordingSurface) -> list[Button]:
    """The 👍 / 👎 of the turn message's final state."""
    final = surface.of("live.finish")[-1].reply
    assert final is not None
    return [item for block in final.blocks if isinstance(block, Buttons) for item in block.items
            if isinstance(item, Button) and isinstance(item.intent, Feedback)]


def thanks(surface: RecordingSurface) -> int:
    return sum(1 for c in surface.of("post") + surface.of("notify") if c.reply is not None for b in c.reply.blocks
               if isinstance(b, Notice) and b.text == THANKS)


async def test_typed_good_and_bad_rate_the_latest_answer_and_the_second_replaces_the_first(engine: Engine) -> None:
    surface = RecordingSurface()
    await say(engine, "first question", surface, "e1")
    await say(engine, "good", surface, "e2")
    await say(engine, "bad the numbers are off", surface, "e3")
    [record] = await engine.state.feedback()
    assert (record.user, record.positive, record.comment, record.platform) == (OWNER, False, "the numbers are off",
                                                                              "test")
    assert thanks(surface) == 2
    await say(engine, "second question", surface, "e4")
    await say(engine, "good", surface, "e5")
    assert [r.positive for r in await engine.state.feedback()] == [False, True]  # one verdict per answer


async def test_a_finished_answer_carries_feedback_buttons_that_record_its_turn(engine: Engine) -> None:
    surface = RecordingSurface()
    await say(engine, "question", surface, "e1")
    good, bad = feedback_buttons(surface)
    assert good.intent.positive and not bad.intent.positive  # type: ignore[union-attr]
    await engine.act(ActionInvoked("feedback", bad.token, "U2", T1, MessageRef("C1", "m1")), surface)
    [record] = await engine.state.feedback()
    assert record.turn == bad.intent.turn and record.user == "U2" and not record.positive  # type: ignore[union-attr]


async def test_typed_stop_stops_the_running_turn_at_once_not_after_it(engine: Engine) -> None:
    surface = RecordingSurface()
    running = engine.submit(IncomingMessage(T1, OWNER, "slow please", event_id="e1"), surface)
    await until(lambda: surface.of("live.start"))
    await asyncio.wait_for(engine.submit(IncomingMessage(T1, OWNER, "stop", event_id="e2"), surface), 2)
    await asyncio.wait_for(running, 2)
    assert not engine.running(T1)
    assert [c.reply.summary for c in surface.of("live.finish")] == ["Stopped"]  # type: ignore[union-attr]
    await say(engine, "what now", surface, "e3")
    assert "answer to what now" in str(surface.of("live.finish")[-1].reply)


def test_export_writes_csv_with_a_header_and_jsonl_one_object_a_line() -> None:
    from datetime import UTC, datetime

    records = [FeedbackRecord("c1", "t1", "U1", datetime(2026, 12, 1, tzinfo=UTC), False, 'says "hi", twice', "slack")]
    rows = list(csv.DictReader(io.StringIO(export(records, "csv"))))
    assert rows == [{"conversation": "c1", "turn": "t1", "user": "U1", "at": "2026-12-01T00:00:00+00:00",
                     "positive": "False", "comment": 'says "hi", twice', "platform": "slack"}]
    [line] = export(records, "jsonl").splitlines()
    assert json.loads(line)["comment"] == 'says "hi", twice'


def test_since_takes_a_number_and_a_unit() -> None:
    assert parse_since("7d") == timedelta(days=7) and parse_since("12h") == timedelta(hours=12)
    with pytest.raises(ValueError, match="like 7d"):
        parse_since("a week")


async def test_export_since_leaves_older_verdicts_out(engine: Engine) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    await engine.state.record_feedback(FeedbackRecord("c1", "old", "U1", now - timedelta(days=10), True))
    await engine.state.record_feedback(FeedbackRecord("c1", "new", "U1", now - timedelta(days=1), True))
    out = io.StringIO()
    assert await export_feedback(engine.state, out, since="7d", fmt="jsonl") == 1
    assert json.loads(out.getvalue())["turn"] == "new"
