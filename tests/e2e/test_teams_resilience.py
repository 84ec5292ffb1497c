"""Teams when things go wrong: Bot Framework auth with real signed tokens, streams Teams refuses
or cuts off, retries and rate limits, and redelivered activities after a restart."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount, ConversationReference
from botframework.connector.auth import ChannelValidation
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from adapters.teams.config import TeamsSettings
from adapters.teams.sender import Sender
from adapters.teams.transport import TeamsTransport
from adapters.teams.wiring import build_adapter
from bot import events as ev
from bot.conversation import Turn
from bot.live_turn import LiveTurn
from bot.reply import Markdown, Reply, Status
from tests.engine_log import dropped_duplicates
from tests.fakes.bot_connector import Call, FakeBotConnector
from tests.fakes.scripted_agent import Sleep, WriteFile
from tests.teams_harness import fixture, teams

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses

PERSONAL = "a:1Pz8Y2personalchatid-Ada"
GROUP = "19:meeting_groupchat7d6e5f@thread.v2"
ADAPTIVE = "application/vnd.microsoft.card.adaptive"
APP_ID = "1b2c3d4e-0000-4000-8000-00000000b07a"
CREDENTIALS = {"MICROSOFT_APP_ID": APP_ID, "MICROSOFT_APP_PASSWORD": "not-a-secret",
               "MICROSOFT_APP_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47", "MICROSOFT_APP_TYPE": "SingleTenant"}


def stream_types(call: Call) -> list[str]:
    return stream_types_of(call.body)


def plain_messages(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.method == "POST" and c.body["type"] == "message" and not stream_types(c)]


# ---- authentication ----------------------------------------------------------------------------


@pytest.fixture
def openid() -> Iterator[tuple[Any, str]]:
    """A local OpenID metadata + JWKS endpoint standing in for login.botframework.com.

    botbuilder fetches it with blocking ``requests``, so it runs in its own thread. Yields the
    trusted signing key and the key id it is published under (endorsed for ``msteams``).
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="trusted-key", endorsements=["msteams"])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = f"http://127.0.0.1:{self.server.server_port}"  # type: ignore[attr-defined]
            doc = {"issuer": "https://api.botframework.com", "jwks_uri": f"{base}/keys"}
            body = json.dumps(doc if self.path.startswith("/openid") else {"keys": [jwk]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ChannelValidation.open_id_metadata_endpoint = f"http://127.0.0.1:{server.server_address[1]}/openid"
    try:
        yield key, "trusted-key"
    finally:
        ChannelValidation.open_id_metadata_endpoint = None
        server.shutdown()


def bearer(key: Any, kid: str, service_url: str, audience: str = APP_ID) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": "https://api.botframework.com", "aud": audience, "serviceurl": service_url,
              "nbf": now - 10, "exp": now + 600}
    return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})}


async def test_only_requests_signed_by_the_bot_framework_for_this_bot_are_accepted(
    tmp_path: Path, openid: tuple[Any, str]
) -> None:
    trusted, kid = openid
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with teams(tmp_path, lambda turn: [ev.FinalText("never")], env=CREDENTIALS) as h:
        # A reply in a chain the bot is not part of: accepted, but it sends nothing (no Azure token needed).
        activity = fixture("channel_reply_in_chain", id="1732189000001")
        activity["text"], activity["entities"] = "just chatting", []
        url = h.connector.url
        assert (await h.post(activity)).status == 401
        assert (await h.post(activity, bearer(stranger, kid, url))).status == 401  # wrongly signed
        assert (await h.post(activity, bearer(trusted, kid, url, audience="another-bot"))).status == 401
        # Signed for another serviceUrl: accepting it would send the bot's token there.
        assert (await h.post(activity, bearer(trusted, kid, "https://attacker.example/"))).status == 401
        assert await h.engine.state.claim_event("teams:1732189000001")  # none of them reached the engine
        ok = fixture("channel_reply_in_chain", id="1732189000002")
        ok["text"], ok["entities"] = "just chatting", []
        assert (await h.post(ok, bearer(trusted, kid, url))).status in (200, 201, 202)
        # The message was queued on the engine before the answer: idle again means it was handled.
        await h.until(lambda _: h.engine.idle)
        assert not await h.engine.state.claim_event("teams:1732189000002")  # this one did
        assert h.connector.calls == [] and h.agent.turns == []


