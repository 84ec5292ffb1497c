"""Real-world Teams shapes (issue 11) through the real CloudAdapter against the fake Bot Connector.

Fixtures in ``tests/fixtures/teams/`` are written from the documented activities: channel card
clicks that name their card only in ``channelData.legacy.replyToId`` (or not at all, or ``-1``), a
mention entity without ``text`` whose display name differs from the message's ``<at>`` tag and an
activity without ``conversationType``, and an inline image with only ``content.downloadUrl``.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.fakes.bot_connector import Call, FakeBotConnector
from tests.fakes.scripted_agent import WriteFile
from tests.teams_harness import TeamsHarness, card_recorded, fixture, teams

pytestmark = pytest.mark.e2e  # starts servers

CHAIN = "19:4c1d3a2f9b8e4d7c@thread.tacv2;messageid=1732180811554"
PERSONAL = "a:1Pz8Y2personalchatid-Ada"
ADAPTIVE = "application/vnd.microsoft.card.adaptive"
CSV = ("region,note\n" + "".join(f"region-{i:02d},*x{i}* [l](u)\n" for i in range(1, 46))).encode()


def table_script(turn: Turn) -> list[Any]:
    return [WriteFile("regions.csv", CSV), ev.FinalText("- one\n- two\n\nHere it is.")]


def cards(calls: list[Call]) -> list[tuple[Call, dict[str, Any]]]:
    return [(c, a["content"]) for c in calls for a in c.body.get("attachments") or ()
            if a["contentType"] == ADAPTIVE and any(b.get("type") == "Table" for b in a["content"].get("body", ()))]


def showing(card: dict[str, Any]) -> str:
    return " ".join(b.get("text", "") for b in card["body"] if b.get("type") == "TextBlock")


def next_data(card: dict[str, Any]) -> dict[str, Any]:
    return next(a["data"] for a in card["actions"] if "Next" in a["title"])


async def dataset_card(h: TeamsHarness) -> tuple[Call, dict[str, Any]]:
    await h.post(fixture("channel_new_post_mention"))
    found = await h.until(lambda calls: cards(calls))
    return found[0]  # type: ignore[no-any-return]


def click(card_id: str | None, data: dict[str, Any], n: int, legacy: str | None = None) -> dict[str, Any]:
    activity = fixture("channel_card_submit_legacy_reply_to", id=f"17321835{n:05d}", value=data)
    if legacy is None:
        del activity["channelData"]["legacy"]
    else:
        activity["channelData"]["legacy"]["replyToId"] = legacy
    if card_id is not None:
        activity["replyToId"] = card_id
    return activity


@pytest.mark.parametrize(("reply_to", "legacy"), [(None, "CARD"), (None, None), ("-1", None), ("-1", "-1")],
                         ids=["legacy-only", "none", "minus-one", "both-minus-one"])
async def test_a_channel_click_that_does_not_name_its_card_still_pages_the_card(
        tmp_path: Path, reply_to: str | None, legacy: str | None) -> None:
    async with teams(tmp_path, table_script) as h:
        card_call, card = await dataset_card(h)
        assert "rows 1–20 of 45" in showing(card)
        before = len(h.connector.calls)
        await h.post(click(reply_to, next_data(card), 1, card_call.returned_id if legacy == "CARD" else legacy))
        put = await h.until(lambda calls: [c for c in calls[before:] if c.method == "PUT" and cards([c])])
        assert put[0].activity_id == card_call.returned_id  # updated in place, in the reply chain
        assert "rows 21–40 of 45" in showing(cards(put)[0][1])
        assert put[0].conversation.endswith(card_call.conversation.split(";")[-1])


async def test_after_a_restart_a_click_that_does_not_name_its_card_still_updates_that_card(tmp_path: Path) -> None:
    connector = await FakeBotConnector().start()  # Teams outlives the restart
    try:
        async with teams(tmp_path, table_script, connector=connector) as h:
            card_call, card = await dataset_card(h)
            data = next_data(card)
            await card_recorded(h, click("-1", data, 3), data["token"])
        before = len(connector.calls)
        async with teams(tmp_path, table_script, connector=connector) as h:  # same home: the record is kept
            await h.post(click("-1", data, 3))
            put = await h.until(lambda calls: [c for c in calls[before:] if c.method == "PUT" and cards([c])])
            assert put[0].activity_id == card_call.returned_id  # updated in place, not a new card
            assert "rows 21–40 of 45" in showing(cards(put)[0][1])
            assert not [c for c in connector.calls[before:] if c.method == "POST" and cards([c])]
    finally:
        await connector.close()


async def test_a_click_on_a_card_the_bot_cannot_identify_posts_the_page_in_the_same_chain(tmp_path: Path) -> None:
    async with teams(tmp_path, table_script) as h:
        _, card = await dataset_card(h)
        data = next_data(card)
        await card_recorded(h, click("-1", data, 2), data["token"])
    # A card whose record is gone (sent by a version that kept none, or its record expired).
    with sqlite3.connect(tmp_path / "home" / "state.sqlite3") as db:
        db.execute("DELETE FROM marks WHERE ns = 'card-token'")
    async with teams(tmp_path, table_script) as h:  # same home, a restart: no record names the card
        await h.post(click("-1", data, 2))
        posted = await h.until(lambda calls: [c for c in calls if c.method == "POST" and cards([c])])
        assert "rows 21–40 of 45" in showing(cards(posted)[0][1])
        assert h.to(CHAIN) and posted[0] in h.to(CHAIN)


async def test_a_mention_without_entity_text_and_no_conversation_type_still_parses_next(tmp_path: Path) -> None:
    async with teams(tmp_path, table_script) as h:
        await dataset_card(h)
        before = len(h.connector.calls)
        await h.post(fixture("channel_mention_without_entity_text"))
        paged = await h.until(lambda calls: [c for c in calls[before:] if cards([c])
                                             and "rows 21–40 of 45" in showing(cards([c])[0][1])])
        assert paged[0] in h.to(CHAIN)  # the channel's reply chain, not a "personal" thread
        assert len(h.agent.turns) == 1  # "next" was a command, not a question for the agent


async def test_an_inline_image_with_only_a_download_url_reaches_the_agent(tmp_path: Path) -> None:
    seen: list[tuple[str, bytes]] = []

    def script(turn: Turn) -> list[Any]:
        seen.extend((a.name, a.path.read_bytes()) for a in turn.attachments)
        return [ev.FinalText("got it")]

    async with teams(tmp_path, script) as h:
        h.connector.files["chart"] = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
        image = fixture("personal_inline_image_download_url")
        image["attachments"][0]["content"]["downloadUrl"] = h.connector.file_url("chart")
        await h.post(image)
        await h.until(lambda _: seen)
        assert seen == [("chart.png", h.connector.files["chart"])]


async def test_card_text_renders_as_lines_and_cells_as_typed(tmp_path: Path) -> None:
    async with teams(tmp_path, table_script) as h:
        _, card = await dataset_card(h)
        for block in card["body"]:
            if block.get("type") == "TextBlock":
                assert "```" not in block["text"]
                assert not re.search(r"(?<!\n)\n(?!\n)", block["text"]), block["text"]  # lines apart
        table = next(b for b in card["body"] if b["type"] == "Table")
        cell = table["rows"][1]["cells"][1]["items"][0]
        assert cell["type"] == "RichTextBlock" and cell["inlines"][0]["text"] == "*x1* [l](u)"
