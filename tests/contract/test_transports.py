"""The contract every live-turn transport keeps, run against each real one.

Slack: ``SlackTransport`` with the real slack-sdk client against the fake Web API. Teams:
``TeamsTransport`` with the real botbuilder ``Sender`` against the fake Bot Connector. Console:
``ConsoleTransport`` printing into a buffer. A fourth surface adds a ``Harness`` here and inherits
every check.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest
from botbuilder.schema import ChannelAccount, ConversationAccount, ConversationReference
from slack_sdk.web.async_client import AsyncWebClient

from adapters.console.surface import ConsoleOutput, ConsoleTransport
from adapters.slack.context import SlackContext
from adapters.slack.transport import SlackTransport
from adapters.teams.config import TeamsSettings
from adapters.teams.sender import Sender
from adapters.teams.transport import TeamsTransport
from adapters.teams.wiring import build_adapter
from bot.intents import ListFiles
from bot.live_turn import LiveTurn
from bot.messages import ThreadKey
from bot.reply import Button, Buttons, Markdown, Reply, Status
from bot.transport import LiveTransport
from tests.fakes.bot_connector import FakeBotConnector
from tests.fakes.slack_api import FakeSlack

FILES = Buttons((Button("Files", ListFiles(), "files-token"),))


class Harness(Protocol):
    """One platform, from the outside: what a person sees and what can go wrong there."""

    can_stream: bool
    can_edit: bool

    def transport(self, *, stream: bool) -> LiveTransport[Any]: ...

    def thread(self) -> list[str]:
        """The turn's messages as a person reads them, in order."""
        ...

    def streamed(self) -> bool:
        """Whether the platform's streaming calls were used."""
        ...

    def end_the_stream(self) -> None:
        """Make the platform refuse the next stream update (expired, stopped)."""
        ...

    def delete_first_message(self) -> None: ...

    def posts(self) -> int:
        """How many new messages were posted (not streamed, not edits)."""
        ...

    def buttons(self) -> list[str]:
        """Labels of the buttons the last message carries."""
        ...


class SlackHarness:
    can_stream = can_edit = True

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.ctx = SlackContext(AsyncWebClient(token=fake.token, base_url=fake.api_url), fake.token)
        self.key = ThreadKey("slack", "T0001", "C0CHAN", "1700000000.000100")

    def transport(self, *, stream: bool) -> SlackTransport:
        self.ctx.streaming = stream
        return SlackTransport(self.ctx, self.key, "UALICE", interval=0.02)

    def thread(self) -> list[str]:
        return [self.fake.shown(m) for m in self.fake.thread(self.key.channel, self.key.thread)]

    def streamed(self) -> bool:
        return bool(self.fake.named("chat.appendStream"))

    def end_the_stream(self) -> None:
        self.fake.fail.stream_expires_after = 0

    def delete_first_message(self) -> None:
        first = self.fake.thread(self.key.channel, self.key.thread)[0]
        del self.fake.messages[(first.channel, first.ts)]

    def posts(self) -> int:
        return len(self.fake.named("chat.postMessage"))

    def buttons(self) -> list[str]:
        last = self.fake.thread(self.key.channel, self.key.thread)[-1]
        return [e["text"]["text"] for b in last.blocks if b["type"] == "actions" for e in b["elements"]]


class TeamsHarness:
    can_stream = can_edit = True

    def __init__(self, connector: FakeBotConnector) -> None:
        self.connector = connector
        adapter, _ = build_adapter(TeamsSettings.from_env({"DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED": "1"}))  # type: ignore[arg-type]
        self.sender = Sender(adapter, "", base_delay=0.01)

    def transport(self, *, stream: bool) -> TeamsTransport:
        kind = "personal" if stream else "channel"
        reference = ConversationReference(
            activity_id="1", bot=ChannelAccount(id="28:bot"), user=ChannelAccount(id="29:ada"),
            conversation=ConversationAccount(id="a:chat", conversation_type=kind),
            channel_id="msteams", service_url=self.connector.url)
        return TeamsTransport(self.sender, reference, personal=stream, interval=0.02)

    def _messages(self) -> dict[str, dict[str, Any]]:
        shown: dict[str, dict[str, Any]] = {}
        for c in self.connector.calls:
            if c.body.get("type") == "message":
                shown[c.returned_id] = c.body
        return shown

    def thread(self) -> list[str]:
        return [body.get("text") or "" for body in self._messages().values()]

    def streamed(self) -> bool:
        return any(e.get("streamType") == "streaming" for c in self.connector.calls
                   for e in c.body.get("entities") or ())

    def end_the_stream(self) -> None:
        self.connector.fail_next(403, None, code="ContentStreamNotAllowed", message="Content stream finished.",
                                 when=lambda method, body: body.get("type") == "typing")

    def delete_first_message(self) -> None:
        self.connector.fail_next(404, None, code="NotFound", message="The activity was deleted.",
                                 when=lambda method, body: method == "PUT")

    def posts(self) -> int:
        # A stream's final message carries streaminfo; every turn message carries the AI label.
        return sum(c.method == "POST" and c.body.get("type") == "message"
                   and not any(e.get("type") == "streaminfo" for e in c.body.get("entities") or ())
                   for c in self.connector.calls)

    def buttons(self) -> list[str]:
        last = list(self._messages().values())[-1]
        return [a["title"] for att in last.get("attachments") or () for a in att["content"].get("actions") or ()]