# ---- streams -----------------------------------------------------------------------------------


def stream_types_of(body: dict[str, Any]) -> list[str]:
    return [e.get("streamType") for e in body.get("entities") or () if e.get("type") == "streaminfo"]


def streaming_update(method: str, body: dict[str, Any]) -> bool:
    return "streaming" in stream_types_of(body)


async def test_pressing_stop_on_a_stream_stops_the_turn_and_says_so(tmp_path: Path) -> None:
    def script(turn: Turn) -> list[Any]:
        return [ev.Rationale("Loading. "), Sleep(1.7), ev.Rationale("Grouping. "), Sleep(6.0), ev.FinalText("never")]

    async with teams(tmp_path, script) as h:
        h.connector.fail_next(403, None, code="ContentStreamNotAllowed",
                              message="Content stream was canceled by user.", when=streaming_update)
        started = time.monotonic()
        await h.post(fixture("personal_message"))
        calls = await h.turn_done(PERSONAL, within=8.0)
        assert time.monotonic() - started < 5.0  # stopped, not run to the end
        [fallback] = plain_messages(calls)
        final = [c for c in calls if c.method == "PUT" and c.activity_id == fallback.returned_id][-1]
        assert "Stopped" in final.body["text"] and "never" not in final.body["text"]


async def test_a_chat_where_streaming_is_refused_still_gets_progress_and_the_answer(tmp_path: Path) -> None:
    def script(turn: Turn) -> list[Any]:
        return [ev.Rationale("Loading. "), Sleep(1.7), ev.FinalText("EMEA leads.")]

    async with teams(tmp_path, script) as h:
        h.connector.fail_next(400, None, code="BadArgument", message="streaming api is not enabled",
                              when=lambda method, body: body.get("type") == "typing")
        await h.post(fixture("personal_message"))
        calls = await h.turn_done(PERSONAL)
        [message] = plain_messages(calls)  # the informative update was refused: a plain message instead
        assert "Working" in message.body["text"]
        final = [c for c in calls if c.method == "PUT" and c.activity_id == message.returned_id][-1]
        assert "EMEA leads." in final.body["text"] and "✅" in final.body["text"]
        assert not [c for c in calls if c.body["type"] == "typing"]  # no further stream attempts
        assert len(h.agent.turns) == 1


def reference(connector: FakeBotConnector) -> ConversationReference:
    return ConversationReference(
        activity_id="1", bot=ChannelAccount(id="28:bot"), user=ChannelAccount(id="29:ada"),
        conversation=ConversationAccount(id="a:chat", conversation_type="personal"),
        channel_id="msteams", service_url=connector.url)


def local_sender() -> Sender:
    adapter, _ = build_adapter(TeamsSettings.from_env({"DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED": "1"}))  # type: ignore[arg-type]
    return Sender(adapter, "", base_delay=0.01)


async def live_turn(transport: TeamsTransport, states: list[Reply]) -> LiveTurn[Any]:
    """A live turn showing the last of ``states`` (append to it, then ``changed``)."""
    live: LiveTurn[Any] = LiveTurn(transport, lambda: states[-1])
    await live.start()
    return live


async def test_a_quiet_stream_is_closed_at_the_cap_even_without_updates() -> None:
    connector = await FakeBotConnector().start()
    try:
        # A 0.4 s lifetime stands in for Teams' two minutes.
        transport = TeamsTransport(local_sender(), reference(connector), personal=True, lifetime=0.4)
        states = [Reply((Status("Working…", "working"),))]
        live = await live_turn(transport, states)
        states.append(Reply((Status("Working…", "working"), Markdown("Reading 10 GB."))))
        await live.changed()
        # A long code run: no events, no updates; the lifetime timer closes the stream on its own.
        await connector.wait_for(lambda calls: [c for c in calls if "final" in stream_types(c)])
        closed = [c for c in connector.calls if "final" in stream_types(c)]
        assert len(closed) == 1 and "Reading 10 GB." in closed[0].body["text"]
        states.append(Reply((Status("Done in 130 s", "done"), Markdown("Reading 10 GB. Done."))))
        await live.finish()
        last = connector.calls[-1]
        assert last.method == "PUT" and last.activity_id == closed[0].returned_id and "Done." in last.body["text"]
    finally:
        await connector.close()


