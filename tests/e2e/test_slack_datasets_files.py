"""Datasets paged with buttons, tampered buttons, files in and out, through the real Slack adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.fakes.scripted_agent import ScriptedAgent, Step, WriteFile
from tests.fakes.slack_api import FakeSlack, Posted
from tests.slack_harness import SlackBot, mention, message, until

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses

CHANNEL = "C0CHAN"
ROWS = 45
CSV = ("id,name,amount\n" + "".join(f"{i},name{i},{i * 1.5}\n" for i in range(ROWS))).encode()
SEEN: dict[str, bytes] = {}


def script(turn: Turn) -> list[Step]:
    if turn.attachments:
        for a in turn.attachments:
            SEEN[a.name] = a.path.read_bytes()
        return [ev.FinalText("thanks for " + ", ".join(a.name for a in turn.attachments))]
    if "table" in turn.text:
        return [ev.Rationale("Making a table. "), WriteFile("sales.csv", CSV), ev.FinalText("Here it is.")]
    return [ev.FinalText("ok")]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    SEEN.clear()
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


def dataset_message(fake: FakeSlack, thread_ts: str) -> Posted | None:
    for m in fake.thread(CHANNEL, thread_ts):
        if any(b["type"] in ("table", "data_table") for b in m.blocks):
            return m
    return None


def table_rows(m: Posted) -> list[tuple[str, ...]]:
    (table,) = [b for b in m.blocks if b["type"] in ("table", "data_table")]
    return [tuple(c["text"] for c in row) for row in table["rows"][1:]]


def element(m: Posted, label: str) -> dict[str, Any] | None:
    for b in m.blocks:
        for e in b.get("elements", ()) if b["type"] == "actions" else ():
            text = (e.get("text") or e.get("placeholder") or {}).get("text", "")
            if label in text:
                return e
    return None


def click_of(e: dict[str, Any], option: int | None = None) -> dict[str, Any]:
    if option is None:
        return {"type": "button", "action_id": e["action_id"], "block_id": "b", "value": e["value"]}
    return {"type": "static_select", "action_id": e["action_id"], "block_id": "b",
            "selected_option": e["options"][option]}


async def table_thread(bot: SlackBot, fake: FakeSlack, ts: str) -> Posted:
    await bot.send(mention("make a table", ts), f"Ev{ts}")
    await until(lambda: dataset_message(fake, ts) is not None, what="dataset message")
    m = dataset_message(fake, ts)
    assert m is not None
    return m


async def test_file_out_and_dataset_paged_to_the_last_row(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000500.000100"
    m = await table_thread(bot, fake, ts)
    await until(lambda: len(fake.shared(CHANNEL)) == 1, what="upload")
    (shared,) = fake.shared(CHANNEL)
    assert shared.data == CSV and shared.name == "sales.csv" and shared.thread_ts == ts

    seen = table_rows(m)
    assert "rows 1–20 of 45" in str(m.blocks)
    assert element(m, "Prev") is None
    for _ in range(10):  # loop guard
        nxt = element(m, "Next")
        if nxt is None:
            break
        before = m.updates
        assert await bot.click(click_of(nxt), user="UALICE", channel=CHANNEL, message_ts=m.ts, thread_ts=ts) == 200
        await until(partial(lambda m, b: m.updates > b, m, before), what="page update")
        seen += table_rows(m)
    assert [int(r[0]) for r in seen] == list(range(ROWS))
    assert element(m, "Prev") is not None and "rows 41–45 of 45" in str(m.blocks)
    assert len(fake.thread(CHANNEL, ts)) == 2  # the turn and the dataset message: paging never posts
    ids = [b["block_id"] for b in m.blocks]
    assert len(ids) == len(set(ids))

    sort = element(m, "Sort")
    assert sort is not None
    desc = next(i for i, o in enumerate(sort["options"]) if o["text"]["text"] == "amount ↓")
    before = m.updates
    await bot.click(click_of(sort, desc), user="UALICE", channel=CHANNEL, message_ts=m.ts, thread_ts=ts)
    await until(lambda: m.updates > before, what="sorted page")
    assert table_rows(m)[0][0] == str(ROWS - 1)


async def test_paging_a_dataset_whose_message_was_deleted_posts_a_fresh_page(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000550.000100"
    m = await table_thread(bot, fake, ts)
    nxt = element(m, "Next")
    assert nxt is not None
    del fake.messages[(m.channel, m.ts)]  # someone deleted the dataset message
    assert await bot.click(click_of(nxt), user="UALICE", channel=CHANNEL, message_ts=m.ts, thread_ts=ts) == 200
    await until(lambda: (d := dataset_message(fake, ts)) is not None and "rows 21–40 of 45" in str(d.blocks),
                what="a fresh page")
    fresh = dataset_message(fake, ts)
    assert fresh is not None and fresh.ts != m.ts
    assert [int(r[0]) for r in table_rows(fresh)] == list(range(20, 40))


def test_the_bot_token_is_not_in_the_context_repr(bot: SlackBot, fake: FakeSlack) -> None:
    assert bot.adapter.ctx.token == fake.token
    assert fake.token not in repr(bot.adapter.ctx)


async def test_tampered_foreign_and_other_user_clicks_reveal_nothing(bot: SlackBot, fake: FakeSlack) -> None:
    a_ts, b_ts = "1700000600.000100", "1700000601.000100"
    a = await table_thread(bot, fake, a_ts)
    b = await table_thread(bot, fake, b_ts)
    nxt = element(a, "Next")
    assert nxt is not None
    tampered = {**click_of(nxt), "value": nxt["value"][:-3] + ("AAA" if not nxt["value"].endswith("AAA") else "BBB")}
    clicks = [
        (tampered, "UALICE", a, a_ts),
        (click_of(nxt), "UBOB", a, a_ts),  # another user
        (click_of(nxt), "UALICE", b, b_ts),  # a value replayed in another thread
        ({**click_of(nxt), "value": "garbage"}, "UALICE", a, a_ts),
    ]
    for action, user, msg, ts in clicks:
        await bot.click(action, user=user, channel=CHANNEL, message_ts=msg.ts, thread_ts=ts)
    # A refused click ends with its notice and touches nothing after it: four notices mean all
    # four clicks have run to the end.
    await until(lambda: len(fake.ephemeral) == 4, what="4 notices")
    assert a.updates == 0 and b.updates == 0
    assert [e["user"] for e in fake.ephemeral] == ["UALICE", "UBOB", "UALICE", "UALICE"]
    for e in fake.ephemeral:
        assert "table" not in str(e["blocks"]) and "name2" not in str(e["blocks"])


async def test_files_button_lists_the_workspace_to_the_owner(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000700.000100"
    await table_thread(bot, fake, ts)
    await until(lambda: any(element(m, "Files") for m in fake.thread(CHANNEL, ts)), what="files button")
    turn = next(m for m in fake.thread(CHANNEL, ts) if element(m, "Files"))
    files = element(turn, "Files")
    assert files is not None
    await bot.click(click_of(files), user="UALICE", channel=CHANNEL, message_ts=turn.ts, thread_ts=ts)
    await until(lambda: len(fake.ephemeral) == 1, what="listing")
    assert "sales.csv" in str(fake.ephemeral[0]["blocks"]) and fake.ephemeral[0]["user"] == "UALICE"


async def test_attached_file_reaches_the_workspace_byte_identical(bot: SlackBot, fake: FakeSlack) -> None:
    data = bytes(range(256)) * 40 + "é,ü\n".encode()
    url = fake.add_user_file("input.csv", data)
    files = [{"id": "F1", "name": "input.csv", "mimetype": "text/csv", "size": len(data),
              "url_private_download": url}]
    ts = "1700000800.000100"
    await bot.send(mention("look", ts, kind="message", subtype="file_share", files=files, channel_type="channel"),
                   "EvFile")
    await until(lambda: "input.csv" in SEEN, what="attachment")
    assert SEEN["input.csv"] == data


async def test_attachment_problems_are_explained(bot: SlackBot, fake: FakeSlack) -> None:
    no_access = fake.add_user_file("secret.csv", b"x").replace("/files-pri/F", "/files-pri/X")
    files = [{"id": "F2", "name": "secret.csv", "url_private_download": no_access},
             {"id": "F3", "name": "evil.csv", "url_private_download": "https://evil.example.com/f.csv"}]
    ts = "1700000900.000100"
    downloads = len(fake.named("download"))
    await bot.send(message("<@UBOT> read these", ts, subtype="file_share", files=files), "EvFile2")
    await until(lambda: any("can't access" in fake.shown(m) for m in fake.thread(CHANNEL, ts)), what="notice")
    shown = "\n".join(fake.shown(m) for m in fake.thread(CHANNEL, ts))
    assert "does not point to Slack" in shown
    assert len(fake.named("download")) == downloads + 1  # the bot token never went to evil.example.com


async def test_attachment_over_the_limit_is_refused(fake: FakeSlack, tmp_path: Path) -> None:
    bot = await SlackBot(fake, tmp_path, ScriptedAgent(script), DATATHREAD_MAX_UPLOAD_MB="0.001").start()
    try:
        url = fake.add_user_file("big.csv", b"y" * 5000)
        ts = "1700001000.000100"
        files = [{"id": "F4", "name": "big.csv", "url_private_download": url}]  # size unknown: stream and stop
        await bot.send(message("<@UBOT> big", ts, subtype="file_share", files=files), "EvBig")
        await until(lambda: any("larger than" in fake.shown(m) for m in fake.thread(CHANNEL, ts)), what="notice")
        assert "big.csv" not in SEEN
    finally:
        await bot.stop()


async def test_upload_that_timed_out_after_sharing_is_not_repeated(fake: FakeSlack, tmp_path: Path) -> None:
    bot = await SlackBot(fake, tmp_path, ScriptedAgent(script), SLACK_HTTP_TIMEOUT_SECONDS="1").start()
    try:
        fake.fail.complete_delay = 1.6
        ts = "1700001100.000100"
        await table_thread(bot, fake, ts)
        await until(lambda: any(not m.streaming and m.blocks and "Files" in str(m.blocks)
                                for m in fake.thread(CHANNEL, ts)), what="turn end")
        assert len(fake.shared(CHANNEL)) == 1
        assert len(fake.named("files.completeUploadExternal")) == 1 and fake.named("files.list")
    finally:
        await bot.stop()


async def test_file_picked_from_the_ephemeral_listing_lands_in_the_thread(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700001200.000100"
    await table_thread(bot, fake, ts)
    await until(lambda: any(element(m, "Files") for m in fake.thread(CHANNEL, ts)), what="turn end")
    turn = next(m for m in fake.thread(CHANNEL, ts) if element(m, "Files"))
    files = element(turn, "Files")
    assert files is not None
    await bot.click(click_of(files), user="UALICE", channel=CHANNEL, message_ts=turn.ts, thread_ts=ts)
    await until(lambda: len(fake.ephemeral) == 1, what="listing")
    listing = fake.ephemeral[0]
    select = next(e for b in listing["blocks"] if b["type"] == "actions" for e in b["elements"])
    pick = next(i for i, o in enumerate(select["options"]) if o["text"]["text"] == "sales.csv")
    # Slack sends a click on an ephemeral message without ``message``; the container has thread_ts.
    assert await bot.click(click_of(select, pick), user="UALICE", channel=CHANNEL, message_ts="1700001299.000001",
                           thread_ts=ts, ephemeral=True) == 200
    await until(lambda: len(fake.shared(CHANNEL)) == 2, what="file posted from the listing")
    again = fake.shared(CHANNEL)[-1]
    assert again.thread_ts == ts and again.data == CSV
    assert len(fake.ephemeral) == 1  # no error notice


async def test_bot_token_goes_only_to_the_api_host_never_to_the_upload_url(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700001300.000100"
    await table_thread(bot, fake, ts)
    await until(lambda: len(fake.shared(CHANNEL)) == 1, what="upload")
    uploads = fake.named("upload")
    assert uploads and all("Authorization" not in c.headers for c in uploads)
    assert all(fake.token not in str(c.headers) for c in uploads)
    api_calls = [c for c in fake.calls if c.method not in ("upload", "download")]
    assert all(c.headers.get("Host", "").startswith("127.0.0.1") for c in api_calls)


async def test_redirect_of_a_user_file_to_another_host_is_not_followed(bot: SlackBot, fake: FakeSlack) -> None:
    from aiohttp import web

    from tests.fakes.server import serve

    seen: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(body=b"stolen", content_type="text/csv")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(other.url.replace("127.0.0.1", "localhost") + "/f.csv")

    app = web.Application()
    app.router.add_get("/f.csv", elsewhere)
    other = await serve(app)
    fake_app = web.Application()
    fake_app.router.add_get("/files-pri/R1/r.csv", redirect)
    hop = await serve(fake_app)
    try:
        # the redirecting server stands in for SLACK_API_URL's host (same host, other port)
        files = [{"id": "F5", "name": "r.csv", "url_private_download": hop.url + "/files-pri/R1/r.csv"}]
        ts = "1700001400.000100"
        await bot.send(message("<@UBOT> redirect", ts, subtype="file_share", files=files), "EvRedir")
        await until(lambda: any("does not point to Slack" in fake.shown(m) for m in fake.thread(CHANNEL, ts)),
                    what="notice")
        assert not seen and "r.csv" not in SEEN
    finally:
        await hop.close()
        await other.close()