class ConsoleHarness:
    can_stream = can_edit = False

    def __init__(self) -> None:
        self.out = io.StringIO()

    def transport(self, *, stream: bool) -> ConsoleTransport:
        return ConsoleTransport(ConsoleOutput(self.out))

    def thread(self) -> list[str]:
        return [self.out.getvalue()]

    def streamed(self) -> bool:
        return False

    def end_the_stream(self) -> None:
        raise AssertionError("the console does not stream")

    def delete_first_message(self) -> None:
        raise AssertionError("the console cannot lose a printed line")

    def posts(self) -> int:
        return 1

    def buttons(self) -> list[str]:
        return []


@pytest.fixture(params=["slack", "teams", "console"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "slack":
        fake = await FakeSlack().start()
        yield SlackHarness(fake)
        await fake.close()
    elif request.param == "teams":
        connector = await FakeBotConnector().start()
        yield TeamsHarness(connector)
        await connector.close()
    else:
        yield ConsoleHarness()


async def run_turn(transport: LiveTransport[Any], harness: Harness | None = None, *, midway: Any = None) -> None:
    """A short turn: the status, a rationale that grows, then the answer (and ``midway()`` between)."""
    state = [Reply((Status("Working…", "working"),))]
    live: LiveTurn[Any] = LiveTurn(transport, lambda: state[-1], end_buttons=FILES)
    await live.start()
    for text in ("Loading the data.", "Loading the data. Grouping by region."):
        state.append(Reply((Status("Working…", "working"), Markdown(text))))
        await live.changed()
        await asyncio.sleep(0.05)  # past the 0.02 s interval: each change goes out on its own
        if midway is not None:
            midway()
            midway = None
    state.append(Reply((Status("Done in 2 s", "done"), Markdown("Loading the data. Grouping by region."),
                        Markdown("EMEA leads.")), "EMEA leads."))
    await live.finish()


def ends_with_the_answer(thread: list[str]) -> bool:
    return "EMEA leads." in thread[-1] and "Grouping by region." in thread[-1]


async def test_streams_where_it_can_and_ends_on_the_final_state(harness: Harness) -> None:
    await run_turn(harness.transport(stream=True))
    assert harness.streamed() == harness.can_stream
    assert ends_with_the_answer(harness.thread())
    assert len(harness.thread()) == 1 and harness.thread()[0].count("EMEA leads.") == 1


async def test_edits_one_message_where_it_cannot_stream(harness: Harness) -> None:
    await run_turn(harness.transport(stream=False))
    assert not harness.streamed()
    assert len(harness.thread()) == 1 and ends_with_the_answer(harness.thread())
    assert harness.thread()[0].count("Loading the data.") == 1


async def test_a_stream_the_platform_ends_falls_back_to_editing(harness: Harness) -> None:
    if not harness.can_stream:
        pytest.skip("this surface does not stream")
    await run_turn(harness.transport(stream=True), midway=harness.end_the_stream)
    assert ends_with_the_answer(harness.thread())


async def test_a_vanished_message_is_posted_again(harness: Harness) -> None:
    if not harness.can_edit:
        pytest.skip("this surface cannot edit, so nothing it shows can vanish")
    await run_turn(harness.transport(stream=False), midway=harness.delete_first_message)
    assert harness.posts() == 2  # the turn message, then once more after it vanished
    assert ends_with_the_answer(harness.thread())


async def test_the_final_message_carries_the_files_button_where_there_are_buttons(harness: Harness) -> None:
    transport = harness.transport(stream=False)
    await run_turn(transport)
    assert harness.buttons() == (["Files"] if transport.limits.buttons else [])
