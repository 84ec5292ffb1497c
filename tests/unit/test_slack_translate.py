"""Pure translation of Slack payloads: the traps, table-driven, on recorded payload fixtures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.inbound import clean_text, to_action, to_incoming
from bot.messages import ThreadKey

FIXTURES = Path(__file__).parents[1] / "fixtures" / "slack"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<@UBOT> hi", "hi"),
        ("hi <@UBOT>", "hi"),
        ("<@UBOT|datathread> hi", "hi"),
        ("ask <@U123> about it", "ask @U123 about it"),
        ("ask <@U123|bob>", "ask @U123"),
        ("a &lt; b &amp;&amp; c &gt; d", "a < b && c > d"),
        ("literal &amp;lt;", "literal &lt;"),
        ("see <https://x.io/a?b=1&amp;c=2|the report>", "see the report"),
        ("see <https://x.io/a>", "see https://x.io/a"),
        ("mail <mailto:a@b.io|a@b.io>", "mail a@b.io"),
        ("in <#C123|general>", "in #general"),
        ("in <#C123>", "in #C123"),
        ("<!here> look", "@here look"),
        ("<!channel>", "@channel"),
        ("<!subteam^S1|@data-team> ping", "@data-team ping"),
        ("x = df[df.a > 3]", "x = df[df.a > 3]"),
        ("```df[df.a &gt; 3]```", "```df[df.a > 3]```"),
        ("  <@UBOT>   spaced   out ", "spaced out"),
    ],
)
def test_clean_text(raw: str, expected: str) -> None:
    assert clean_text(raw, "UBOT") == expected


def test_app_mention_becomes_a_message_in_its_thread() -> None:
    body = fixture("app_mention")
    msg = to_incoming(body["event"], "UBOT", body["team_id"])
    assert msg is not None
    assert msg.thread == ThreadKey("slack", "T0001", "C0CHAN", "1700000000.000100")
    assert msg.text == "what is in <sales> Q1 & Q2? see the report"
    assert msg.mentioned and msg.user == "UALICE"
    twin = fixture("message_channels")
    other = to_incoming(twin["event"], "UBOT", twin["team_id"])
    assert other is not None and other.event_id == msg.event_id and other.thread == msg.thread


def test_reply_in_thread_keys_by_thread_ts_and_is_not_a_mention() -> None:
    event = {**fixture("message_channels")["event"], "text": "and now by region", "ts": "1700000009.000001",
             "thread_ts": "1700000000.000100"}
    msg = to_incoming(event, "UBOT", "T0001")
    assert msg is not None and not msg.mentioned
    assert msg.thread.thread == "1700000000.000100"
    assert msg.event_id == "C0CHAN:1700000009.000001"


def test_dm_is_a_mention_and_top_level_starts_its_own_thread() -> None:
    body = fixture("message_im")
    msg = to_incoming(body["event"], "UBOT", body["team_id"])
    assert msg is not None and msg.mentioned
    assert msg.thread.thread == body["event"]["ts"]


def test_file_share_carries_files() -> None:
    body = fixture("message_file_share")
    msg = to_incoming(body["event"], "UBOT", body["team_id"])
    assert msg is not None
    (f,) = msg.files
    assert f.name == "sales.csv"
    assert f.url.endswith("/download/sales.csv") and f.media_type == "text/csv"


def _ev(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(fixture("message_channels")["event"])
    event.update(changes)
    return event


@pytest.mark.parametrize(
    "event",
    [
        fixture("message_changed")["event"],
        _ev(subtype="message_deleted"),
        _ev(subtype="channel_join", text="<@UALICE> has joined the channel"),
        _ev(subtype="bot_message", bot_id="BOTHER"),
        _ev(bot_id="BOTHER"),
        _ev(user="UBOT"),
        _ev(type="reaction_added"),
        _ev(user=None),
    ],
    ids=["edit", "delete", "join", "bot_message", "other_bot", "ourselves", "not_a_message", "no_user"],
)
def test_ignored(event: dict[str, Any]) -> None:
    assert to_incoming(event, "UBOT", "T0001") is None


def test_thread_broadcast_is_kept() -> None:
    assert to_incoming(_ev(subtype="thread_broadcast", thread_ts="1.0"), "UBOT", "T0001") is not None


def test_block_actions_button_and_select() -> None:
    body = fixture("block_actions_next")
    body["actions"][0]["value"] = "tok.en"
    action = to_action(body)
    assert action is not None
    assert action.kind == "page" and action.token == "tok.en" and action.user == "UALICE"
    assert action.thread == ThreadKey("slack", "T0001", "C0CHAN", "1700000000.000100")
    assert action.message is not None and (action.message.channel, action.message.id) == ("C0CHAN", "1700000400.000500")
    sort = fixture("block_actions_sort")
    sort["actions"][0]["selected_option"]["value"] = "sort.tok"
    chosen = to_action(sort)
    assert chosen is not None and chosen.kind == "sort" and chosen.token == "sort.tok"


def test_block_actions_top_level_message_and_foreign_actions() -> None:
    body = fixture("block_actions_next")
    del body["container"]["thread_ts"]
    del body["message"]["thread_ts"]
    action = to_action(body)
    assert action is not None and action.thread.thread == "1700000400.000500"
    body["actions"][0]["action_id"] = "someone_else"
    assert to_action(body) is None
    body["actions"][0]["action_id"] = "datathread:bogus:1"
    assert to_action(body) is None
