"""Item 4a of issue 17: every typed command and every button ends with a message the user sees when
Slack refuses the call it needs (the real adapter against the fake Web API, scripted to refuse)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import events as ev
from bot.conversation import Turn
from bot.intents import Feedback, Intent, Stop, kind_of
from bot.messages import ThreadKey
from tests.fakes.scripted_agent import ScriptedAgent, Step, WriteFile
from tests.fakes.slack_api import FakeSlack, Posted
from tests.slack_harness import SlackBot, mention, until

#: A dataset page's table: Slack's native data_table, or the table block it steps down to.
TABLE_BLOCKS = ("data_table", "table")

pytestmark = pytest.mark.e2e  # starts servers

CHANNEL = "C0CHAN"
TS = "1700002000.000100"
CSV = ("id,name,amount\n" + "".join(f"{i},name{i},{i * 1.5}\n" for i in range(45))).encode()
REFUSAL = "not_allowed_token_type"


def script(turn: Turn) -> list[Step]:
    if "table" in turn.text:
        return [WriteFile("sales.csv", CSV), ev.FinalText("Here it is.")]
    return [ev.FinalText("ok")]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


def page_message(fake: FakeSlack) -> Posted | None:
    return next((m for m in fake.thread(CHANNEL, TS) if any(b["type"] in TABLE_BLOCKS for b in m.blocks)), None)


def turn_message(fake: FakeSlack) -> Posted | None:
    return next((m for m in fake.thread(CHANNEL, TS) if not m.streaming and "Files" in str(m.blocks)), None)


async def table_thread(bot: SlackBot, fake: FakeSlack) -> None:
    await bot.send(mention("make a table", TS), "EvTable")
    await until(lambda: page_message(fake) is not None and turn_message(fake) is not None, what="turn end")


def told(fake: FakeSlack, before: int, words: str) -> bool:
    """``words`` reached the user after the first ``before`` thread messages: in the thread or privately."""
    later = fake.thread(CHANNEL, TS)[before:]
    return any(words in fake.shown(m) for m in later) or any(words in str(e["blocks"]) for e in fake.ephemeral)


#: typed command -> the Slack methods refused while it runs (every way it could answer, but one).
TYPED = [
    ("download csv", ("files.completeUploadExternal",)),
    ("download csv", ("files.getUploadURLExternal",)),
    ("chart bar name amount", ("files.completeUploadExternal",)),
    ("files", ("chat.postEphemeral",)),
    ("help", ("chat.postMessage",)),
    ("datasets", ("chat.postMessage",)),
    ("next", ("chat.postMessage",)),
    ("prev", ("chat.postMessage",)),
    ("page 2", ("chat.postMessage",)),
    ("sort amount desc", ("chat.postMessage",)),
]


@pytest.mark.parametrize(("command", "refused"), TYPED, ids=[f"{c}-{r[0]}" for c, r in TYPED])
async def test_typed_command_that_slack_refuses_ends_with_a_message_naming_the_refusal(
        bot: SlackBot, fake: FakeSlack, command: str, refused: tuple[str, ...]) -> None:
    await table_thread(bot, fake)
    before = len(fake.thread(CHANNEL, TS))
    fake.fail.errors |= dict.fromkeys(refused, REFUSAL)
    await bot.send(mention(command, "1700002001.000100", thread_ts=TS), "EvCmd")
    await until(lambda: told(fake, before, REFUSAL), what="a notice naming Slack's refusal")


def click_of(e: dict[str, Any], option: int = 0) -> dict[str, Any]:
    if e["type"] == "button":
        return {"type": "button", "action_id": e["action_id"], "block_id": "b", "value": e["value"]}
    return {"type": "static_select", "action_id": e["action_id"], "block_id": "b",
            "selected_option": e["options"][option]}


def element(m: Posted, label: str) -> dict[str, Any]:
    for b in m.blocks:
        for e in b.get("elements", ()) if b["type"] == "actions" else ():
            if label in (e.get("text") or e.get("placeholder") or {}).get("text", ""):
                return e
    raise AssertionError(f"no {label} on the message")


#: button label, the message it is on, and the Slack methods refused while it runs.
BUTTONS = [
    ("Next", "page", ("chat.update",)),
    ("Next", "page", ("chat.update", "chat.postEphemeral")),  # nowhere private left: the thread
    ("Sort", "page", ("chat.update",)),
    ("Chart", "page", ("files.completeUploadExternal",)),
    ("Download", "page", ("files.getUploadURLExternal",)),
    ("Files", "turn", ("chat.postEphemeral",)),
]


@pytest.mark.parametrize(("label", "on", "refused"), BUTTONS, ids=["-".join((b[0], *b[2])) for b in BUTTONS])
async def test_button_that_slack_refuses_ends_with_a_message_naming_the_refusal(
        bot: SlackBot, fake: FakeSlack, label: str, on: str, refused: tuple[str, ...]) -> None:
    await table_thread(bot, fake)
    m = page_message(fake) if on == "page" else turn_message(fake)
    assert m is not None
    before = len(fake.thread(CHANNEL, TS))
    fake.fail.errors |= dict.fromkeys(refused, REFUSAL)
    await bot.click(click_of(element(m, label)), user="UALICE", channel=CHANNEL, message_ts=m.ts, thread_ts=TS)
    await until(lambda: told(fake, before, REFUSAL), what="a notice naming Slack's refusal")


@pytest.mark.parametrize(("intent", "answer"), [(Stop(), "Nothing is running"), (Feedback(True), "Thanks")])
async def test_stop_and_feedback_clicks_are_answered_in_the_thread_when_private_notes_are_refused(
        bot: SlackBot, fake: FakeSlack, intent: Intent, answer: str) -> None:
    # Slack draws neither button today (its native stop and feedback do that), but a sealed one works.
    await table_thread(bot, fake)
    m = turn_message(fake)
    assert m is not None and bot.engine is not None
    token = bot.engine.seal(ThreadKey("slack", "T0001", CHANNEL, TS), intent)
    before = len(fake.thread(CHANNEL, TS))
    fake.fail.errors["chat.postEphemeral"] = REFUSAL
    click = {"type": "button", "action_id": f"datathread:{kind_of(intent)}:0", "block_id": "b", "value": token}
    await bot.click(click, user="UALICE", channel=CHANNEL, message_ts=m.ts, thread_ts=TS)
    await until(lambda: told(fake, before, answer), what="an answer in the thread")
