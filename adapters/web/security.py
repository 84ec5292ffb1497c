"""Response hardening and the session cookie for every route of the web view: one copy of each rule.

Pages hold no data (they are static files that fetch JSON and insert it as text), scripts come only
from our own static folder, and nothing may frame us. Files from a workspace are agent-written data:
they download as attachments, sandboxed, never sniffed, except raster images shown as previews.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import web

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
#: Applied to workspace files: even if a browser rendered one, it would run nothing.
FILE_CSP = "default-src 'none'; sandbox"
COOKIE = "datathread_session"
#: Raster image types a preview may show inline; everything else (SVG and HTML included) downloads.
INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def harden(response: web.StreamResponse) -> None:
    """Set the headers every response of the web view carries (unless a handler set its own CSP)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def hardening(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``harden`` every response, errors included (aiohttp raises those as responses)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        harden(exc)
        raise
    if not response.prepared:
        harden(response)
    return response


def secure_cookies(base_url: str) -> bool:
    """Cookies are ``Secure`` except when the view is served to this machine over plain HTTP."""
    host = urlsplit(base_url).hostname or ""
    return not (urlsplit(base_url).scheme == "http" and host in ("localhost", "127.0.0.1", "::1"))


def set_session(response: web.StreamResponse, token: str, conversation_id: str, max_age: int, secure: bool) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, scoped to the conversation's pages only."""
    response.set_cookie(COOKIE, token, path=f"/w/{conversation_id}/", max_age=max_age, httponly=True,
                        samesite="Strict", secure=secure)


def attachment(name: str) -> str:
    """A ``Content-Disposition`` that saves the file under its own name (RFC 6266, any characters)."""
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
