"""Files out of Teams' reach: signed download links, inline images and the FileConsent flow.

Bots cannot upload into channels or group chats without Graph, so there a file becomes a link to
``GET /files/{token}`` on our own server. The token is HMAC-signed (``TokenSigner``), expires, and
names the thread and the file's path inside that thread's workspace, so it opens that file only.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from PIL import Image as PILImage

from bot.conversation import Conversation
from bot.messages import ThreadKey
from bot.storage.base import StateStore
from bot.surface import SurfaceError
from bot.tokens import TokenSigner
from bot.workspace import UnsafePath, Workspace

CONSENT_CARD = "application/vnd.microsoft.teams.card.file.consent"
FILE_INFO_CARD = "application/vnd.microsoft.teams.card.file.info"
#: Inline images: Teams shows data URIs up to about 1 MB and 1024×1024 pixels.
INLINE_MAX_BYTES = 1_000_000
INLINE_MAX_SIDE = 1024
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
#: OneDrive upload sessions take ranges in multiples of 320 KiB.
UPLOAD_CHUNK = 320 * 1024 * 12
EXPIRED = "This download link has expired or is not valid. Ask the bot for the file again."


def seal_file(signer: TokenSigner, kind: str, conversation: Conversation, path: Path, ttl: float) -> str:
    """A token for ``path`` (inside the conversation's workspace): a link or a consent context.

    It names the thread, the conversation (so a ``new`` conversation in the same chat voids it)
    and the file's path relative to the workspace, and it expires after ``ttl`` seconds.
    """
    thread = conversation.key
    return signer.seal({
        "k": kind,
        "th": [thread.platform, thread.team, thread.channel, thread.thread],
        "c": conversation.id,
        "f": Workspace(conversation.workspace).relative(path),
        "x": int(time.time() + ttl),
    })


async def open_file(signer: TokenSigner, state: StateStore, token: str, kind: str,
                    thread: ThreadKey | None = None) -> Path | None:
    """The file a token names, or ``None`` if it is forged, expired, for another thread or
    conversation, or gone."""
    payload = signer.open(token)
    if not payload or payload.get("k") != kind or not isinstance(payload.get("th"), list):
        return None
    if not isinstance(payload.get("x"), int) or payload["x"] < time.time():
        return None
    try:
        key = ThreadKey(*(str(p) for p in payload["th"]))
    except TypeError:
        return None
    if thread is not None and key != thread:
        return None
    conversation = await state.conversation(key)
    if conversation is None or conversation.id != payload.get("c"):
        return None
    try:
        path = Workspace(conversation.workspace).resolve(str(payload.get("f", "")))
    except UnsafePath:
        return None
    return path if path.is_file() else None


def file_link(public_url: str, token: str) -> str:
    return f"{public_url}/files/{quote(token, safe='')}"


def download_handler(signer: TokenSigner, state: StateStore) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        path = await open_file(signer, state, request.match_info["token"], "dl")
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
    """Upload ``path`` to a OneDrive upload URL Teams gave us, in ranged chunks."""
    data = await asyncio.to_thread(path.read_bytes)
    size = len(data)
    start = 0
    while True:
        chunk = data[start : start + UPLOAD_CHUNK]
        end = start + len(chunk) - 1
        headers = {"Content-Range": f"bytes {start}-{max(end, 0)}/{size}", "Content-Length": str(len(chunk))}
        async with session.put(upload_url, data=chunk, headers=headers) as response:
            if response.status not in (200, 201, 202):
                raise SurfaceError(f"the upload to OneDrive failed (HTTP {response.status})")
        start += len(chunk)
        if start >= size:
            return
