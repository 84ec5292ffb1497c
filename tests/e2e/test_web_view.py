"""The web view over real HTTP: sessions, the access check on every endpoint, paths that try to
escape the workspace, hardening headers, downloads with ranges and the grid's rows against pandas."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pandas as pd
import pytest

from adapters.web.grid_routes import BLOCK, EXPIRED
from adapters.web.security import secure_cookies
from bot.conversation import Conversation
from bot.datasets.model import DatasetMeta
from bot.messages import ThreadKey
from bot.workspace import Workspace
from tests.fakes.scripted_agent import ScriptedAgent
from tests.web_harness import WebBot

pytestmark = pytest.mark.e2e  # starts an HTTP server

ALICE_THREAD = ThreadKey("slack", "T1", "C1", "100.1")
BOB_THREAD = ThreadKey("slack", "T1", "C1", "200.2")
EVIL = '<script>alert(1)</script><img src=x onerror=alert(2)>'


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[WebBot]:
    b = await WebBot(tmp_path / "home", ScriptedAgent(lambda turn: [])).start()
    yield b
    await b.stop()


async def _files(bot: WebBot, conversation: Conversation, files: dict[str, bytes]) -> Workspace:
    workspace = Workspace(conversation.workspace).ensure()
    for name, data in files.items():
        path = workspace.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return workspace


async def _frame_dataset(bot: WebBot, conversation: Conversation, rows: int = 1234) -> tuple[DatasetMeta, pd.DataFrame]:
    frame = pd.DataFrame({"id": range(rows), "score": [(i * 7919) % 1000 / 10 for i in range(rows)],
                          "label": [f"item {i % 17}" for i in range(rows)]})
    meta = await bot.engine.datasets.register_frame(frame, name="scores", thread=conversation.key,
                                                    owner=conversation.owner)
    return meta, frame


async def test_a_link_becomes_an_httponly_strict_cookie_scoped_to_its_conversation(bot: WebBot) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    fetched, cookie = await bot.exchange(await bot.link(alice))
    assert fetched.status == 200 and fetched.json() == {"next": f"/w/{alice.id}/"}
    jar = SimpleCookie()
    jar.load(fetched.headers["Set-Cookie"])
    morsel = next(iter(jar.values()))
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == f"/w/{alice.id}/"
    assert not morsel["secure"]  # served on this machine over plain HTTP
    assert secure_cookies("https://dt.example.com") and not secure_cookies("http://localhost:3000")
    assert secure_cookies("http://dt.example.com")
    page = await bot.get(f"/w/{alice.id}/", cookie)
    assert page.status == 200 and "<script src=\"/w/static/workspace.js\"" in page.text


@pytest.mark.parametrize("kind", ["tampered", "garbage", "empty", "session-as-link"])
async def test_a_bad_link_gets_403_and_reveals_nothing(bot: WebBot, kind: str) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    link = await bot.link(alice)
    token = link.split("#", 1)[1]
    bad = {"tampered": token[:10] + ("x" if token[10] != "x" else "y") + token[11:], "garbage": "abc.def",
           "empty": "", "session-as-link": await bot.session(alice)}[kind]
    fetched, cookie = await bot.exchange(f"{bot.url}/w/open#{bad}")
    assert fetched.status == 403 and cookie is None
    assert alice.id not in fetched.text and "UALICE" not in fetched.text
    denied = await bot.get("/w/denied")
    assert denied.status == 403 and "does not work" in denied.text and alice.id not in denied.text


async def test_every_endpoint_refuses_a_session_of_another_conversation(bot: WebBot) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    bob = await bot.conversation(BOB_THREAD, "UBOB")
    await _files(bot, bob, {"secret.csv": b"a,b\n1,2\n"})
    bobs, _ = await _frame_dataset(bot, bob)
    alices_cookie = await bot.session(alice)
    paths = [f"/w/{bob.id}/", f"/w/{bob.id}/api/files", f"/w/{bob.id}/api/events", f"/w/{bob.id}/files/secret.csv",
             f"/w/{bob.id}/d/{bobs.id}/", f"/w/{bob.id}/api/d/{bobs.id}", f"/w/{bob.id}/api/d/{bobs.id}/rows?block=0",
             f"/w/{bob.id}/api/d/{bobs.id}/chart.png?kind=hist&x=1",
             f"/w/{bob.id}/api/d/{bobs.id}/export.csv"]
    for path in paths:
        for cookie in (alices_cookie, None, "forged.cookie"):
            fetched = await bot.get(path, cookie)
            assert fetched.status == 403, (path, cookie)
            assert b"secret" not in fetched.body and bob.id.encode() not in fetched.body
    # Alice's own session naming Bob's dataset under her own conversation: the same as an unknown id.
    for path in (f"/w/{alice.id}/api/d/{bobs.id}", f"/w/{alice.id}/api/d/{bobs.id}/rows?block=0",
                 f"/w/{alice.id}/api/d/{bobs.id}/export.csv"):
        fetched = await bot.get(path, alices_cookie)
        assert fetched.status == 404 and b"scores" not in fetched.body
    unknown = await bot.get(f"/w/{alice.id}/api/d/NoSuchDataset00000000", alices_cookie)
    foreign = await bot.get(f"/w/{alice.id}/api/d/{bobs.id}", alices_cookie)
    assert unknown.status == 404 and unknown.body == foreign.body


async def test_revoke_stops_earlier_sessions_on_their_next_request(bot: WebBot) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    link = await bot.link(alice)
    _, cookie = await bot.exchange(link)
    assert (await bot.get(f"/w/{alice.id}/api/files", cookie)).status == 200
    await bot.engine.web.revoke(alice)
    assert (await bot.get(f"/w/{alice.id}/api/files", cookie)).status == 403
    assert (await bot.exchange(link))[0].status == 403


@pytest.mark.parametrize("path", [
    "../../secret.txt", "..%2F..%2Fsecret.txt", "%2e%2e/%2e%2e/secret.txt", "sub/..%2f..%2f..%2fsecret.txt",
    "%2Fetc%2Fpasswd", "//etc/passwd", "out-link", "dir-link/secret.txt", ".datathread/x", "sub%5C..%5C..%5Csecret.txt",
    "%00secret.txt",
])
async def test_paths_never_resolve_outside_the_workspace(bot: WebBot, path: str, tmp_path: Path) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    workspace = await _files(bot, alice, {"sub/ok.txt": b"fine", ".datathread/x": b"private"})
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP SECRET")
    (workspace.root.parent / "secret.txt").write_bytes(b"TOP SECRET")
    os.symlink(secret, workspace.root / "out-link")
    os.symlink(tmp_path, workspace.root / "dir-link")
    cookie = await bot.session(alice)
    fetched = await bot.get(f"/w/{alice.id}/files/{path}", cookie)
    assert fetched.status in (403, 404), fetched.status
    assert b"TOP SECRET" not in fetched.body and b"private" not in fetched.body and b"root:" not in fetched.body
    assert (await bot.get(f"/w/{alice.id}/files/sub/ok.txt", cookie)).body == b"fine"


async def test_downloads_are_streamed_attachments_with_ranges_and_html_or_svg_never_render(bot: WebBot) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    data = os.urandom(300_000)
    await _files(bot, alice, {"big.bin": data, "page.html": EVIL.encode(), "pic.svg": b"<svg onload='alert(1)'/>",
                              "chart.png": b"\x89PNG\r\n\x1a\n" + b"0" * 100, f"{EVIL}.txt": b"x"})
    cookie = await bot.session(alice)
    whole = await bot.get(f"/w/{alice.id}/files/big.bin", cookie)
    assert whole.body == data and whole.headers["Content-Disposition"].startswith("attachment;")
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = await bot.get(f"/w/{alice.id}/files/big.bin", cookie, headers={"Range": "bytes=1000-1999"})
    assert part.status == 206 and part.body == data[1000:2000]
    for name, kind in (("page.html", "text/html"), ("pic.svg", "image/svg+xml")):
        for query in ("", "?inline=1"):
            fetched = await bot.get(f"/w/{alice.id}/files/{name}{query}", cookie)
            assert fetched.headers["Content-Type"].startswith(kind)
            assert fetched.headers["Content-Disposition"].startswith("attachment;")
            assert fetched.headers["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in fetched.headers["Content-Security-Policy"]
    preview = await bot.get(f"/w/{alice.id}/files/chart.png?inline=1", cookie)
    assert preview.headers["Content-Type"] == "image/png" and preview.headers["Content-Disposition"] == "inline"
    listing = await bot.get(f"/w/{alice.id}/api/files", cookie)
    names = {f["name"]: f for f in listing.json()["files"]}  # type: ignore[index]
    assert names[f"{EVIL}.txt"]["size"] == 1 and names["big.bin"]["size_text"] == "300.0 KB"
    assert names["chart.png"]["image"] and not names["pic.svg"]["image"]


async def test_pages_carry_a_strict_policy_and_hold_no_data(bot: WebBot) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    await _files(bot, alice, {f"{EVIL}.csv": b"a\n1\n"})
    cookie = await bot.session(alice)
    for path in (f"/w/{alice.id}/", "/w/open", "/w/denied", "/w/static/grid.js"):
        fetched = await bot.get(path, cookie)
        policy = fetched.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert fetched.headers["X-Content-Type-Options"] == "nosniff"
        assert b"<script>alert" not in fetched.body and b"<script>\n" not in fetched.body


async def test_grid_blocks_sorted_on_the_server_match_pandas_and_export_keeps_the_order(bot: WebBot) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    meta, frame = await _frame_dataset(bot, alice)
    cookie = await bot.session(alice)
    info = (await bot.get(f"/w/{alice.id}/api/d/{meta.id}", cookie)).json()
    assert info["rows"] == 1234 and [c["type"] for c in info["columns"]] == ["int", "float", "str"]  # type: ignore[index]
    last_block = (1234 - 1) // BLOCK
    rows = (await bot.get(f"/w/{alice.id}/api/d/{meta.id}/rows?block={last_block}&sort=1&desc=1", cookie)).json()
    expected = frame.sort_values("score", ascending=False, kind="stable")
    assert rows["start"] == last_block * BLOCK  # type: ignore[index]
    assert [float(r[1]) for r in rows["rows"]] == list(expected["score"][last_block * BLOCK:])  # type: ignore[index]
    out_of_range = await bot.get(f"/w/{alice.id}/api/d/{meta.id}/rows?block={last_block + 1}", cookie)
    assert out_of_range.status == 400
    exported = await bot.get(f"/w/{alice.id}/api/d/{meta.id}/export.csv?sort=1&desc=1", cookie)
    assert exported.headers["Content-Disposition"].startswith("attachment;")
    assert list(pd.read_csv(io.BytesIO(exported.body))["score"]) == list(expected["score"])
    parquet = await bot.get(f"/w/{alice.id}/api/d/{meta.id}/export.parquet", cookie)
    assert pd.read_parquet(io.BytesIO(parquet.body)).equals(frame)
    chart = await bot.get(f"/w/{alice.id}/api/d/{meta.id}/chart.png?kind=hist&x=1", cookie)
    assert chart.status == 200 and chart.body.startswith(b"\x89PNG")


async def test_an_expired_dataset_says_expired_run_it_again(bot: WebBot) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    meta, _ = await _frame_dataset(bot, alice, rows=10)
    cookie = await bot.session(alice)
    await bot.engine.datasets.sweep(now=datetime.now(UTC) + timedelta(days=2))
    fetched = await bot.get(f"/w/{alice.id}/api/d/{meta.id}", cookie)
    assert fetched.status == 410 and fetched.json() == {"error": EXPIRED, "expired": True}


async def test_a_tabular_file_opens_in_the_grid_and_other_files_do_not(bot: WebBot) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    await _files(bot, alice, {"sub/sales.csv": b"region,amount\nnorth,1\nsouth,2\n", "notes.txt": b"hello"})
    cookie = await bot.session(alice)
    opened = await bot.get(f"/w/{alice.id}/api/open-table?path=sub/sales.csv", cookie, method="POST")
    dataset = opened.json()["dataset"]  # type: ignore[index]
    info = (await bot.get(f"/w/{alice.id}/api/d/{dataset}", cookie)).json()
    assert info["rows"] == 2 and [c["name"] for c in info["columns"]] == ["region", "amount"]  # type: ignore[index]
    for path in ("notes.txt", "../sales.csv", "/etc/passwd", ".datathread/x"):
        refused = await bot.get(f"/w/{alice.id}/api/open-table?path={path}", cookie, method="POST")
        assert refused.status == 400 and refused.json() == {"error": "That file cannot be opened as a table."}


async def test_chat_web_prints_a_link_that_opens_the_workspace(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "chat", "--web", "--thread", "webtest",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path, env={**os.environ, "DATATHREAD_HOME": str(tmp_path / "home")})
    assert process.stdout is not None and process.stdin is not None
    try:
        link = None
        async with asyncio.timeout(60):
            while link is None:
                line = (await process.stdout.readline()).decode()
                assert line, "chat ended before printing the link"
                if "workspace in your browser:" in line:
                    link = line.split(": ", 1)[1].strip()
        assert link.startswith("http://localhost:") and "/w/open#" in link
        base, token = link.split("/w/open#")
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/w/session", json={"token": token}) as resp:
                assert resp.status == 200
                cookie = resp.cookies["datathread_session"].value
                page = (await resp.json())["next"]
            async with http.get(base + page + "api/files", headers={"Cookie": f"datathread_session={cookie}"}) as r:
                assert r.status == 200 and (await r.json())["files"] == []
        process.stdin.write(b"exit\n")
        await process.stdin.drain()
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_mounts_the_web_view_beside_the_health_check(tmp_path: Path) -> None:
    from adapters.local_server import serve
    from adapters.server import build_app
    from bot.composition import build_engine
    from bot.config import Settings

    env = {"DATATHREAD_HOME": str(tmp_path / "home")}
    engine = build_engine(Settings.from_env(env), agent=ScriptedAgent(lambda turn: []), env=env)
    server = await serve(await build_app(engine, engine.settings, env), access_log=False)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/w/open") as page:
                assert page.status == 200 and page.headers["X-Content-Type-Options"] == "nosniff"
            async with http.get(server.url + "/healthz") as health:
                assert "Content-Security-Policy" not in health.headers  # the view's rules stay in the view
    finally:
        await server.close()


async def test_an_open_live_page_ends_its_stream_when_the_server_stops(tmp_path: Path) -> None:
    bot = await WebBot(tmp_path / "home", ScriptedAgent(lambda turn: [])).start()
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    cookie = await bot.session(alice)
    async with aiohttp.ClientSession() as http:
        url = f"{bot.url}/w/{alice.id}/api/events"
        async with http.get(url, headers={"Cookie": f"datathread_session={cookie}"}) as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            assert await stream.content.readline() == b"event: listing\n"
            started = time.monotonic()
            await bot.stop()
            assert time.monotonic() - started < 5  # not aiohttp's 60-second wait for handlers
            rest = await asyncio.wait_for(stream.content.read(), 5)  # the stream has ended
            assert b"denied" not in rest


async def test_revoking_ends_an_open_live_page_with_a_denied_event(bot: WebBot) -> None:
    alice = await bot.conversation(ALICE_THREAD, "UALICE")
    cookie = await bot.session(alice)
    async with aiohttp.ClientSession() as http:
        url = f"{bot.url}/w/{alice.id}/api/events"
        async with http.get(url, headers={"Cookie": f"datathread_session={cookie}"}) as stream:
            assert await stream.content.readline() == b"event: listing\n"
            await bot.engine.web.revoke(alice)
            rest = await asyncio.wait_for(stream.content.read(), 5)  # ends by itself after saying why
            assert b"event: denied\n" in rest
