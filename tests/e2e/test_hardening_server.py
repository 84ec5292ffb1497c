"""The server edge under hostile or unlucky traffic: request bodies, signatures, Slack being down,
cold-start bursts and where the bot token may go.

Real bolt app and real aiohttp servers against the local Slack fake; the agent is scripted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.local_server import free_port
from adapters.server import build_app, drain
from adapters.slack.wiring import PATH, SlackAdapter, SlackSettings
from bot import events as ev
from bot.composition import build_engine
from bot.config import Settings
from bot.conversation import Turn
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, Step
from tests.fakes.slack_api import FakeSlack, event_body, signed_headers
from tests.slack_harness import SIGNING_SECRET, SlackBot, mention, until

pytestmark = pytest.mark.e2e

CHANNEL = "C0CHAN"
#: Appears in every hostile body: it must never reach the log.
MARKER = "BODY-MARKER-7f3a"


def script(turn: Turn) -> list[Step]:
    if "slow" in turn.text:
        return [ev.Rationale("Thinking slowly. "), Sleep(30), ev.FinalText("never")]
    return [ev.FinalText(f"answer to {turn.text}")]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


async def post_raw(url: str, body: bytes | Any, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


# ---- request bodies ------------------------------------------------------------------------------

@pytest.fixture
async def served(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[TestServer]:
    """The whole ``datathread serve`` app (``build_app``: Slack and Teams) on 127.0.0.1."""
    env = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
           "DATATHREAD_HOME": str(tmp_path), "DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED": "1"}
    settings = Settings.from_env(env)
    app = await build_app(build_engine(settings, agent=ScriptedAgent(script), env=env), settings, env)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.parametrize("path", [PATH, "/api/messages"])
async def test_a_body_over_one_megabyte_is_refused_with_413_signed_or_not(
        served: TestServer, caplog: pytest.LogCaptureFixture, path: str) -> None:
    caplog.set_level(logging.DEBUG)
    url = str(served.make_url(path))
    big = json.dumps({"type": "message", "pad": MARKER * (8 * 1024 * 1024 // len(MARKER))})
    unsigned = await post_raw(url, big.encode(), {"Content-Type": "application/json"})
    signed = await post_raw(url, big.encode(),
                            {"Content-Type": "application/json", **signed_headers(SIGNING_SECRET, big)})

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while it streams in
        for _ in range(40):
            yield MARKER.encode() * 16384

    streamed = await post_raw(url, chunks(), {"Content-Type": "application/json"})
    assert (unsigned, signed, streamed) == (413, 413, 413)
    assert MARKER not in logged(caplog)


@pytest.mark.parametrize("body, content_type", [
    (f'{{"type": "event_callback", "x": "{MARKER}"', "application/json"),  # invalid JSON
    (f'["{MARKER}"]', "application/json"),  # an array
    (f'"{MARKER}"', "application/json"),  # a string
    (urlencode({"payload": f"not json {MARKER}"}), "application/x-www-form-urlencoded"),
    (urlencode({"payload": f'["{MARKER}"]'}), "application/x-www-form-urlencoded"),
])
async def test_malformed_bodies_get_401_unsigned_and_400_signed_with_one_log_line_and_no_traceback(
        bot: SlackBot, caplog: pytest.LogCaptureFixture, body: str, content_type: str) -> None:
    caplog.set_level(logging.INFO)
    unsigned = await bot.post(body, content_type, {})
    assert unsigned == 401
    caplog.clear()
    signed = await bot.post(body, content_type, signed_headers(SIGNING_SECRET, body))
    assert signed == 400
    rejections = [r for r in caplog.records if "rejected a Slack request" in r.getMessage()]
    assert len(rejections) == 1
    assert not any(r.exc_info for r in caplog.records)
    assert MARKER not in logged(caplog)


async def test_a_bad_signature_gets_401_and_the_body_is_never_logged(bot: SlackBot,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = json.dumps(event_body(mention(f"hello {MARKER}", "1700009000.000100"), "Ev1"))
    status = await bot.post(body, "application/json", signed_headers("wrong-secret", body))
    assert status == 401
    assert MARKER not in logged(caplog)
    assert not any(r.exc_info for r in caplog.records)


async def test_a_signed_event_still_gets_its_answer(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700009100.000100"
    assert await bot.send(mention("hi", ts), "Ev2") == 200
    await until(lambda: any("answer to hi" in fake.shown(m) for m in fake.thread(CHANNEL, ts)), what="answer")


# ---- Slack identity ------------------------------------------------------------------------------

async def test_a_cold_start_burst_makes_one_auth_test(fake: FakeSlack, tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
           "DATATHREAD_HOME": str(tmp_path)}
    settings = Settings.from_env(env)
    engine = build_engine(settings, agent=ScriptedAgent(script), env=env)
    slack = SlackSettings.from_env(env)
    assert slack is not None
    adapter = SlackAdapter(engine, slack)
    app = web.Application()
    app.router.add_post(PATH, adapter.handle)  # the route alone: no start-up call has learnt who we are
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        url = str(server.make_url(PATH))

        async def send(i: int) -> int:
            body = json.dumps(event_body(mention(f"q{i}", f"17000091{i:02d}.000100"), f"EvB{i}"))
            return await post_raw(url, body.encode(),
                                  {"Content-Type": "application/json", **signed_headers(SIGNING_SECRET, body)})

        statuses = await asyncio.gather(*(send(i) for i in range(40)))
        assert set(statuses) == {200}
        await until(lambda: len(fake.named("chat.stopStream")) + len(fake.named("chat.update")) >= 40, limit=30,
                    what="40 answers")
        assert len(fake.named("auth.test")) == 1
    finally:
        await server.close()
        await adapter.aclose()
        await engine.aclose()




async def test_serve_starts_with_slack_unreachable_reports_it_and_connects_when_slack_is_back(
        fake: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens here yet: Slack is unreachable
    env = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": f"http://127.0.0.1:{port}/api/", "DATATHREAD_HOME": str(tmp_path),
           "DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED": "1"}
    settings = Settings.from_env(env)
    app = await build_app(build_engine(settings, agent=ScriptedAgent(script), env=env), settings, env)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()  # the old start-up raised here
    try:
        async with aiohttp.ClientSession() as http:
            async def health() -> dict[str, Any]:
                async with http.get(server.make_url("/healthz")) as resp:
                    return {"http": resp.status, **await resp.json()}

            seen: dict[str, Any] = {}

            async def poll_until(healthy: bool) -> None:
                for _ in range(300):
                    seen.update(await health())
                    slack = seen.get("detail", {}).get("slack", {})
                    if slack.get("healthy") is healthy and (healthy or "retrying" in slack.get("detail", "")):
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"slack never became healthy={healthy}: {seen}")

            await poll_until(False)
            assert seen["http"] == 200 and seen["status"] == "degraded"
            assert "cannot reach Slack" in seen["detail"]["slack"]["detail"]
            assert any("slack is unhealthy" in r.getMessage() for r in caplog.records)
            # Teams keeps working meanwhile.
            async with http.post(server.make_url("/api/messages"), json={"type": "conversationUpdate"}) as resp:
                assert resp.status in (200, 202)
            # Slack comes back on that address: the retry connects without a restart.
            assert fake._server is not None
            site = web.TCPSite(fake._server.runner, "127.0.0.1", port)
            await site.start()
            await poll_until(True)
            assert seen["status"] == "ok"
    finally:
        await server.close()


def test_the_token_goes_only_to_the_exact_scheme_host_and_port_of_slack_api_url(fake: FakeSlack,
                                                                               tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": "http://127.0.0.1:8123/api/", "DATATHREAD_HOME": str(tmp_path)}
    slack = SlackSettings.from_env(env)
    assert slack is not None
    ctx = SlackAdapter(build_engine(Settings.from_env(env), agent=ScriptedAgent(script), env=env), slack).ctx
    assert ctx.allowed_host("http://127.0.0.1:8123/files-pri/F1/a.csv")
    assert not ctx.allowed_host("http://127.0.0.1:9999/files-pri/F1/a.csv")  # another port
    assert not ctx.allowed_host("http://127.0.0.1/files-pri/F1/a.csv")  # port 80
    assert not ctx.allowed_host("https://127.0.0.1:8123/files-pri/F1/a.csv")  # another scheme
    assert not ctx.allowed_host("ftp://127.0.0.1:8123/a.csv")
    assert ctx.allowed_host("https://files.slack.com/files-pri/T1-F1/a.csv")
    assert not ctx.allowed_host("http://files.slack.com/files-pri/T1-F1/a.csv")


# ---- draining ------------------------------------------------------------------------------------

async def test_draining_answers_new_events_503_reports_draining_and_stops_running_turns(
        fake: FakeSlack, tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
           "DATATHREAD_HOME": str(tmp_path)}
    settings = Settings.from_env(env)
    app = await build_app(build_engine(settings, agent=ScriptedAgent(script), env=env), settings, env)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        url = str(server.make_url(PATH))

        async def send(text: str, ts: str, event_id: str) -> int:
            body = json.dumps(event_body(mention(text, ts), event_id))
            return await post_raw(url, body.encode(),
                                  {"Content-Type": "application/json", **signed_headers(SIGNING_SECRET, body)})

        ts = "1700009200.000100"
        assert await send("slow one", ts, "EvS1") == 200
        await until(lambda: any("Thinking slowly" in fake.shown(m) for m in fake.thread(CHANNEL, ts)),
                    what="the slow turn shown")
        draining = asyncio.ensure_future(drain(app, 10))
        await asyncio.sleep(0)  # drain's first step (draining, not accepting) runs at once
        assert await send("too late", "1700009201.000100", "EvS2") == 503
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/healthz")) as resp:
            assert resp.status == 503 and (await resp.json())["status"] == "draining"
        await asyncio.wait_for(draining, 10)
        assert any("Stopped" in fake.shown(m) for m in fake.thread(CHANNEL, ts))
        assert fake.named("reactions.remove")
    finally:
        await server.close()


@pytest.mark.parametrize("body", ['{"type": "message"', '["message"]', '"message"'])
async def test_malformed_bodies_to_the_teams_endpoint_get_400_not_500(served: TestServer, body: str,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    status = await post_raw(str(served.make_url("/api/messages")), body.encode(), {"Content-Type": "application/json"})
    assert status == 400
    assert not any(r.exc_info for r in caplog.records)
