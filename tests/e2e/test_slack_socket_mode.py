"""Socket Mode for real: bolt's aiohttp Socket Mode client against the fake's WebSocket endpoint.

``SLACK_APP_TOKEN`` makes ``mount`` open the connection on startup: ``apps.connections.open`` (with
the app-level token, never the bot token) hands out a ``ws://127.0.0.1`` URL, the fake says
``hello`` and pushes envelopes; every envelope must be acked by its ``envelope_id``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.fake_web_api import FakeSlack, action_body, event_body
from adapters.slack.harness import SlackBot, mention, until
from bot import events as ev
from bot.agents.scripted import ScriptedAgent, Step
from bot.conversation import Turn

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses

CHANNEL = "C0CHAN"


def script(turn: Turn) -> list[Step]:
    return [ev.Rationale("Thinking over the socket. "), ev.FinalText(f"socket answer to '{turn.text}'")]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script), SLACK_APP_TOKEN=fake.app_token).start()
    yield b
    await b.stop()


def acked(fake: FakeSlack, envelope_id: str) -> bool:
    return any(a.get("envelope_id") == envelope_id for a in fake.acks)


def answered(fake: FakeSlack, ts: str) -> bool:
    return any("socket answer" in fake.shown(m) and not m.streaming for m in fake.thread(CHANNEL, ts))


def dropped(caplog: pytest.LogCaptureFixture, event_id: str) -> bool:
    """The engine has seen ``event_id`` again and dropped it as a duplicate delivery."""
    return any(r.getMessage() == f"dropping duplicate delivery {event_id}" for r in caplog.records)


async def test_socket_mode_event_is_acked_and_answered_in_the_thread(
        bot: SlackBot, fake: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine")
    await until(lambda: bool(fake.sockets), what="socket connection")
    (opened,) = fake.named("apps.connections.open")
    assert opened.headers["Authorization"] == f"Bearer {fake.app_token}"  # app token only here
    ts = "1700002000.000100"
    sent = time.monotonic()
    envelope = await fake.push("events_api", event_body(mention("over the socket", ts), "EvSock1"))
    await until(lambda: acked(fake, envelope), limit=3, what="ack of the envelope")
    assert time.monotonic() - sent < 3.0
    await until(lambda: answered(fake, ts), what="answer in the thread")
    assert "socket answer to 'over the socket'" in "\n".join(fake.shown(m) for m in fake.thread(CHANNEL, ts))

    # Slack redelivers an envelope it thinks was not acked in time: acked again, no second turn.
    retry = await fake.push("events_api", event_body(mention("over the socket", ts), "EvSock1"), retry_attempt=1)
    await until(lambda: acked(fake, retry), limit=3, what="ack of the retry")
    await until(lambda: dropped(caplog, f"{CHANNEL}:{ts}"), what="the retry reaching the engine")
    assert len(bot.agent.turns) == 1  # type: ignore[attr-defined]


async def test_socket_mode_button_click_is_acked_and_handled(bot: SlackBot, fake: FakeSlack) -> None:
    await until(lambda: bool(fake.sockets), what="socket connection")
    ts = "1700002100.000100"
    await fake.push("events_api", event_body(mention("start", ts), "EvSock2"))
    await until(lambda: answered(fake, ts), what="answer")
    turn = next(m for m in fake.thread(CHANNEL, ts) if "datathread:files" in str(m.blocks))
    button: dict[str, Any] = next(e for b in turn.blocks if b["type"] == "actions" for e in b["elements"])
    click = {"type": "button", "action_id": button["action_id"], "block_id": "b", "value": button["value"]}
    envelope = await fake.push("interactive", action_body(click, user="UALICE", channel=CHANNEL,
                                                          message_ts=turn.ts, thread_ts=ts))
    await until(lambda: acked(fake, envelope), limit=3, what="ack of the click")
    await until(lambda: bool(fake.ephemeral), what="workspace listing")
    assert fake.ephemeral[0]["user"] == "UALICE" and fake.ephemeral[0]["thread_ts"] == ts


async def test_socket_mode_serves_no_http_route(bot: SlackBot) -> None:
    assert await bot.send(mention("x", "1700002200.000100"), "EvSock3") == 404
