"""The one access check of the web view: the session cookie must hold for the conversation in the URL.

Every route under ``/w/{conversation}/`` calls ``grant_of`` first, on every request (no per-process
cache: a ``workspace revoke`` takes effect on the next request, on every replica). Refusals reveal
nothing: a forged cookie, an expired one, one for another conversation and a revoked one all get
the same short 403.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from adapters.web.security import COOKIE
from bot.engine import Engine
from bot.intents import WebPass

ENGINE = web.AppKey("web-engine", Engine)
DENIED_TEXT = "This workspace link is not valid here: it may have expired or been revoked."


def static_text(name: str) -> str:
    """A file of the packaged static folder, as text."""
    return (Path(__file__).parent / "static" / name).read_text(encoding="utf-8")


def page(name: str, status: int = 200) -> web.Response:
    """One of the packaged pages: static HTML with no data in it (the scripts fetch it as JSON)."""
    return web.Response(text=static_text(name), content_type="text/html", status=status)


def denied(request: web.Request) -> web.HTTPForbidden:
    """The refusal: a short page for a browser, a small JSON body for the page's own requests."""
    if "/api/" in request.path or request.method != "GET":
        return web.HTTPForbidden(text='{"error": "denied"}', content_type="application/json")
    return web.HTTPForbidden(text=static_text("denied.html"), content_type="text/html")


async def grant_of(request: web.Request) -> WebPass:
    """The grant of the request's session for the conversation named in its path; else raises 403."""
    grant = await request.app[ENGINE].web.session(request.cookies.get(COOKIE), request.match_info["conversation"])
    if grant is None:
        raise denied(request)
    return grant
