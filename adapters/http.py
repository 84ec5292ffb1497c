"""HTTP helpers every chat adapter shares: reading a download or a request body under a size cap,
and host matching.

Nothing here knows a platform; the adapters decide which hosts they trust and send tokens to.
"""

from __future__ import annotations

from collections.abc import Iterable

import aiohttp
from aiohttp import web

from bot.surface import SurfaceError
from bot.workspace import human_size

#: Bytes read at a time while streaming a download.
CHUNK = 64 * 1024

#: The largest request body a platform webhook (``/slack/events``, ``/api/messages``) may send:
#: events, clicks and activities are a few kilobytes; files never arrive in the body.
MAX_REQUEST_BYTES = 1024 * 1024


def too_large(limit: int) -> SurfaceError:
    """The error for a download over ``limit`` bytes (its text is shown to the user)."""
    return SurfaceError(f"it is larger than the limit of {human_size(limit)}.")


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body of ``response``, or ``SurfaceError`` as soon as it exceeds ``limit`` bytes.

    Streams with ``iter_chunked`` until the end of the body: ``StreamReader.read(n)`` returns only
    what happens to be buffered, so a single read would silently truncate a large file. A declared
    ``Content-Length`` over the limit is refused before anything is read.
    """
    declared = response.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_chunked(CHUNK):
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_request(request: web.Request, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """The body of an inbound request, or ``web.HTTPRequestEntityTooLarge`` (413) before more than
    ``limit`` bytes are held: a declared ``Content-Length`` over the limit is refused unread, a
    chunked body as soon as it passes the limit. Nothing of a refused body is kept or logged."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=declared)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        total += len(chunk)
        if total > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=total)
        chunks.append(chunk)
    return b"".join(chunks)


def host_in(host: str, domains: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``domains`` or a subdomain of one (``a.slack.com`` is in
    ``slack.com``; ``evilslack.com`` is not). Case-insensitive; a trailing dot is ignored."""
    host = host.lower().rstrip(".")
    return bool(host) and any(host == d or host.endswith("." + d) for d in (d.lower() for d in domains))
