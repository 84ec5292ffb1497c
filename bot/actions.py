"""Dataset and workspace actions: one implementation behind buttons and typed commands.

A button click arrives as an ``ActionInvoked`` with an untrusted token; a typed ``next`` or
``sort value desc`` arrives as text. Both end in the same methods here, which check that the
dataset belongs to the thread and the user before reading a single row.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.datasets.model import (
    CHART_KINDS,
    ChartSpec,
    DatasetError,
    DatasetMeta,
    DatasetStore,
    ExportFormat,
    SortSpec,
)
from bot.help import COMMANDS
from bot.messages import ActionInvoked, MessageRef, ThreadKey
from bot.presenter import Sealer, file_key, present_datasets, present_files, present_page
from bot.reply import Reply, notice
from bot.storage.base import StateStore
from bot.surface import Surface, SurfaceError, best_effort
from bot.tokens import TokenSigner
from bot.workspace import CHARTS_DIR, EXPORTS_DIR, UnsafePath, Workspace, safe_filename

log = logging.getLogger(__name__)

BAD_TOKEN = "That button is no longer valid here. Ask again in this thread to get fresh results."
NOT_YOURS = "Only the person who started this conversation can see its workspace."


@dataclass(frozen=True)
class _Command:
    """A typed dataset command: its arguments, where it came from, and the dataset it names (if any)."""

    args: list[str]
    thread: ThreadKey
    user: str
    surface: Surface
    dataset: str | None


@dataclass(frozen=True)
class _View:
    """The dataset page a thread looked at last: what typed ``next`` / ``sort`` continue from."""

    dataset: str
    page: int
    sort: SortSpec | None


class DatasetActions:
    """Pages, sorts, charts, downloads and workspace listings for threads, with access checks."""

    def __init__(self, settings: Settings, state: StateStore, datasets: DatasetStore, signer: TokenSigner) -> None:
        self.settings = settings
        self.state = state
        self.datasets = datasets
        self.signer = signer
        # Per process: after a restart a typed ``next`` starts again from page 1, buttons still work.
        self._views: dict[ThreadKey, _View] = {}

    def sealer(self, thread: ThreadKey) -> Sealer:
        """Token maker for ``thread``: the HMAC covers the thread, so a token is void anywhere else."""
        return lambda payload: self.signer.seal(payload, context=thread.digest)

    def files_token(self, thread: ThreadKey) -> str:
        """The token of a "Files" button for ``thread`` (the owner check happens on click)."""
        return self.sealer(thread)({"k": "files"})

    def forget(self, thread: ThreadKey) -> None:
        self._views.pop(thread, None)

    async def post_page(
        self,
        surface: Surface,
        thread: ThreadKey,
        meta: DatasetMeta,
        number: int,
        sort: SortSpec | None = None,
        replace: MessageRef | None = None,
    ) -> None:
        """Show page ``number`` of a dataset: update ``replace`` in place, or post a new message."""
        page = await self.datasets.page(meta.id, number, self.settings.page_size, sort)
        reply = present_page(page, self.sealer(thread))
        self._views[thread] = _View(meta.id, page.number, sort)
        if replace is not None:
            await surface.update(replace, reply)
        else:
            await surface.post(reply)

    async def _authorized(self, dataset_id: str, thread: ThreadKey, user: str) -> DatasetMeta:
        """The dataset if it belongs to this thread and ``user`` may see it; else ``DatasetError``.

        Foreign and forbidden ids get the same message as forged ones, so a probe learns nothing;
        unknown and expired ones say so (the store's message tells how to get the data again).
        """
        meta = await self.datasets.get(dataset_id)
        if meta.thread != thread or (user != meta.owner and not self.settings.allow_participants):
            raise DatasetError(BAD_TOKEN)
        return meta

    async def _workspace(self, thread: ThreadKey, user: str) -> Workspace:
        conversation = await self.state.conversation(thread)
        if conversation is None or (user != conversation.owner and not self.settings.allow_participants):
            raise DatasetError(NOT_YOURS)
        return Workspace(conversation.workspace).ensure()

    # ---- buttons ----------------------------------------------------------------------------

    async def act(self, action: ActionInvoked, surface: Surface) -> None:
        """Carry out a button click. Every value is verified; failures become an ephemeral notice."""
        payload = self.signer.open(action.token, context=action.thread.digest)
        try:
            if payload is None:
                raise DatasetError(BAD_TOKEN)
            await self._run(payload, action.thread, action.user, surface, action.message)
        except (DatasetError, UnsafePath) as exc:
            await surface.notify(action.user, notice(str(exc), "warning"))
        except SurfaceError as exc:
            await best_effort(surface.notify(action.user, notice(f"That did not work: {exc}", "error")))
        except Exception:
            log.exception("action %s failed", action.kind)
            failed = notice("That did not work; details are in the log.", "error")
            await best_effort(surface.notify(action.user, failed))

    async def _run(
        self, payload: dict[str, Any], thread: ThreadKey, user: str, surface: Surface, message: MessageRef | None
    ) -> None:
        kind = payload.get("k")
        if kind == "files":
            workspace = await self._workspace(thread, user)
            await surface.notify(user, present_files(await workspace.list_files(), self.sealer(thread)))
            return
        if kind == "file":
            workspace = await self._workspace(thread, user)
            found = next((f for f in await workspace.list_files() if file_key(f.name) == payload.get("f")), None)
            if found is None:
                raise DatasetError("That file is no longer in the workspace.")
            await surface.upload(found.path, name=found.path.name, title=found.name)
            return
        meta = await self._authorized(str(payload.get("d", "")), thread, user)
        names = [c.name for c in meta.columns]

        def column(index: object) -> str:
            if not isinstance(index, int) or not 0 <= index < len(names):
                raise DatasetError(BAD_TOKEN)
            return names[index]

        if kind in ("page", "sort"):
            sort = SortSpec(column(payload["c"]), bool(payload.get("r"))) if "c" in payload else None
            await self.post_page(surface, thread, meta, int(payload.get("p", 1)), sort, replace=message)
        elif kind == "chart":
            chart_kind, x, y = payload["c"]
            if chart_kind not in CHART_KINDS:
                raise DatasetError(BAD_TOKEN)
            spec = ChartSpec(chart_kind, column(x), None if y is None else column(y))
            await self.chart(surface, thread, user, meta, spec)
        elif kind == "download":
            await self.download(surface, thread, user, meta, "parquet" if payload.get("f") == "parquet" else "csv")
        else:
            raise DatasetError(BAD_TOKEN)

    async def chart(self, surface: Surface, thread: ThreadKey, user: str, meta: DatasetMeta, spec: ChartSpec) -> None:
        """Draw ``spec`` into the workspace's ``charts/`` folder and post it into the thread."""
        workspace = await self._workspace(thread, user)
        name = "-".join(safe_filename(p) for p in (meta.name, spec.kind, spec.y or spec.x))
        out = workspace.resolve(f"{CHARTS_DIR}/{name}.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        await self.datasets.chart(meta.id, spec, out)
        await surface.upload(out, name=out.name, title=f"chart: {meta.name} {spec.kind} {spec.y or spec.x}")

    async def download(
        self, surface: Surface, thread: ThreadKey, user: str, meta: DatasetMeta, fmt: ExportFormat
    ) -> None:
        """Export the whole dataset into the workspace's ``exports/`` folder and post it."""
        workspace = await self._workspace(thread, user)
        out = workspace.resolve(f"{EXPORTS_DIR}/{safe_filename(meta.name)}.{fmt}")
        out.parent.mkdir(parents=True, exist_ok=True)
        await self.datasets.export(meta.id, fmt, out)
        await surface.upload(out, name=out.name, title=f"{meta.name} ({meta.rows:,} rows, {fmt.upper()})")

    # ---- typed commands ---------------------------------------------------------------------

    async def command(self, text: str, thread: ThreadKey, user: str, surface: Surface) -> bool:
        """Run ``text`` if it is a command (``help``, ``files``, ``next``, ...); False if it is for the agent.

        Dataset commands act on the dataset the thread looked at last, or on the one named by a
        trailing ``in NAME`` (``next in sales``, ``sort revenue desc in sales``).
        """
        words = text.split()
        if not words:
            return False
        head = words[0].lower()
        if len(words) == 1 and head in _SIMPLE:
            await _SIMPLE[head](self, thread, user, surface)
            return True
        handler = _COMMANDS.get(head)
        named = _NAMED.fullmatch(text.strip())
        body, dataset = (named.group(1), named.group(2)) if named else (text.strip(), None)
        if handler is None or not _SHAPES[head].fullmatch(body):
            return False
        try:
            await handler(self, _Command(body.split()[1:], thread, user, surface, dataset))
        except DatasetError as exc:
            await surface.post(notice(str(exc), "warning"))
        return True

    async def _target(self, cmd: _Command) -> tuple[DatasetMeta, _View]:
        """The dataset a command acts on, and the page of it the thread looked at last (if any)."""
        view = self._views.get(cmd.thread)
        if cmd.dataset is not None:
            live = list(await self.datasets.list(cmd.thread))
            match = [m for m in live if m.name == cmd.dataset] or [
                m for m in live if m.name.lower() == cmd.dataset.lower()]
            if not match:
                names = ", ".join(dict.fromkeys(m.name for m in live)) or "none yet"
                raise DatasetError(f'No dataset "{cmd.dataset}" in this conversation. Datasets: {names}.')
            if view is None or view.dataset != match[-1].id:
                view = _View(match[-1].id, 1, None)
        elif view is None:
            live = list(await self.datasets.list(cmd.thread))
            if not live:
                raise DatasetError("There is no dataset in this conversation yet.")
            view = _View(live[-1].id, 1, None)
        return await self._authorized(view.dataset, cmd.thread, cmd.user), view

    async def _move(self, cmd: _Command, step: int) -> None:
        meta, view = await self._target(cmd)
        await self.post_page(cmd.surface, cmd.thread, meta, max(1, view.page + step), view.sort)

    async def _page(self, cmd: _Command) -> None:
        meta, view = await self._target(cmd)
        await self.post_page(cmd.surface, cmd.thread, meta, max(1, int(cmd.args[0])), view.sort)

    async def _sort(self, cmd: _Command) -> None:
        meta, _ = await self._target(cmd)
        desc = len(cmd.args) > 1 and cmd.args[-1].lower() in ("desc", "descending")
        await self.post_page(cmd.surface, cmd.thread, meta, 1, SortSpec(_find_column(meta, cmd.args[0]), desc))

    async def _download(self, cmd: _Command) -> None:
        meta, _ = await self._target(cmd)
        fmt: ExportFormat = "parquet" if cmd.args and cmd.args[0].lower() == "parquet" else "csv"
        await self.download(cmd.surface, cmd.thread, cmd.user, meta, fmt)

    async def _chart(self, cmd: _Command) -> None:
        meta, _ = await self._target(cmd)
        kind = next(k for k in CHART_KINDS if k == cmd.args[0].lower())  # the shape admits only known kinds
        columns = [_find_column(meta, a) for a in cmd.args[1:3]]
        spec = ChartSpec(kind, columns[0], columns[1] if len(columns) > 1 else None)
        await self.chart(cmd.surface, cmd.thread, cmd.user, meta, spec)

    async def _help(self, thread: ThreadKey, user: str, surface: Surface) -> None:
        await surface.post(Reply((notice(COMMANDS).blocks[0],), "Commands"))

    async def _files(self, thread: ThreadKey, user: str, surface: Surface) -> None:
        await self._run({"k": "files"}, thread, user, surface, None)

    async def _datasets(self, thread: ThreadKey, user: str, surface: Surface) -> None:
        await surface.post(present_datasets(await self.datasets.list(thread)))


def _find_column(meta: DatasetMeta, name: str) -> str:
    for column in meta.columns:
        if column.name == name:
            return column.name
    for column in meta.columns:
        if column.name.lower() == name.lower():
            return column.name
    raise DatasetError(f"No column {name!r} in {meta.name}. Columns: {', '.join(c.name for c in meta.columns)}")


_Simple = Callable[[DatasetActions, ThreadKey, str, Surface], Awaitable[None]]
_SIMPLE: dict[str, _Simple] = {
    "help": DatasetActions._help,
    "files": DatasetActions._files,
    "datasets": DatasetActions._datasets,
}
_Handler = Callable[[DatasetActions, "_Command"], Awaitable[None]]
_COMMANDS: dict[str, _Handler] = {
    "next": lambda a, cmd: a._move(cmd, 1),
    "n": lambda a, cmd: a._move(cmd, 1),
    "prev": lambda a, cmd: a._move(cmd, -1),
    "p": lambda a, cmd: a._move(cmd, -1),
    "page": DatasetActions._page,
    "sort": DatasetActions._sort,
    "chart": DatasetActions._chart,
    "download": DatasetActions._download,
}
#: A trailing ``in NAME`` picks the dataset a command acts on.
_NAMED = re.compile(r"(.+?)\s+in\s+(\S+)", re.I)
# Commands must look like commands, so "sort the table by revenue" still reaches the agent.
_SHAPES: dict[str, re.Pattern[str]] = {
    "next": re.compile(r"next", re.I),
    "n": re.compile(r"n", re.I),
    "prev": re.compile(r"prev(ious)?", re.I),
    "p": re.compile(r"p", re.I),
    "page": re.compile(r"page\s+\d{1,9}", re.I),
    "sort": re.compile(r"sort\s+\S+(\s+(asc|desc|ascending|descending))?", re.I),
    "chart": re.compile(r"chart\s+(" + "|".join(CHART_KINDS) + r")\s+\S+(\s+\S+)?", re.I),
    "download": re.compile(r"download(\s+(csv|parquet))?", re.I),
}
