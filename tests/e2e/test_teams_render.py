"""Teams rendering, limits and the pieces around it: cards under budget, Markdown Teams renders,
streams that hit the 2-minute cap, the rate limiter, the app package and the settings."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botbuilder.schema import ChannelAccount, ConversationAccount, ConversationReference

from adapters.teams.config import TeamsSettings
from adapters.teams.package import write_package
from adapters.teams.sender import RateLimiter, Sender
from adapters.teams.transport import TeamsTransport
from adapters.teams.wiring import build_adapter
from bot.config import ConfigError
from bot.intents import ColumnOrder, Download, DrawChart, ShowPage
from bot.live_turn import LiveTurn
from bot.reply import Button, Buttons, CodeBlock, Markdown, Notice, Option, Reply, Select, Status, Table
from renderers.teams import CARD_BUDGET, card, message_text, split_message, teams_markdown
from tests.fakes.bot_connector import FakeBotConnector

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses


def wide_page(columns: int, rows: int) -> Reply:
    names = tuple(f"column_with_a_long_name_{i}" for i in range(columns))
    cells = tuple(tuple(f"value {r}-{c} " + "x" * 40 for c in range(columns)) for r in range(rows))
    token = "t" * 280
    sort = Select("Sort", tuple(Option(f"{n} ↑", ShowPage("d", 1, ColumnOrder(i)), token) for i, n in enumerate(names)))
    chart = Select("Chart", tuple(Option(f"line: {n}", DrawChart("d", "line", 0, i), token)
                                  for i, n in enumerate(names)))
    buttons = Buttons((Button("◀ Prev", ShowPage("d", 1), token), Button("Next ▶", ShowPage("d", 3), token), sort,
                       chart, Button("Download CSV", Download("d", "csv"), token)))
    return Reply((Markdown(f"*wide* · rows 21–{20 + rows} of 900"), Table(names, cells, (False,) * columns),
                  buttons), "wide")


def test_a_wide_dataset_card_stays_under_budget_and_says_what_it_left_out() -> None:
    built = card(wide_page(40, 50))
    size = len(json.dumps(built, ensure_ascii=False).encode())
    assert size <= CARD_BUDGET
    table = next(b for b in built["body"] if b["type"] == "Table")
    assert len(table["columns"]) <= 8 and table["fallback"]["type"] == "TextBlock"
    note = " ".join(b.get("text", "") for b in built["body"])
    assert "of 40 columns" in note and "Download has everything" in note
    titles = [a["title"] for a in built["actions"]]
    assert titles == ["◀ Prev", "Next ▶", "Sort", "Chart", "Download CSV"]
    assert built["actions"][1]["data"] == {"datathread": "page", "token": "t" * 280}
    assert built["fallbackText"]


def test_a_small_card_keeps_every_row_and_column() -> None:
    built = card(wide_page(3, 20))
    table = next(b for b in built["body"] if b["type"] == "Table")
    assert len(table["rows"]) == 21 and len(table["columns"]) == 3
    assert "Showing" not in json.dumps(built)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("## Result", "**Result**"),
        ("a < b and `x<y`", "a &lt; b and `x<y`"),
        ("see ![chart](http://x/c.png)", "see [chart](http://x/c.png)"),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "```\n| a | b |\n| 1 | 2 |\n```"),
        ("```\n# not a heading <b>\n```", "```\n# not a heading <b>\n```"),
        ("**bold** and _it_", "**bold** and _it_"),
    ],
)
def test_markdown_becomes_what_teams_renders(source: str, expected: str) -> None:
    assert teams_markdown(source) == expected


def test_message_text_orders_status_blocks_and_notices() -> None:
    reply = Reply((Status("Done in 2.0 s", "done"), Markdown("Answer"), CodeBlock("print(1)", "code", "python"),
                   Notice("careful", "warning")))
    assert message_text(reply) == "✅ _Done in 2.0 s_\n\nAnswer\n\n```python\nprint(1)\n```\n\n⚠️ careful"
    assert message_text(reply, include_status=False).startswith("Answer")


def test_long_text_is_split_under_the_message_limit_keeping_code_fenced() -> None:
    text = "intro\n```\n" + "\n".join(f"line {i} " + "é" * 50 for i in range(4000)) + "\n```\nend"
    pieces = split_message(text, 80_000)
    assert len(pieces) > 1 and all(len(p.encode()) <= 80_000 for p in pieces)
    # Pieces are as large as the limit allows (a message per 80 KB, not per 20,000 characters).
    assert all(len(p.encode()) > 75_000 for p in pieces[:-1])
    assert all(p.count("```") % 2 == 0 for p in pieces)
    assert pieces[-1].endswith("end")


async def test_a_stream_near_the_two_minute_cap_is_closed_and_continues_by_editing() -> None:
    connector = await FakeBotConnector().start()
    try:
        adapter, _ = build_adapter(TeamsSettings.from_env({"DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED": "1"}))  # type: ignore[arg-type]
        reference = ConversationReference(
            activity_id="1", bot=ChannelAccount(id="28:bot"), user=ChannelAccount(id="29:ada"),
            conversation=ConversationAccount(id="a:chat", conversation_type="personal"),
            channel_id="msteams", service_url=connector.url)
        # A 0.3 s lifetime stands in for two minutes; edits every 0.05 s keep the test short.
        transport = TeamsTransport(Sender(adapter, ""), reference, personal=True, interval=0.05, lifetime=0.3)
        states = [Reply((Status("Working…", "working"),))]
        live: LiveTurn[Any] = LiveTurn(transport, lambda: states[-1])
        await live.start()
        states.append(Reply((Status("Working…", "working"), Markdown("First part."))))
        await live.changed()
        await connector.wait_for(lambda calls: any(c.body.get("type") == "message" for c in calls), 5.0)
        states.append(Reply((Status("Working…", "working"), Markdown("First part. Second part."))))
        await live.changed()
        states.append(Reply((Status("Done in 130 s", "done"), Markdown("First part. Second part. End."))))
        await live.finish()
        kinds = [(c.method, c.body["type"], [e.get("streamType") for e in c.body.get("entities") or ()
                                                   if e.get("type") == "streaminfo"])
                 for c in connector.calls]
        assert kinds[:3] == [("POST", "typing", ["informative"]), ("POST", "typing", ["streaming"]),
                             ("POST", "message", ["final"])]
        assert kinds[3][0] == "PUT" and connector.calls[3].activity_id == connector.calls[2].returned_id
        assert "End." in connector.calls[-1].body["text"] and "✅" in connector.calls[-1].body["text"]
        assert all("Authorization" not in c.headers for c in connector.calls)  # local mode sends no token
    finally:
        await connector.close()


async def test_the_rate_limiter_keeps_a_conversation_under_its_window() -> None:
    limiter = RateLimiter(((0.5, 3),))
    started = time.monotonic()
    for _ in range(4):
        async with limiter.slot("19:chat"):
            pass
    async with limiter.slot("19:other"):  # other conversations are not held up
        pass
    assert 0.45 <= time.monotonic() - started < 1.0


def test_the_package_has_the_manifest_and_icons_at_its_root(tmp_path: Path) -> None:
    app_id = "1B2C3D4E-0000-4000-8000-00000000B07A"
    out = write_package(app_id, tmp_path)
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["id"] == app_id.lower() and manifest["bots"][0]["botId"] == app_id.lower()
    assert set(manifest["bots"][0]["scopes"]) == {"personal", "team", "groupChat"}
    assert manifest["bots"][0]["supportsFiles"] is True
    with pytest.raises(ValueError):
        write_package("not-a-guid", tmp_path)


def test_settings_need_credentials_or_the_explicit_local_opt_in() -> None:
    assert TeamsSettings.from_env({}) is None
    local = TeamsSettings.from_env({"DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED": "1"})
    assert local is not None and not local.authenticated
    real = TeamsSettings.from_env({"MICROSOFT_APP_ID": "x", "MICROSOFT_APP_TENANT_ID": "t",
                                   "MICROSOFT_APP_PASSWORD": "s3cret-app-password"})
    assert real is not None and "s3cret-app-password" not in repr(real)
    with pytest.raises(ConfigError, match="SingleTenant"):
        TeamsSettings.from_env({"MICROSOFT_APP_ID": "x", "MICROSOFT_APP_TYPE": "MultiTenant",
                                "MICROSOFT_APP_TENANT_ID": "t", "MICROSOFT_APP_PASSWORD": "p"})
    with pytest.raises(ConfigError, match="TENANT"):
        TeamsSettings.from_env({"MICROSOFT_APP_ID": "x", "MICROSOFT_APP_PASSWORD": "p"})
