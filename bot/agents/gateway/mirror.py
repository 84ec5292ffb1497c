"""Which files move between the conversation's folder here and a gateway kernel's own disk.

Pure bookkeeping, no I/O. Before a run, workspace files the kernel does not have yet (the user's
attachments, files of an earlier kernel) are pushed; our own folders (``exports/``, ``charts/``,
``code/``: dataset exports, drawn charts, saved code steps), which the code never needs, stay here,
as with the AgentCore executor. After a run, every kernel file created or changed since the last
look is pulled back. A file over the size cap is not copied, and said so once per name and size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.agents.gateway.kernel_side import FRAMES
from bot.workspace import OWN_FOLDERS, PRIVATE_DIR, WorkspaceFile


def _may_come_back(name: str) -> bool:
    """Anything but our private folder, where only the hand-over tables (``FRAMES/<id>.arrow``) may."""
    if name.split("/", 1)[0] != PRIVATE_DIR:
        return True
    folder, _, file = name.rpartition("/")
    return folder == FRAMES and file.endswith(".arrow")

#: ``{name: (size, mtime_ns)}``, names relative to the folder with ``/``.
Listing = Mapping[str, tuple[int, int]]


@dataclass
class FileMirror:
    """What one kernel holds and what this host last exchanged with it.

    ``kernel``: the kernel's files at the last look. ``host``: ``(size, mtime_ns)`` of each workspace
    file when it was last pushed or pulled. ``too_large``: ``(name, size)`` already reported as over the cap.
    """

    max_bytes: int
    kernel: dict[str, tuple[int, int]] = field(default_factory=dict)
    host: dict[str, tuple[int, int]] = field(default_factory=dict)
    too_large: set[tuple[str, int]] = field(default_factory=set)

    def to_push(self, files: Iterable[WorkspaceFile]) -> list[WorkspaceFile]:
        """Workspace files to copy into the kernel: new or changed here since the last exchange. A file of
        the same name and size the kernel already has counts as exchanged (a kernel reattached after a restart)."""
        out = []
        for f in files:
            if f.name.split("/", 1)[0] in OWN_FOLDERS:
                continue
            stamp = (f.size, f.mtime_ns)
            seen = self.host.get(f.name)
            if seen == stamp:
                continue
            if seen is None and f.name in self.kernel and self.kernel[f.name][0] == f.size:
                self.host[f.name] = stamp
                continue
            out.append(f)
        return out

    def to_pull(self, listing: Listing) -> list[tuple[str, int]]:
        """Kernel files to copy back, ``(name, size)``, created or changed since the last look; ``listing``
        becomes the last look. Of our private folder only hand-over tables come back (the listing is made by
        code the user's code can change: it never writes anything else of ours here)."""
        changed = [(name, size_mtime[0]) for name, size_mtime in sorted(listing.items())
                   if self.kernel.get(name) != size_mtime and _may_come_back(name)]
        self.kernel = dict(listing)
        return changed

    def fits(self, name: str, size: int) -> bool | None:
        """``True`` if a file this size may be copied; ``False`` to report it (the first time), ``None`` after."""
        if size <= self.max_bytes:
            return True
        if (name, size) in self.too_large:
            return None
        self.too_large.add((name, size))
        return False
