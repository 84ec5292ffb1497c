"""Workspace links: who gets one, how they open, expire and are revoked, and the turn activity hook.

Against the real engine, SQLite state, dataset store and the recording surface (clicks through
``Engine.act``, typed words through ``Engine.submit``); the HTTP side is in tests/e2e/test_web_view.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import events as ev
from bot.actions import NO_WEB, NOT_PRIVATE, NOT_YOUR_WORKSPACE, REVOKED
from bot.commands import parse_command
from bot.config import Settings
from bot.datasets.local import LocalDatasetStore
from bot.engine import Engine
from bot.intents import Intent, OpenWorkspace, RevokeWorkspace
from bot.messages import ActionInvoked, IncomingMessage, MessageRef, ThreadKey
from bot.reply import Buttons, Markdown, Notice
from bot.storage.local import SqliteStateStore
from bot.turn_activity import TurnActivity
from tests.fakes.scripted_agent import ScriptedAgent
from tests.surfaces import RecordingSurface

T1 = ThreadKey("test", "team", "C1", "1.0")
T2 = ThreadKey("test", "team", "C1", "2.0")
OWNER, OTHER = "U1", "U2"
BASE = "https://dt.example.com"


@pytest.fixture
async def engine(tmp_path: Path, store: LocalDatasetStore) -> AsyncIterator[Engine]:
    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path), "DATATHREAD_ALLOW_PARTICIPANTS": "1"})
    settings.home.mkdir(parents=True, exist_ok=True)
    agent = ScriptedAgent(lambda turn: [ev.CodeStarted("\n\nx = load('sales')\nx.head()"),
                                        ev.CodeStarted("print(1)"), ev.FinalText("ok")])
    built = Engine(settings, SqliteStateStore(settings.state_db, settings.workspaces), store, agent)
    built.web.serve_at(BASE + "/")
    yield built
    await built.state.aclose()


def _link(surface: RecordingSurface, user: str = OWNER) -> str:
    [call] = surface.of("notify")
    assert call.user == user and call.reply is not None
    [block] = call.reply.blocks
    assert isinstance(block, Markdown)
    found = re.search(r"\((https://[^)\s]+)\)", block.text)
    assert found is not None, block.text
    return found.group(1)


def _notice(surface: RecordingSurface) -> str:
    [call] = surface.of("notify")
    assert call.reply is not None and isinstance(call.reply.blocks[0], Notice)
    return call.reply.blocks[0].text


async def _click(engine: Engine, intent: Intent, user: str = OWNER) -> RecordingSurface:
    surface = RecordingSurface()
    await engine.act(ActionInvoked("test", engine.seal(T1, intent), user, T1, MessageRef("C1", "m0")), surface)
    return surface


async def _type(engine: Engine, text: str, user: str = OWNER) -> RecordingSurface:
    surface = RecordingSurface()
    await engine.submit(IncomingMessage(T1, user, text), surface)
    return surface


def _token(link: str) -> str:
    assert link.startswith(BASE + "/w/open#")
    return link.split("#", 1)[1]


async def test_where_notices_are_public_there_is_no_workspace_button_and_no_link(engine: Engine) -> None:
    await engine.open_conversation(T1, OWNER)
    channel = RecordingSurface(private_notices=False)  # a Teams channel: a "notice" is a reply all can read
    await engine.submit(IncomingMessage(T1, OWNER, "workspace"), channel)
    [refusal] = channel.of("post")  # a typed word is answered in the thread: it carries no link
    assert refusal.reply is not None and refusal.reply.summary == NOT_PRIVATE
    assert "/w/open#" not in str(channel.calls)
    await engine.submit(IncomingMessage(T1, OWNER, "run it"), channel)
    final = channel.of("live.finish")[-1]
    assert final.reply is not None
    buttons = [b for b in final.reply.blocks if isinstance(b, Buttons) and b.items[0].label == "Files"]
    assert [i.label for i in buttons[-1].items] == ["Files"]


def test_workspace_and_workspace_revoke_are_typed_commands() -> None:
    assert parse_command("workspace") == OpenWorkspace()
    assert parse_command(" Workspace  revoke ") == RevokeWorkspace()
    assert parse_command("workspace please tidy up") is None


async def test_the_typed_word_gives_the_owner_a_private_link_and_posts_nothing_in_the_thread(engine: Engine) -> None:
    await engine.open_conversation(T1, OWNER)
    surface = await _type(engine, "workspace")
    link = _link(surface)
    assert not surface.of("post")
    grant, session = await engine.web.exchange(_token(link)) or (None, "")
    assert grant is not None and grant.thread == T1 and grant.owner == OWNER
    assert await engine.web.session(session, grant.conversation) == grant


async def test_the_workspace_button_is_for_the_owner_only_even_where_participants_may_page(engine: Engine) -> None:
    await engine.open_conversation(T1, OWNER)
    assert _link(await _click(engine, OpenWorkspace())).startswith(BASE + "/w/open#")
    refused = await _click(engine, OpenWorkspace(), user=OTHER)
    assert _notice(refused) == NOT_YOUR_WORKSPACE and refused.of("notify")[0].user == OTHER
    assert _notice(await _click(engine, RevokeWorkspace(), user=OTHER)) == NOT_YOUR_WORKSPACE


async def test_without_a_web_server_the_owner_hears_how_to_start_one(tmp_path: Path, store: LocalDatasetStore) -> None:
    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path)})
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = Engine(settings, SqliteStateStore(settings.state_db, settings.workspaces), store,
                    ScriptedAgent(lambda turn: []))
    try:
        await engine.open_conversation(T1, OWNER)
        assert _notice(await _type(engine, "workspace")) == NO_WEB
    finally:
        await engine.state.aclose()


async def test_revoke_voids_every_earlier_link_and_session_and_a_new_link_works(engine: Engine) -> None:
    conversation, _ = await engine.open_conversation(T1, OWNER)
    old_link = _token(_link(await _type(engine, "workspace")))
    opened = await engine.web.exchange(old_link)
    assert opened is not None
    assert _notice(await _type(engine, "workspace revoke")) == REVOKED
    assert await engine.web.exchange(old_link) is None
    assert await engine.web.session(opened[1], conversation.id) is None
    fresh = await engine.web.exchange(_token(_link(await _type(engine, "workspace"))))
    assert fresh is not None and await engine.web.session(fresh[1], conversation.id) is not None


async def test_expired_tampered_swapped_and_other_conversation_tokens_open_nothing(engine: Engine) -> None:
    conversation, _ = await engine.open_conversation(T1, OWNER)
    other, _ = await engine.open_conversation(T2, OTHER)
    token = _token(_link(await _type(engine, "workspace")))
    hours = engine.settings.web_link_hours
    assert await engine.web.exchange(token, now=time.time() + hours * 3600 + 5) is None
    body, sig = token.split(".")
    assert await engine.web.exchange(body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + sig) is None
    grant, session = await engine.web.exchange(token) or (None, "")
    assert grant is not None
    assert await engine.web.session(session, other.id) is None  # another conversation's pages
    assert await engine.web.exchange(session) is None  # a session is not a link
    assert await engine.web.session(token, conversation.id) is None  # a link is not a session
    assert await engine.web.session(session, conversation.id, now=time.time() + hours * 3600 + 5) is None


async def test_a_new_conversation_in_the_thread_voids_the_old_conversation_s_links(engine: Engine) -> None:
    await engine.open_conversation(T1, OWNER)
    token = _token(_link(await _type(engine, "workspace")))
    await engine.state.reset_conversation(T1, OWNER)
    assert await engine.web.exchange(token) is None


async def test_every_turn_ends_with_files_and_workspace_buttons_and_watchers_see_its_steps(engine: Engine) -> None:
    with engine.activity.watch(T1) as queue:
        surface = await _type(engine, "run it")
        seen = [queue.get_nowait() for _ in range(queue.qsize())]
    assert seen[0] == TurnActivity(T1, "working")
    assert TurnActivity(T1, "working", ("x = load('sales')",)) in seen
    assert seen[-1] == TurnActivity(T1, "done", ("x = load('sales')", "print(1)"))
    assert engine.activity.latest(T1) == seen[-1]
    final = surface.of("live.finish")[-1]
    assert final.reply is not None
    buttons = [b for b in final.reply.blocks if isinstance(b, Buttons) and b.items[0].label == "Files"]
    assert buttons and [i.label for i in buttons[-1].items] == ["Files", "Workspace"]
