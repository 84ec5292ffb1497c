"""What a kernel run leaves behind, as events: the same for a local and a gateway kernel.

After the run's own output: figures that reached the workspace only after the run (a kernel with its
own disk), then the tables it displayed (registered as datasets; the hand-over file is deleted once
the store has its copy), then every other file created or changed in the workspace, not announced twice.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

from bot.agents.backend import announce_files, dataset_events
from bot.agents.kernel.run import KernelRun
from bot.conversation import Turn
from bot.events import AgentEvent, Notice
from bot.workspace import Snapshot

log = logging.getLogger(__name__)


async def run_results(turn: Turn, run: KernelRun, before: Snapshot) -> AsyncGenerator[AgentEvent, None]:
    """Events for the figures, tables and files of ``run``; ``before`` is the workspace before it ran."""
    for path in run.figures:
        if path.is_file():
            yield run.produced(path)
    for path, name in run.frames:
        try:
            meta = await turn.datasets.register_file(path, name)
        except Exception as exc:
            log.warning("could not register the displayed table %s", name, exc_info=True)
            yield Notice(f"The table {name} could not be kept as a dataset ({type(exc).__name__}).", "warning")
            continue
        finally:
            # The store keeps its own copy: the kernel's export is only a hand-over.
            path.unlink(missing_ok=True)
        if meta is not None:
            for event in dataset_events(meta):
                yield event
    changed = [f for f in await turn.workspace.changes_since(before) if f.path not in run.announced]
    async for event in announce_files(turn, changed):
        yield event
