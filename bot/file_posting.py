"""Posting a workspace file into a thread: the one size policy, shared by agent turns and intents.

A file larger than ``DATATHREAD_MAX_POST_MB`` is not posted: it stays in the workspace and the
user is told so, by name, with the way to find it (``files``). Surfaces stream what they do post
from disk in bounded chunks, so the cap is about what a thread should carry, not about memory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.surface import Surface, SurfaceError
from bot.workspace import human_size


class TooLargeToPost(SurfaceError):
    """The file is over the posting limit; ``str()`` names it and says where it still is."""


def too_large(name: str, size: int, limit: int) -> str:
    """The user-facing notice for a file over the posting limit."""
    return (f"{name} is {human_size(size)}, more than the {human_size(limit)} a thread takes, so it was not "
            "posted. It is still in this conversation's workspace: type `files` to see it.")


async def post_file(surface: Surface, path: Path, *, name: str, limit: int, title: str | None = None) -> None:
    """Upload ``path`` into the surface's thread; ``TooLargeToPost`` if it is over ``limit`` bytes,
    ``SurfaceError`` if the platform refuses it."""
    size = (await asyncio.to_thread(path.stat)).st_size
    if size > limit:
        raise TooLargeToPost(too_large(name, size, limit))
    await surface.upload(path, name=name, title=title)