async def test_a_stream_teams_already_ended_still_delivers_the_final_answer() -> None:
    connector = await FakeBotConnector().start()
    try:
        states = [Reply((Status("Working…", "working"),))]
        live = await live_turn(TeamsTransport(local_sender(), reference(connector), personal=True), states)
        connector.fail_next(403, None, code="ContentStreamNotAllowed",
                            message="Content stream finished due to exceeded streaming time.",
                            when=lambda method, body: "final" in stream_types_of(body))
        states.append(Reply((Status("Done in 2 s", "done"), Markdown("The answer."))))
        await live.finish()
        [answer] = plain_messages(connector.calls)
        assert "The answer." in answer.body["text"] and "✅" in answer.body["text"]
    finally:
        await connector.close()


# ---- retries and rate limits --------------------------------------------------------------------


async def test_every_transient_status_is_retried_and_nothing_is_duplicated(tmp_path: Path) -> None:
    def script(turn: Turn) -> list[Any]:
        return [ev.Rationale("Working. "), Sleep(1.6), ev.FinalText("after the retries")]

    async with teams(tmp_path, script) as h:
        h.connector.fail_next(429, retry_after=0.05)
        h.connector.fail_next(412, retry_after=None)
        h.connector.fail_next(504, retry_after=None, when=lambda method, body: method == "PUT")
        await h.post(fixture("group_chat_mention"))
        calls = await h.turn_done(GROUP)
        assert sorted(h.connector.failed) == [412, 429, 504]
        assert len(plain_messages(calls)) == 1
        assert "after the retries" in [c for c in calls if c.method == "PUT"][-1].body["text"]


async def test_a_conversation_stays_under_seven_messages_a_second() -> None:
    connector = await FakeBotConnector().start()
    try:
        sender, ref = local_sender(), reference(connector)
        await asyncio.gather(*(sender.send(ref, Activity(type="message", text=f"m{i}")) for i in range(9)))
        times = sorted(c.at for c in connector.calls)
        assert len(times) == 9
        assert all(later - earlier >= 0.99 for earlier, later in zip(times, times[7:], strict=False))
    finally:
        await connector.close()


# ---- redelivery after a restart ----------------------------------------------------------------


CSV = ("region,revenue\n" + "".join(f"region-{i:02d},{i * 10}\n" for i in range(1, 46))).encode()


async def test_redelivered_messages_and_clicks_do_nothing_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine")
    async with teams(tmp_path, lambda turn: [WriteFile("regions.csv", CSV), ev.FinalText("here")]) as h:
        await h.post(fixture("personal_message"))
        await h.turn_done(PERSONAL)
        card_call = next(c for c in h.connector.calls for a in c.body.get("attachments") or ()
                         if a["contentType"] == ADAPTIVE)
        card = card_call.body["attachments"][0]["content"]
        nxt = next(a for a in card["actions"] if "Next" in a["title"])
        click = fixture("card_submit_next", id="1732182600001", replyToId=card_call.returned_id, value=nxt["data"])
        await h.post(click)
        await h.until(lambda calls: [c for c in calls if c.method == "PUT"])
    async with teams(tmp_path, lambda turn: [ev.FinalText("a second turn")]) as h:  # same home: a restart
        await h.post(fixture("personal_message"))
        # A click's id is claimed before the answer (a redelivery spawns nothing); a message is
        # dropped by the engine, which logs it.
        assert (await h.post(click)).status in (200, 201, 202)
        await h.until(lambda _: dropped_duplicates(caplog) == 1)
        assert h.connector.calls == [] and h.agent.turns == []
        await h.post({**click, "id": "1732182600002"})  # a new click still works after the restart
        put = await h.until(lambda calls: [c for c in calls if c.method == "PUT"])
        assert put[0].activity_id == card_call.returned_id
