"""Real-world Slack payload shapes (issue 11) through the real bolt app against the fake Web API.

The fixtures in ``tests/fixtures/slack/`` are written from Slack's documented payloads: a Slack
Connect channel (the event's ``team_id`` is the other workspace's, ``authorizations`` names ours) and
files sent as ``"file_access": "check_file_info"`` with no URL.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot import events as ev
from bot.conversation import Turn
from bot.messages import ThreadKey
from tests.fakes.scripted_agent import ScriptedAgent, Step, WriteFile
from tests.fakes.slack_api import FakeSlack, Posted, signed_headers
from tests.slack_harness import SIGNING_SECRET, SlackBot, until

#: A dataset page's table: Slack's native data_table, or the table block it steps down to.
TABLE_BLOCKS = ("data_table", "table")

pytestmark = pytest.mark.e2e  # starts servers

FIXTURES = Path(__file__).parents[1] / "fixtures" / "slack"
CHANNEL = "C0SHARED"
CSV = ("id,name\n" + "".join(f"{i},n{i}\n" for i in range(45))).encode()
SEEN: dict[str, bytes] = {}
TURNS: list[str] = []


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def script(turn: Turn) -> list[Step]:
    TURNS.append(turn.text)
    if turn.attachments:
        for a in turn.attachments:
            SEEN[a.name] = a.path.read_bytes()
        return [ev.FinalText("read " + ", ".join(a.name for a in turn.attachments))]
    if "table" in turn.text:
        return [WriteFile("sales.csv", CSV), ev.FinalText("Here it is.")]
    return [ev.FinalText(f"turn {len(TURNS)}")]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    SEEN.clear()
    TURNS.clear()
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


async def send_body(bot: SlackBot, body: dict[str, Any]) -> int:
    raw = json.dumps(body)
    return await bot.post(raw, "application/json", signed_headers(SIGNING_SECRET, raw))


async def click_body(bot: SlackBot, body: dict[str, Any]) -> int:
    raw = urlencode({"payload": json.dumps(body)})
    return await bot.post(raw, "application/x-www-form-urlencoded", signed_headers(SIGNING_SECRET, raw))


def dataset_message(fake: FakeSlack, thread_ts: str) -> Posted | None:
    return next((m for m in fake.thread(CHANNEL, thread_ts) if any(b["type"] in TABLE_BLOCKS for b in m.blocks)), None)


def next_button(m: Posted) -> dict[str, Any] | None:
    for b in m.blocks:
        for e in b.get("elements", ()) if b["type"] == "actions" else ():
            if "Next" in (e.get("text") or {}).get("text", ""):
                return dict(e)
    return None


@pytest.mark.parametrize("click_team", ["T0001", "T0OTHER"])
async def test_a_shared_channel_thread_keeps_one_conversation_and_its_buttons_page(
        bot: SlackBot, fake: FakeSlack, click_team: str) -> None:
    mention = load("shared_channel_app_mention")
    ts = mention["event"]["ts"]
    assert await send_body(bot, mention) == 200
    await until(lambda: dataset_message(fake, ts) is not None, what="dataset message")
    page = dataset_message(fake, ts)
    assert page is not None and "rows 1–20 of 45" in str(page.blocks)
    # The answer streams to Bob in his own workspace (chat.startStream's recipient_team_id).
    assert {c.args.get("recipient_team_id") for c in fake.named("chat.startStream")} == {"T0OTHER"}

    # Bob, of the other workspace, clicks Next: the payload may name either workspace.
    nxt = next_button(page)
    assert nxt is not None
    click = load("shared_channel_block_actions")
    click["container"]["message_ts"] = click["message"]["ts"] = page.ts
    click["team"]["id"] = click_team
    click["actions"] = [{"type": "button", "action_id": nxt["action_id"], "block_id": "b", "value": nxt["value"],
                         "action_ts": "1700003001.000200"}]
    before = page.updates
    assert await click_body(bot, click) == 200
    await until(partial(lambda m, b: m.updates > b, page, before), what="the next page")
    assert "rows 21–40 of 45" in str(page.blocks)

    # A reply in the same thread, delivered this time under our workspace's team_id, continues it.
    reply = copy.deepcopy(mention)
    reply["team_id"] = reply["context_team_id"] = "T0001"
    reply["event"].update(type="message", text="<@UBOT> again", ts="1700003002.000100", thread_ts=ts,
                          event_ts="1700003002.000100", channel_type="channel")
    reply["event_id"] = "Ev0SHARED3"
    assert await send_body(bot, reply) == 200
    await until(lambda: len(TURNS) == 2, what="the second turn")
    engine = bot.engine
    assert engine is not None
    ours, theirs = (ThreadKey("slack", team, CHANNEL, ts) for team in ("T0001", "T0OTHER"))
    assert await engine.state.conversation(ours) is not None
    assert await engine.state.conversation(theirs) is None  # the thread never split

async def test_a_check_file_info_file_reaches_the_agent_byte_identical(bot: SlackBot, fake: FakeSlack) -> None:
    data = bytes(range(256)) * 20 + "é,ü\n".encode()
    url = fake.add_user_file("shared.csv", data)
    body = load("shared_channel_check_file_info")
    body["event"]["files"][0]["id"] = fake.user_file_id(url)
    ts = body["event"]["ts"]
    assert await send_body(bot, body) == 200
    await until(lambda: "shared.csv" in SEEN, what="the looked-up attachment")
    assert SEEN["shared.csv"] == data
    assert len(fake.named("files.info")) == 1
    # The files the bot cannot read are named, each with its reason.
    await until(lambda: any("locked.csv" in fake.shown(m) for m in fake.thread(CHANNEL, ts)), what="notice")
    shown = "\n".join(fake.shown(m) for m in fake.thread(CHANNEL, ts))
    assert "locked.csv" in shown and "did not give me access" in shown
    assert "old.csv" in shown and "deleted" in shown


async def test_a_check_file_info_file_slack_will_not_show_is_named_with_the_reason(
        bot: SlackBot, fake: FakeSlack) -> None:
    body = load("shared_channel_check_file_info")
    body["event"]["files"] = body["event"]["files"][:1]  # F0SHARED: files.info answers file_not_found
    body["event"]["text"] = "<@UBOT> read it"
    ts = body["event"]["ts"]
    assert await send_body(bot, body) == 200
    await until(lambda: any("F0SHARED" in fake.shown(m) for m in fake.thread(CHANNEL, ts)), what="notice")
    shown = "\n".join(fake.shown(m) for m in fake.thread(CHANNEL, ts))
    assert "could not find it" in shown


# ---- data never notifies anyone -----------------------------------------------------------------

LIVE_MENTION = re.compile(r"<(?:!(?:channel|here|everyone)|@[UW][A-Z0-9]+)")
HOSTILE_CSV = b"id,<!here>,note\n1,<@U0BOSS>,AT&amp;T\n2,<!channel>,a|b\n"


def hostile(turn: Turn) -> list[Step]:
    return [
        ev.Rationale("Checking <!here> first. "),
        ev.CodeStarted("print('<@U0BOSS>')"),
        ev.CodeOutput("<!channel> & <@U0BOSS> &amp;\n"),
        WriteFile("people.csv", HOSTILE_CSV),
        ev.FinalText("Done <!channel>:\n\n| who | what |\n|---|---|\n| <@U0BOSS> | &amp; |\n"),
    ]


def mention_texts(fake: FakeSlack, thread_ts: str) -> list[str]:
    """Every text Slack parses for mentions: streamed Markdown and tasks, fallback text, mrkdwn and
    markdown blocks (a table's ``raw_text`` cells are shown raw and never notify)."""
    out = []
    for m in fake.thread(CHANNEL, thread_ts):
        out += [m.markdown, m.text]
        out += [str(t.get(k) or "") for t in fake.steps(m) for k in ("title", "details", "output")]
        for b in m.blocks:
            if b["type"] == "markdown":
                out.append(b["text"])
            elif b["type"] == "section":
                out.append(b["text"]["text"])
            elif b["type"] == "context":
                out += [e.get("text", "") for e in b["elements"]]
    return out


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "edited"])
async def test_mentions_in_answers_output_and_tables_notify_no_one(
        fake: FakeSlack, tmp_path: Path, streaming: bool) -> None:
    if not streaming:
        fake.fail.stream_start_error = "method_not_supported_for_channel_type"
    bot = await SlackBot(fake, tmp_path, ScriptedAgent(hostile)).start()
    try:
        mention = load("shared_channel_app_mention")
        ts = mention["event"]["ts"]
        assert await send_body(bot, mention) == 200
        await until(lambda: dataset_message(fake, ts) is not None
                    and any("Done" in t for t in mention_texts(fake, ts)), what="answer and dataset page")
        await until(lambda: not any(m.streaming for m in fake.thread(CHANNEL, ts)), what="the end of the turn")
        texts = mention_texts(fake, ts)
        assert not [t for t in texts if LIVE_MENTION.search(t)]
        shown = "\n".join(texts)
        # Shown as typed (Slack decodes the entities), and each piece of data reached the thread.
        assert "&lt;!channel&gt; &amp; &lt;@U0BOSS&gt; &amp;amp;" in shown  # program output
        assert "Done &lt;!channel&gt;" in shown  # the answer
        assert "| a | b |" not in shown and "```\n| who | what |" in shown  # the answer's table is code
        page = dataset_message(fake, ts)
        assert page is not None
        (table,) = [b for b in page.blocks if b["type"] in TABLE_BLOCKS]
        cells = [c["text"] for row in table["rows"] for c in row]
        assert {"<!here>", "<@U0BOSS>", "AT&amp;T"} <= set(cells)  # raw_text cells: literal
    finally:
        await bot.stop()
