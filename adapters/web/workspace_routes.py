"""The workspace page: opening a link, the file listing, downloads and live updates (SSE).

A link is ``/w/open#TOKEN``: the token rides in the fragment, which browsers never send, so it never
reaches a log. ``open.js`` posts it to ``/w/session``, which answers with the session cookie and
the page to go to; the script then replaces the address (the token leaves the address bar and
the history) with that page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from adapters.web.guard import ENGINE, denied, grant_of, page
from adapters.web.security import COOKIE, FILE_CSP, INLINE_IMAGES, attachment, harden, secure_cookies, set_session
from bot.datasets.model import DatasetMeta
from bot.datasets.readers import TABULAR_SUFFIXES
from bot.intents import WebPass
from bot.turn_activity import TurnActivity
from bot.workspace import PRIVATE_DIR, UnsafePath, WorkspaceFile, human_size

#: How often a live page's workspace is scanned for new and changed files (the promise is 2 s).
SCAN_SECONDS = 0.5
#: A comment line keeps idle event streams open through proxies.
KEEPALIVE_SECONDS = 15.0
#: Largest session-exchange body (a token is well under 1 KB).
MAX_EXCHANGE_BYTES = 4096
CLOSING = web.AppKey("web-closing", asyncio.Event)


async def open_page(request: web.Request) -> web.Response:
    return page("open.html")


async def denied_page(request: web.Request) -> web.Response:
    return page("denied.html", status=403)


async def exchange(request: web.Request) -> web.Response:
    """Trade a link token for a session cookie; 403 for anything that does not hold."""
    engine = request.app[ENGINE]
    body = await request.content.read(MAX_EXCHANGE_BYTES + 1)
    try:
        token = json.loads(body)["token"] if len(body) <= MAX_EXCHANGE_BYTES else None
    except (ValueError, KeyError, TypeError):
        token = None
    opened = await engine.web.exchange(token) if isinstance(token, str) else None
    if opened is None:
        raise denied(request)
    grant, session = opened
    response = web.json_response({"next": f"/w/{grant.conversation}/"})
    secure = secure_cookies(engine.web.base_url or str(request.url))
    set_session(response, session, grant.conversation, int(engine.web.ttl), secure)
    return response


async def workspace_page(request: web.Request) -> web.Response:
    await grant_of(request)
    return page("workspace.html")


def _iso(mtime_ns: int) -> str:
    return datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat(timespec="seconds")


def _file_entry(f: WorkspaceFile, datasets: list[DatasetMeta]) -> dict[str, Any]:
    kind = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
    created = {d.source: d for d in datasets if d.created.timestamp() * 1e9 >= f.mtime_ns}
    dataset = created.get(f.path.name)
    return {"name": f.name, "size": f.size, "size_text": human_size(f.size), "modified": _iso(f.mtime_ns), "type": kind,
            "image": kind in INLINE_IMAGES, "table": f.path.suffix.lower() in TABULAR_SUFFIXES,
            "dataset": dataset.id if dataset else None}


def _activity(activity: TurnActivity | None) -> dict[str, Any] | None:
    return None if activity is None else {"state": activity.state, "steps": list(activity.steps)}


async def listing(request: web.Request, grant: WebPass) -> dict[str, Any]:
    """What the workspace page shows: files, live datasets and the latest turn's activity."""
    engine = request.app[ENGINE]
    workspace = await engine.web.workspace(grant)
    datasets = await engine.web.datasets_of(grant)
    files = await workspace.list_files()
    return {
        "files": [_file_entry(f, datasets) for f in files],
        "datasets": [{"id": d.id, "name": d.name, "rows": d.rows, "columns": len(d.columns),
                      "expires": d.expires.isoformat(timespec="minutes")} for d in datasets],
        "turn": _activity(engine.activity.latest(grant.thread)),
    }


async def files_json(request: web.Request) -> web.Response:
    return web.json_response(await listing(request, await grant_of(request)))


async def download(request: web.Request) -> web.StreamResponse:
    """A workspace file, streamed with ranges; an attachment unless it is a raster image asked inline."""
    grant = await grant_of(request)
    workspace = await request.app[ENGINE].web.workspace(grant)
    name = request.match_info["path"]
    try:
        if "\\" in name or "\0" in name or name.startswith("/"):
            raise UnsafePath(name)
        path = workspace.resolve(name)
        relative = path.relative_to(workspace.root)
    except (UnsafePath, ValueError):
        raise web.HTTPNotFound(text="No such file in this workspace.") from None
    if not relative.parts or relative.parts[0] == PRIVATE_DIR or not path.is_file():
        raise web.HTTPNotFound(text="No such file in this workspace.")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    inline = request.query.get("inline") == "1" and kind in INLINE_IMAGES
    headers = {"Content-Type": kind, "Content-Security-Policy": FILE_CSP,
               "Content-Disposition": "inline" if inline else attachment(path.name)}
    return web.FileResponse(path, headers=headers)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``files`` whenever the listing changes, ``turn`` at each turn activity,
    ``denied`` (then the end) once the session stops holding."""
    grant = await grant_of(request)
    engine = request.app[ENGINE]
    closing = request.app[CLOSING]
    cookie = request.cookies.get(COOKIE)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    harden(response)
    await response.prepare(request)

    async def send(event: str, data: Any) -> None:
        await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

    loop = asyncio.get_running_loop()
    last: Any = None
    quiet_since = loop.time()
    with engine.activity.watch(grant.thread) as queue, contextlib.suppress(ConnectionResetError):
        while not closing.is_set():
            if await engine.web.session(cookie, grant.conversation) is None:
                await send("denied", {})
                break
            current = await listing(request, grant)
            if current != last:
                await send("listing", current)
                last, quiet_since = current, loop.time()
            try:
                activity = await asyncio.wait_for(queue.get(), SCAN_SECONDS)
            except TimeoutError:
                if loop.time() - quiet_since > KEEPALIVE_SECONDS:
                    await response.write(b": keepalive\n\n")
                    quiet_since = loop.time()
                continue
            await send("turn", _activity(activity))
    return response
