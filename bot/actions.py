"""Carrying out intents: one implementation behind buttons, typed commands and file links.

A click arrives as an ``ActionInvoked`` with an untrusted token, which opens into an intent (or
nothing); a typed ``next`` or ``sort value desc`` parses into a command that resolves into an
intent against the thread's last view. Both end in ``execute``: one exhaustive ``match`` over the
intent union, with the access checks (dataset of this thread, owner or participant) in one place.
Every failure, for buttons and typed commands alike, ends in a short notice the user sees.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, assert_never

from bot.commands import (
    Command,
    ListDatasets,
    ListWorkflows,
    OnDataset,
    RunWorkflow,
    ShowHelp,
    parse_command,
    resolve,
)
from bot.config import Settings
from bot.conversation import Conversation
from bot.datasets.model import ChartSpec, DatasetError, DatasetMeta, DatasetStore, ExportFormat, SortSpec
from bot.feedback import FeedbackRecord
from bot.file_posting import TooLargeToPost, post_file
from bot.help import COMMANDS
from bot.intent_tokens import IntentSealer
from bot.intents import (
    Download,
    DrawChart,
    Feedback,
    FileLink,
    Intent,
    LinkPurpose,
    ListFiles,
    OpenWorkspace,
    PostFile,
    RevokeWorkspace,
    ShowPage,
    Stop,
    kind_of,
)
from bot.messages import ActionInvoked, MessageRef, ThreadKey
from bot.presenter import (
    Sealer,
    file_key,
    present_chart,
    present_datasets,
    present_files,
    present_page,
    present_sorting,
    present_workspace_link,
)
from bot.reply import Reply, notice
from bot.storage.base import StateStore
from bot.surface import Refused, Surface, SurfaceError, best_effort
from bot.web_access import WorkspaceAccess
from bot.workflows.record import RunOutcome
from bot.workspace import CHARTS_DIR, EXPORTS_DIR, UnsafePath, Workspace, safe_filename
from bot.workspace_sync import WorkspaceSync

log = logging.getLogger(__name__)

BAD_TOKEN = "That button is no longer valid here. Ask again in this thread to get fresh results."
NOT_YOURS = "Only the person who started this conversation can see its workspace."
NOT_YOUR_TURN = "Only the person who started this conversation can stop its turn."
FILE_GONE = "That file is no longer in the workspace."
NOTHING_RUNNING = "Nothing is running in this thread right now."
THANKS = "Thanks for the feedback."
NO_ANSWER = "There is no answer in this thread to give feedback on yet."
#: State-store namespace: thread digest -> id of the thread's latest turn (what a typed ``good`` rates).
LAST_TURN = "last-turn"
FAILED = "That did not work; details are in the log."
NOT_YOURS_TO_RUN = "Only the person who started this conversation can run workflows in it."
NOT_YOUR_WORKSPACE = "Only the person who started this conversation can open or revoke its workspace links."
NOT_PRIVATE = "Workspace links are sent privately, and this chat cannot show you a private message. " \
              "Message me in a personal chat to work there with a workspace of your own."
NO_WEB = "The workspace view needs the web server: it runs with `datathread serve` or `datathread chat --web`."
REVOKED = "Every earlier workspace link and browser session of this conversation has stopped working. " \
          "Type `workspace` for a new link."


@dataclass(frozen=True)
class Origin:
    """Who asked, where, and how: a click (answered privately, may update its message) or typed text."""

    thread: ThreadKey
    user: str
    surface: Surface
    typed: bool
    message: MessageRef | None = None

    async def tell(self, reply: Reply) -> None:
        """A failure or acknowledgement: in the thread for typed commands, to the clicker for buttons.
        If the platform refuses that way, the other one: whatever went wrong, the user hears of it."""
        ways = (self._in_thread, self._privately)
        first, then = ways if self.typed else ways[::-1]
        try:
            await first(reply)
        except SurfaceError as exc:
            log.warning("a notice was refused (%s); trying the other way", exc)
            await then(reply)

    async def _in_thread(self, reply: Reply) -> None:
        await self.surface.post(reply)

    async def _privately(self, reply: Reply) -> None:
        await self.surface.notify(self.user, reply)


class WorkflowCommands(Protocol):
    """What ``run NAME`` and ``workflows`` typed in a thread do (``bot.workflows.chat``)."""

    async def run(self, command: RunWorkflow, thread: ThreadKey, owner: str, surface: Surface) -> RunOutcome:
        """Run the workflow in ``thread`` with ``owner`` owning every step; reports in the thread."""
        ...

    async def listing(self) -> Reply:
        """The workflows there are, as a message."""
        ...

    def exists(self, name: str) -> bool:
        """Whether a workflow of that name is there to run."""
        ...


NO_WORKFLOWS = "Workflows are not set up on this bot."


class Actions:
    """Seals intents for threads and carries them out, with access checks.

    ``workflows`` (set by the composition root) runs the ``run NAME`` and ``workflows`` commands.
    """

    workflows: WorkflowCommands | None = None
    #: A sorted page not ready after this many seconds (the order is being built) shows "sorting…" first.
    sorting_notice_after: float = 0.5

    def __init__(self, settings: Settings, state: StateStore, datasets: DatasetStore, tokens: IntentSealer,
                 cancel: Callable[[ThreadKey], Awaitable[bool]], web: WorkspaceAccess | None = None) -> None:
        self.settings = settings
        self.state = state
        self.datasets = datasets
        self.tokens = tokens
        self._cancel = cancel
        self.web = web or WorkspaceAccess(settings, state, datasets, tokens)
        #: Set by the engine when workspaces are shared by several replicas.
        self.workspace_sync: WorkspaceSync | None = None
        # Per process: after a restart a typed ``next`` starts again from page 1, buttons still work.
        self._views: dict[ThreadKey, ShowPage] = {}

    def sealer(self, thread: ThreadKey) -> Sealer:
        """Token maker for ``thread``: a token is void in any other thread."""
        return lambda intent: self.tokens.seal(thread, intent)

    def forget(self, thread: ThreadKey) -> None:
        """Drop the thread's last view (a fresh conversation starts from its newest dataset)."""
        self._views.pop(thread, None)

    async def post_page(self, surface: Surface, thread: ThreadKey, meta: DatasetMeta, number: int) -> None:
        """Post page ``number`` of a dataset the thread just produced (no access check: the engine's own)."""
        await self._show(surface, thread, meta, ShowPage(meta.id, number), None)

    # ---- access: the one place that decides who may do what ----------------------------------

    def _may(self, owner: str, user: str) -> bool:
        return user == owner or self.settings.allow_participants

    async def _dataset(self, dataset_id: str, origin: Origin) -> DatasetMeta:
        """The dataset if it belongs to this thread and the user may see it; else ``DatasetError``.

        Foreign and forbidden ids get the same message as forged ones, so a probe learns nothing;
        unknown and expired ones say so (the store's message tells how to get the data again).
        """
        meta = await self.datasets.get(dataset_id)
        if meta.thread != origin.thread or not self._may(meta.owner, origin.user):
            raise DatasetError(BAD_TOKEN)
        return meta

    async def _conversation(self, origin: Origin, refusal: str = NOT_YOURS) -> Conversation:
        """The thread's conversation if the user may act in it; else ``DatasetError(refusal)``."""
        conversation = await self.state.conversation(origin.thread)
        if conversation is None or not self._may(conversation.owner, origin.user):
            raise DatasetError(refusal)
        return conversation

    async def _owned(self, origin: Origin) -> Conversation:
        """The thread's conversation if ``origin.user`` owns it (participants never get its links)."""
        conversation = await self.state.conversation(origin.thread)
        if conversation is None or conversation.owner != origin.user:
            raise DatasetError(NOT_YOUR_WORKSPACE)
        return conversation

    async def _workspace(self, origin: Origin) -> Workspace:
        conversation = await self._conversation(origin)
        workspace = Workspace(conversation.workspace).ensure()
        if self.workspace_sync is not None:  # another replica may have run the last turn
            await self.workspace_sync.pull(conversation.id, workspace)
        return workspace

    # ---- entry points ------------------------------------------------------------------------

    async def act(self, action: ActionInvoked, surface: Surface) -> None:
        """Carry out a click. The token must open for this thread and user; failures become a notice."""
        origin = Origin(action.thread, action.user, surface, typed=False, message=action.message)
        intent = self.tokens.open(action.token, action.thread, action.user)
        if intent is None:
            await best_effort(origin.tell(notice(BAD_TOKEN, "warning")))
            return
        await self._reporting(origin, kind_of(intent), lambda: self.execute(intent, origin))

    async def request(self, intent: Intent, thread: ThreadKey, user: str, surface: Surface, *,
                      typed: bool = False) -> None:
        """Carry out ``intent`` for ``user`` in ``thread`` without a token (a platform event that
        vouches for both, or a typed word handled ahead of the queue); same checks as a click."""
        origin = Origin(thread, user, surface, typed=typed)
        await self._reporting(origin, kind_of(intent), lambda: self.execute(intent, origin))

    async def command(self, text: str, thread: ThreadKey, user: str, surface: Surface) -> bool:
        """Run ``text`` if it is a command (``help``, ``files``, ``next``, ...); False if it is for the agent.

        Dataset commands act on the dataset the thread looked at last, or on the one named by a
        trailing ``in NAME`` (``next in sales``, ``sort revenue desc in sales``).
        """
        command = parse_command(text)
        if command is None:
            return False
        if isinstance(command, RunWorkflow) and not command.params and (
                self.workflows is None or not self.workflows.exists(command.name)):
            return False  # "run it", "run again": words for the agent, not a workflow's name

        origin = Origin(thread, user, surface, typed=True)
        await self._reporting(origin, type(command).__name__, lambda: self._run_command(command, origin))
        return True

    async def _reporting(self, origin: Origin, what: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run``; whatever fails, the user hears about it in a short notice."""
        try:
            await run()
        except (DatasetError, UnsafePath, TooLargeToPost) as exc:
            await best_effort(origin.tell(notice(str(exc), "warning")))
        except SurfaceError as exc:
            await best_effort(origin.tell(notice(f"That did not work: {exc}", "error")))
        except Exception:
            log.exception("%s in thread %s failed", what, origin.thread.digest)
            await best_effort(origin.tell(notice(FAILED, "error")))

    # ---- file links (Teams) ----------------------------------------------------------------------

    async def file_link(self, thread: ThreadKey, path: Path, *, purpose: LinkPurpose,
                        ttl: float) -> str | None:
        """A link token for ``path`` in the thread's workspace, valid ``ttl`` seconds; ``None`` if the
        thread has no conversation."""
        conversation = await self.state.conversation(thread)
        if conversation is None:
            return None
        link = FileLink(conversation.id, Workspace(conversation.workspace).relative(path), int(time.time() + ttl),
                        purpose)
        return self.tokens.seal_link(thread, link)

    async def open_file_link(self, token: str, *, purpose: LinkPurpose,
                             thread: ThreadKey | None = None) -> Path | None:
        """The workspace file a link token names, or ``None`` if it is forged, expired, of another
        purpose, thread (when ``thread`` is given) or conversation, or the file is gone."""
        opened = self.tokens.open_link(token)
        if opened is None:
            return None
        key, link = opened
        if link.purpose != purpose or (thread is not None and key != thread):
            return None
        return await self._link_path(key, link)

    async def _link_path(self, thread: ThreadKey, link: FileLink) -> Path | None:
        conversation = await self.state.conversation(thread)
        if conversation is None or conversation.id != link.conversation:
            return None
        if self.workspace_sync is not None:  # the file may have been made on another replica
            try:
                await self.workspace_sync.pull(conversation.id, Workspace(conversation.workspace).ensure())
            except Exception:  # serve what is here; the log says why the rest is missing
                log.exception("workspace pull for a file link failed in conversation %s", conversation.id)
        try:
            path = Workspace(conversation.workspace).resolve(link.path)
        except UnsafePath:
            return None
        return path if path.is_file() else None

    # ---- execution -----------------------------------------------------------------------------

    async def execute(self, intent: Intent, origin: Origin) -> None:
        """Carry out one intent after the access checks; ``DatasetError`` carries a user-facing refusal."""
        match intent:
            case ShowPage(dataset=dataset_id):
                meta = await self._dataset(dataset_id, origin)
                await self._show(origin.surface, origin.thread, meta, intent, origin.message)
            case DrawChart(dataset=dataset_id, kind=kind, x=x, y=y):
                meta = await self._dataset(dataset_id, origin)
                spec = ChartSpec(kind, _column(meta, x), None if y is None else _column(meta, y))
                await self._chart(origin, meta, spec)
            case Download(dataset=dataset_id, format=fmt):
                meta = await self._dataset(dataset_id, origin)
                out = export_path(await self._workspace(origin), meta, fmt)
                await self.datasets.export(meta.id, fmt, out)
                title = f"{meta.name} ({meta.rows:,} rows, {fmt.upper()})"
                await self._post(origin, out, title)
            case ListFiles():
                workspace = await self._workspace(origin)
                listing = present_files(await workspace.list_files(), self.sealer(origin.thread))
                await origin.surface.notify(origin.user, listing)
            case PostFile(key=key):
                workspace = await self._workspace(origin)
                found = next((f for f in await workspace.list_files() if file_key(f.name) == key), None)
                if found is None:
                    raise DatasetError(FILE_GONE)
                await self._post(origin, found.path, found.name)
            case FileLink():
                # Links normally arrive through ``open_file_link``; executed in its thread, one posts its file.
                await self._conversation(origin)
                path = await self._link_path(origin.thread, intent)
                if path is None:
                    raise DatasetError(FILE_GONE)
                await self._post(origin, path, None)
            case Stop():
                await self._conversation(origin, NOT_YOUR_TURN)
                if not await self._cancel(origin.thread):
                    await origin.tell(notice(NOTHING_RUNNING))
                # else the turn's own message ends with "Stopped": no second word needed.
            case Feedback(positive=positive, turn=turn, comment=comment):
                # Anyone who can see the thread may say what they think of it: no owner check.
                conversation = await self.state.conversation(origin.thread)
                turn = turn or await self.state.get_value(LAST_TURN, origin.thread.digest) or ""
                if conversation is None:  # no turn known (yet): the verdict is on the conversation
                    raise DatasetError(NO_ANSWER)
                await self.state.record_feedback(FeedbackRecord(
                    conversation.id, turn, origin.user, datetime.now(UTC), positive, comment, origin.thread.platform))
                log.info("feedback %s from %s in thread %s", "positive" if positive else "negative",
                         origin.user, origin.thread.digest)
                await origin.tell(notice(THANKS))
            case OpenWorkspace():
                # The link is the owner's alone: only ever in a notice no one else can see.
                conversation = await self._owned(origin)
                if not origin.surface.private_notices:
                    raise DatasetError(NOT_PRIVATE)
                url = await self.web.link(conversation)
                reply = notice(NO_WEB) if url is None else present_workspace_link(url, self.settings.web_link_hours)
                await origin.surface.notify(origin.user, reply)
            case RevokeWorkspace():
                await self.web.revoke(await self._owned(origin))
                await origin.surface.notify(origin.user, notice(REVOKED))
            case _:
                assert_never(intent)

    async def _run_command(self, command: Command, origin: Origin) -> None:
        match command:
            case ShowHelp():
                await origin.surface.post(Reply((notice(COMMANDS).blocks[0],), "Commands"))
            case ListDatasets():
                await origin.surface.post(present_datasets(await self.datasets.list(origin.thread)))
            case ListFiles() | Stop() | Feedback() | OpenWorkspace() | RevokeWorkspace():
                await self.execute(command, origin)
            case OnDataset(action=action, dataset=name):
                view = await self._view(name, origin.thread)
                meta = await self._dataset(view.dataset, origin)
                await self.execute(resolve(action, view, meta), origin)
            case ListWorkflows():
                if self.workflows is None:
                    raise DatasetError(NO_WORKFLOWS)
                await origin.surface.post(await self.workflows.listing())
            case RunWorkflow():
                if self.workflows is None:
                    raise DatasetError(NO_WORKFLOWS)
                # Every step belongs to the thread's owner: only the owner may start a run here.
                conversation = await self.state.start_conversation(origin.thread, origin.user)
                if not self._may(conversation.owner, origin.user):
                    raise DatasetError(NOT_YOURS_TO_RUN)
                await self.workflows.run(command, origin.thread, conversation.owner, origin.surface)
            case _:
                assert_never(command)

    async def _view(self, name: str | None, thread: ThreadKey) -> ShowPage:
        """The page a dataset command continues from: the thread's last view of the dataset called
        ``name`` (or of any dataset), else page 1 of that (or the newest) dataset."""
        view = self._views.get(thread)
        if name is not None:
            live = list(await self.datasets.list(thread))
            match = [m for m in live if m.name == name] or [m for m in live if m.name.lower() == name.lower()]
            if not match:
                names = ", ".join(dict.fromkeys(m.name for m in live)) or "none yet"
                raise DatasetError(f'No dataset "{name}" in this conversation. Datasets: {names}.')
            if view is None or view.dataset != match[-1].id:
                view = ShowPage(match[-1].id, 1)
        elif view is None:
            live = list(await self.datasets.list(thread))
            if not live:
                raise DatasetError("There is no dataset in this conversation yet.")
            view = ShowPage(live[-1].id, 1)
        return view

    async def _show(self, surface: Surface, thread: ThreadKey, meta: DatasetMeta, intent: ShowPage,
                    replace: MessageRef | None) -> None:
        """Show a page: update ``replace`` in place (a click on the page's own buttons), or post it."""
        sort = None if intent.sort is None else SortSpec(_column(meta, intent.sort.column), intent.sort.descending)
        pending = asyncio.ensure_future(self.datasets.page(meta.id, intent.page, self.settings.page_size, sort))
        if sort is not None:
            # A page past the first ones waits for the column's full order: say so in the message
            # meanwhile (the same message then shows the page), rather than nothing for seconds.
            done, _ = await asyncio.wait({pending}, timeout=self.sorting_notice_after)
            if not done:
                notice = present_sorting(meta, sort, intent.page)
                if replace is not None:
                    await surface.update(replace, notice)
                else:
                    replace = await surface.post(notice)
        page = await pending
        reply = present_page(page, self.sealer(thread), intent.columns)
        self._views[thread] = ShowPage(meta.id, page.number, intent.sort, intent.columns)
        if replace is not None:
            await surface.update(replace, reply)
        else:
            await surface.post(reply)

    async def _chart(self, origin: Origin, meta: DatasetMeta, spec: ChartSpec) -> None:
        """A small aggregate as a chart the platform draws itself, where the surface can; else — or
        when the platform refuses it — draw ``spec`` as a PNG into the workspace's ``charts/`` folder
        and post that into the thread."""
        if origin.surface.native_charts:
            data = await self.datasets.chart_data(meta.id, spec)
            if data is not None:
                try:
                    await origin.surface.post(present_chart(data))
                    return
                except Refused:
                    log.info("the platform refused a native chart in thread %s; posting the PNG", origin.thread.digest)
        out = chart_path(await self._workspace(origin), meta, spec)
        await self.datasets.chart(meta.id, spec, out)
        await self._post(origin, out, f"chart: {meta.name} {spec.kind} {spec.y or spec.x}")

    async def _post(self, origin: Origin, path: Path, title: str | None) -> None:
        """Post a workspace file into the thread, within the posting limit."""
        await post_file(origin.surface, path, name=path.name, title=title, limit=self.settings.max_post_bytes)


def chart_path(workspace: Workspace, meta: DatasetMeta, spec: ChartSpec) -> Path:
    """Where a chart of ``meta`` is drawn (the workspace's ``charts/`` folder, which it creates)."""
    name = "-".join(safe_filename(p) for p in (meta.name, spec.kind, spec.y or spec.x))
    out = workspace.resolve(f"{CHARTS_DIR}/{name}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def export_path(workspace: Workspace, meta: DatasetMeta, fmt: ExportFormat, sort: SortSpec | None = None) -> Path:
    """Where an export of ``meta`` is written (the workspace's ``exports/`` folder, which it creates)."""
    order = "" if sort is None else f"-by-{safe_filename(sort.column)}-{'desc' if sort.descending else 'asc'}"
    out = workspace.resolve(f"{EXPORTS_DIR}/{safe_filename(meta.name)}{order}.{fmt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _column(meta: DatasetMeta, index: int) -> str:
    """The name of column ``index``; a token naming a column the dataset lacks is not ours."""
    if not 0 <= index < len(meta.columns):
        raise DatasetError(BAD_TOKEN)
    return meta.columns[index].name
