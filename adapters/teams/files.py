"""Files out of Teams' reach: signed download links, inline images and the FileConsent flow.

Bots cannot upload into channels or group chats without Graph, so there a file becomes a link to
``GET /files/{token}`` on our own server. The token is a sealed ``FileLink`` intent (signed, expiring,
naming the thread and the file's path inside that thread's workspace), so it opens that file only.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from aiohttp import web
from PIL import Image as PILImage

from bot.intents import LinkPurpose
from bot.messages import ThreadKey
from bot.surface import SurfaceError

CONSENT_CARD = "application/vnd.microsoft.teams.card.file.consent"
FILE_INFO_CARD = "application/vnd.microsoft.teams.card.file.info"
#: Inline images: Teams shows data URIs up to about 1 MB and 1024×1024 pixels.
INLINE_MAX_BYTES = 1_000_000
INLINE_MAX_SIDE = 1024
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
#: OneDrive upload sessions take ranges in multiples of 320 KiB.
UPLOAD_CHUNK = 320 * 1024 * 12
EXPIRED = "This download link has expired or is not valid. Ask the bot for the file again."


class FileLinks(Protocol):
    """Sealing and opening file-link tokens (the engine does both: ``Engine.file_link`` / ``open_file_link``).

    A token names the thread, the conversation (so a ``new`` conversation in the same chat voids it)
    and the file's path inside its workspace, and it expires.
    """

    async def file_link(self, thread: ThreadKey, path: Path, *, purpose: LinkPurpose,
                        ttl: float) -> str | None: ...

    async def open_file_link(self, token: str, *, purpose: LinkPurpose,
                             thread: ThreadKey | None = None) -> Path | None: ...


def file_link(public_url: str, token: str) -> str:
    return f"{public_url}/files/{quote(token, safe='')}"


def download_handler(links: FileLinks) -> Any:
    """``GET /files/{token}``: the file a download link opens, or 403 for anything else."""

    async def handle(request: web.Request) -> web.StreamResponse:
        path = await links.open_file_link(request.match_info["token"], purpose="download")
        if path is None:
            return web.Response(status=403, text=EXPIRED)
        response = web.FileResponse(path)
        response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(path.name)}"
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return handle


def inline_image(path: Path) -> tuple[str, bool]:
    """A data URI Teams shows inline, and whether the image had to be scaled down to fit."""
    data = path.read_bytes()
    media = IMAGE_TYPES.get(path.suffix.lower(), "image/png")
    with PILImage.open(io.BytesIO(data)) as image:
        fits = max(image.size) <= INLINE_MAX_SIDE and len(data) * 4 / 3 < INLINE_MAX_BYTES
        if fits:
            return f"data:{media};base64,{base64.b64encode(data).decode()}", False
        image.load()
        scaled = image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image.copy()
    side = min(INLINE_MAX_SIDE, max(scaled.size))
    while True:
        scaled.thumbnail((side, side))
        out = io.BytesIO()
        scaled.save(out, "PNG", optimize=True)
        if len(out.getvalue()) * 4 / 3 < INLINE_MAX_BYTES or side <= 128:
            return f"data:image/png;base64,{base64.b64encode(out.getvalue()).decode()}", True
        side = int(side * 0.75)


def consent_card(name: str, size: int, token: str) -> dict[str, Any]:
    return {
        "contentType": CONSENT_CARD,
        "name": name,
        "content": {
            "description": f"{name} from this conversation's workspace",
            "sizeInBytes": size,
            "acceptContext": {"token": token},
            "declineContext": {"token": token},
        },
    }


def file_info_card(upload_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "contentType": FILE_INFO_CARD,
        "contentUrl": upload_info.get("contentUrl"),
        "name": upload_info.get("name"),
        "content": {"uniqueId": upload_info.get("uniqueId"), "fileType": upload_info.get("fileType")},
    }


async def put_file(session: aiohttp.ClientSession, upload_url: str, path: Path) -> None:
    """Upload ``path`` to a OneDrive upload URL Teams gave us, in ranged chunks read from disk one at
    a time (memory stays at one chunk, whatever the file's size)."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        start = 0
        while True:
            chunk = await asyncio.to_thread(os.pread, file.fileno(), UPLOAD_CHUNK, start)
            end = start + len(chunk) - 1
            headers = {"Content-Range": f"bytes {start}-{max(end, 0)}/{size}", "Content-Length": str(len(chunk))}
            async with session.put(upload_url, data=chunk, headers=headers) as response:
                if response.status not in (200, 201, 202):
                    raise SurfaceError(f"the upload to OneDrive failed (HTTP {response.status})")
            start += len(chunk)
            if start >= size or not chunk:
                return
