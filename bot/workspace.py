"""Per-conversation workspace folder. Names from agents or users never resolve outside it."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bot.private import private_dir, write_private

#: Folders inside a workspace that hold our own bookkeeping, hidden from listings and change scans.
PRIVATE_DIR = ".datathread"
#: Visible folders datathread itself writes: charts drawn from datasets, dataset downloads, long code.
CHARTS_DIR, EXPORTS_DIR, CODE_DIR = "charts", "exports", "code"
#: Folders datathread itself writes (dataset exports, drawn charts, saved code steps): a remote code
#: environment (AgentCore session, gateway kernel) never needs them, so they are never copied into one.
OWN_FOLDERS = frozenset({EXPORTS_DIR, CHARTS_DIR, CODE_DIR})


class UnsafePath(ValueError):
    """A name that would escape the workspace (absolute, ``..``, a symlink out)."""


@dataclass(frozen=True)
class WorkspaceFile:
    name: str  # relative POSIX path
    path: Path
    size: int
    mtime_ns: int


Snapshot = dict[str, tuple[int, int]]


def safe_filename(name: str, default: str = "file") -> str:
    """An ASCII-safe single path component for ``name`` (keeps the extension, drops directories)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._")
    return cleaned[:120] or default


class Workspace:
    """A conversation's folder. All paths handed out are absolute and inside ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def ensure(self) -> Workspace:
        private_dir(self.root)
        return self

    def resolve(self, name: str | Path) -> Path:
        """The absolute path of ``name`` inside the workspace; raises ``UnsafePath`` if it escapes."""
        candidate = Path(name)
        target = (candidate if candidate.is_absolute() else self.root / candidate).resolve()
        if target != self.root and self.root not in target.parents:
            raise UnsafePath(f"{name!s} is outside the workspace")
        return target

    def relative(self, path: Path) -> str:
        return self.resolve(path).relative_to(self.root).as_posix()

    def unique(self, name: str) -> Path:
        """A path for a new file called like ``name`` (sanitised) that does not exist yet."""
        safe = safe_filename(name)
        stem, dot, ext = safe.partition(".")
        path = self.resolve(safe)
        n = 1
        while path.exists():
            n += 1
            path = self.resolve(f"{stem}-{n}{dot}{ext}")
        return path

    async def write(self, name: str, data: bytes, folder: str | None = None) -> Path:
        """Save ``data`` as a new file named like ``name`` (directories in ``name`` are dropped), in the
        workspace or its sub-folder ``folder`` (ours, e.g. ``code``); never overwrites, never escapes."""
        target = self.resolve(folder) if folder else self.root
        private_dir(target)
        path = Workspace(target).unique(name)
        await asyncio.to_thread(write_private, path, data)
        return path

    def files(self) -> list[WorkspaceFile]:
        """Every regular file in the workspace (our private folder excluded), sorted by name."""
        if not self.root.exists():
            return []
        out: list[WorkspaceFile] = []
        for path in self.root.rglob("*"):
            rel = path.relative_to(self.root)
            if rel.parts[0] == PRIVATE_DIR or path.is_symlink() or not path.is_file():
                continue
            st = path.stat()
            out.append(WorkspaceFile(rel.as_posix(), path, st.st_size, st.st_mtime_ns))
        return sorted(out, key=lambda f: f.name)

    def snapshot(self) -> Snapshot:
        return {f.name: (f.size, f.mtime_ns) for f in self.files()}

    def changed_since(self, before: Snapshot) -> list[WorkspaceFile]:
        """Files created or modified since ``before``, in name order."""
        return [f for f in self.files() if before.get(f.name) != (f.size, f.mtime_ns)]

    # The walks above stat every file: from async code use these, which walk in a worker thread.

    async def list_files(self) -> list[WorkspaceFile]:
        return await asyncio.to_thread(self.files)

    async def take_snapshot(self) -> Snapshot:
        return await asyncio.to_thread(self.snapshot)

    async def changes_since(self, before: Snapshot) -> list[WorkspaceFile]:
        return await asyncio.to_thread(self.changed_since, before)



def human_size(n: int) -> str:
    """``2.1 MB`` style sizes (decimal units, as file browsers show them)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
