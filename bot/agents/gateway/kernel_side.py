"""Code that runs *inside* a gateway kernel: the conversation's folder there and moving file bytes.

The host ships this module's source into the kernel (``shipping``), so a kernel image needs nothing
of datathread installed. Standard library only. Every name the host sends is relative to the
conversation's folder (``root``) and must stay inside it: ``..``, absolute names and symlinks that
point out are refused with ``ValueError``, whatever the host asks.
"""

from __future__ import annotations

import base64
import os

#: Our private folder in the kernel's folder, as on the host; only its hand-over frames are listed.
PRIVATE_DIR = ".datathread"
FRAMES = PRIVATE_DIR + "/frames"

_root: str | None = None


def enter(root: str) -> str:
    """Make ``root`` (created if needed) the conversation's folder and the kernel's cwd; returns it absolute."""
    global _root
    path = os.path.realpath(root)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chdir(path)
    _root = path
    return path


def root() -> str:
    """The conversation's folder (``enter`` must have run)."""
    if _root is None:
        raise RuntimeError("the kernel has no conversation folder yet")
    return _root


def inside(name: str) -> str:
    """The absolute path of ``name`` in the folder; ``ValueError`` if it would escape it."""
    base = root()
    if not name or os.path.isabs(name):
        raise ValueError(f"not a relative name: {name!r}")
    path = os.path.realpath(os.path.join(base, name))
    if not path.startswith(base + os.sep):
        raise ValueError(f"{name!r} is outside the conversation folder")
    return path


def manifest() -> dict[str, tuple[int, int]]:
    """``{name: (size, mtime_ns)}`` of every regular file in the folder (not symlinks), our private
    folder left out except its hand-over frames."""
    base = root()
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(base):
        rel_folder = os.path.relpath(folder, base).replace(os.sep, "/")
        rel_folder = "" if rel_folder == "." else rel_folder
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        private = rel_folder == PRIVATE_DIR or rel_folder.startswith(PRIVATE_DIR + "/")
        if private and rel_folder != FRAMES:
            continue
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            found[f"{rel_folder}/{name}".lstrip("/")] = (st.st_size, st.st_mtime_ns)
    return found


def read_chunk(name: str, offset: int, size: int) -> str:
    """Up to ``size`` bytes of ``name`` from ``offset``, base64-encoded."""
    with open(inside(name), "rb") as f:
        f.seek(offset)
        return base64.b64encode(f.read(size)).decode("ascii")


def write_chunk(name: str, offset: int, data: str) -> None:
    """Write base64 ``data`` at ``offset`` of ``name`` (offset 0 starts the file afresh)."""
    path = inside(name)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path, "r+b" if offset else "wb") as f:
        f.seek(offset)
        f.write(base64.b64decode(data))


def remove(names: list[str]) -> None:
    """Delete ``names`` (hand-over files the host has taken); missing ones are fine."""
    for name in names:
        try:
            os.unlink(inside(name))
        except (OSError, ValueError):
            continue
