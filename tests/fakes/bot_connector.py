"""A local fake of the Bot Framework Connector service (what ``serviceUrl`` points at).

It speaks the real REST shapes botbuilder's ``ConnectorClient`` uses:
``POST /v3/conversations/{id}/activities`` (send), ``POST .../activities/{replyToId}`` (reply),
``PUT .../activities/{id}`` (update), each answered with ``{"id": ...}``. It also serves files
people "attached" (``/files/{name}``, like smba attachment and SharePoint download URLs) and a
OneDrive-style upload URL for the FileConsent flow (ranged ``PUT /upload/{name}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import LocalServer, serve


@dataclass(frozen=True)
class Call:
    method: str
    conversation: str
    activity_id: str | None  # the {replyToId} of a reply POST, or the {id} of a PUT
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    returned_id: str


@dataclass(frozen=True)
class Failure:
    """One scripted error answer: Teams' status, ``Retry-After`` and ``error.code`` / ``message``;
    ``when`` picks which call gets it (``None``: the next call)."""

    status: int
    retry_after: float | None
    code: str
    message: str
    when: Callable[[str, dict[str, Any]], bool] | None


@dataclass
class FakeBotConnector:
    """Records every call; ``fail_next`` makes chosen calls answer an error once each."""

    calls: list[Call] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    file_requests: list[dict[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    #: When set, files are streamed in pieces of this many bytes (no Content-Length), each sent
    #: on its own, as a large download arrives over a real network.
    file_chunk: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1_700_000_000_100))
    _server: LocalServer | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url + "/"

    def file_url(self, name: str) -> str:
        return str(self.url) + f"files/{name}"

    def upload_url(self, name: str) -> str:
        return str(self.url) + f"upload/{name}"

    def fail_next(self, status: int = 429, retry_after: float | None = 0.05, times: int = 1, *,
                  code: str = "Throttled", message: str = "slow down",
                  when: Callable[[str, dict[str, Any]], bool] | None = None) -> None:
        """The next ``times`` calls matching ``when(method, body)`` answer ``status`` (unrecorded)."""
        self.failures.extend([Failure(status, retry_after, code, message, when)] * times)

    async def start(self) -> FakeBotConnector:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v3/conversations/{conversation}/activities", self._activity)
        app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", self._activity)
        app.router.add_put("/v3/conversations/{conversation}/activities/{activity}", self._activity)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_put("/upload/{name}", self._upload)
        self._server = await serve(app)
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _activity(self, request: web.Request) -> web.Response:
        body = await request.json()
        failure = next((f for f in self.failures if f.when is None or f.when(request.method, body)), None)
        if failure is not None:
            self.failures.remove(failure)
            self.failed.append(failure.status)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return web.json_response({"error": {"code": failure.code, "message": failure.message}},
                                     status=failure.status, headers=headers)
        existing = request.match_info.get("activity")
        new_id = existing if request.method == "PUT" and existing else str(next(self._ids))
        self.calls.append(Call(request.method, request.match_info["conversation"], existing, body,
                               dict(request.headers), time.monotonic(), new_id))
        self._changed.set()
        return web.json_response({"id": new_id}, status=200 if request.method == "PUT" else 201)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.file_requests.append(dict(request.headers))
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        if not self.file_chunk:
            return web.Response(body=data, content_type="application/octet-stream")
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(data), self.file_chunk):
            await response.write(data[start : start + self.file_chunk])
            await asyncio.sleep(0.001)  # let the client see a partial body between pieces
        await response.write_eof()
        return response

    async def _upload(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        start = int(request.headers["Content-Range"].split()[1].split("-")[0])
        data = await request.read()
        buf = self.uploads.setdefault(name, bytearray())
        buf[start : start + len(data)] = data
        return web.json_response({"id": name}, status=201)

    # ---- queries ------------------------------------------------------------------------------

    def sent(self, conversation: str | None = None) -> list[Call]:
        return [c for c in self.calls if conversation is None or c.conversation == conversation]

    async def wait_for(self, predicate: Callable[[list[Call]], Any], within: float = 10.0) -> Any:
        """Wait until ``predicate(calls)`` is truthy and return its value."""
        deadline = time.monotonic() + within
        while True:
            result = predicate(self.calls)
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting; calls so far: {[c.body.get('type') for c in self.calls]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
