"""The kernel's hand-over files: a displayed table is exported to
``<workspace>/.datathread/frames/<uuid>.arrow`` (see ``startup``) and registered as a dataset by the
agent, which deletes the file. A process killed in between leaves it behind (often hundreds of
MB); ``sweep_stale_handovers`` removes such files once nothing can still be reading them.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

from bot.workspace import PRIVATE_DIR

log = logging.getLogger(__name__)

#: Where a workspace keeps its hand-over files, relative to the workspace.
FRAMES_DIR = Path(PRIVATE_DIR) / "frames"
#: A hand-over file this old is left over: registration takes seconds, not an hour.
STALE_AFTER = timedelta(hours=1)


def sweep_stale_handovers(workspaces: Path, *, now: float | None = None, max_age: timedelta = STALE_AFTER) -> int:
    """Delete hand-over files in every workspace under ``workspaces`` last modified more than
    ``max_age`` before ``now`` (epoch seconds); return how many. Blocking: run it in a thread."""
    cutoff = (time.time() if now is None else now) - max_age.total_seconds()
    removed = 0
    for path in workspaces.glob(f"*/{FRAMES_DIR.as_posix()}/*"):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # removed meanwhile
            continue
    if removed:
        log.info("swept %d stale kernel hand-over files", removed)
    return removed
