"""The web view served for real (aiohttp on 127.0.0.1) by an engine on the embedded storage.

``WebBot`` gives tests links, session cookies and raw requests (paths sent exactly as written, so
``..`` and encoded separators reach the server unnormalised).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy
from yarl import URL

from adapters.local_server import LocalServer, serve
from adapters.web.security import COOKIE
from adapters.web.wiring import mount
from bot.agents.backend import AgentBackend
from bot.composition import build_engine
from bot.config import Settings
from bot.conversation import Conversation
from bot.engine import Engine
from bot.messages import ThreadKey


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> object:
        return json.loads(self.body)


class WebBot:
    """Engine + web view on a local server; ``url`` has no trailing slash."""

    def __init__(self, home: Path, agent: AgentBackend, **env: str) -> None:
        self.env = {"DATATHREAD_HOME": str(home), **env}
        self.agent = agent
        self._engine: Engine | None = None
        self._server: LocalServer | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def engine(self) -> Engine:
        assert self._engine is not None
        return self._engine

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    async def start(self) -> WebBot:
        settings = Settings.from_env(self.env)
        self._engine = build_engine(settings, agent=self.agent, env=self.env)
        app = web.Application()
        mount(app, self._engine)
        self._server = await serve(app, access_log=False)
        self._engine.web.serve_at(self._server.url)
        self._http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self

    async def stop(self) -> None:
        if self._http:
            await self._http.close()
        if self._server:
            await self._server.close()
        if self._engine:
            await self._engine.aclose()

    async def conversation(self, thread: ThreadKey, owner: str) -> Conversation:
        return (await self.engine.open_conversation(thread, owner))[0]

    async def link(self, conversation: Conversation) -> str:
        link = await self.engine.web.link(conversation)
        assert link is not None
        return link

    async def exchange(self, link: str) -> tuple[Fetched, str | None]:
        """POST the link's token as ``open.js`` does; the response and the session cookie it set."""
        assert self._http is not None
        token = link.split("#", 1)[1]
        async with self._http.post(self.url + "/w/session", json={"token": token}) as resp:
            fetched = Fetched(resp.status, resp.headers, await resp.read())
        cookies = SimpleCookie()
        for header in fetched.headers.getall("Set-Cookie", []):
            cookies.load(header)
        morsel = cookies.get(COOKIE)
        return fetched, None if morsel is None else morsel.value

    async def session(self, conversation: Conversation) -> str:
        fetched, cookie = await self.exchange(await self.link(conversation))
        assert fetched.status == 200 and cookie
        return cookie

    async def get(self, path: str, cookie: str | None = None, method: str = "GET",
                  headers: dict[str, str] | None = None) -> Fetched:
        """``path`` exactly as written (no normalisation), with the session cookie if given."""
        assert self._http is not None
        sent = dict(headers or {})
        if cookie is not None:
            sent["Cookie"] = f"{COOKIE}={cookie}"
        async with self._http.request(method, URL(self.url + path, encoded=True), headers=sent) as resp:
            return Fetched(resp.status, resp.headers, await resp.read())
