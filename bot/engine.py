"""The router: threads to conversations, one turn at a time per thread, actions on datasets.

Surfaces call ``submit`` for every message (in arrival order) and ``act`` for every button. The
engine finds or starts the conversation, runs the agent turn while a live message shows it, uploads
files, posts a pageable message per dataset, and answers text commands with the same code paths the
buttons use. Nothing here knows a platform: it speaks ``Surface`` and ``Reply`` only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import events as ev
from bot.agents.base import AgentBackend, Attachment, Conversation, Turn, media_type
from bot.config import Settings
from bot.datasets.model import (
    CHART_KINDS,
    ChartKind,
    ChartSpec,
    DatasetError,
    DatasetMeta,
    DatasetStore,
    ExportFormat,
    SortSpec,
)
from bot.help import COMMANDS
from bot.live import Coalescer
from bot.messages import ActionInvoked, IncomingMessage, MessageRef, ThreadKey
from bot.presenter import file_key, present_datasets, present_files, present_page, present_turn
from bot.reply import Reply, notice
from bot.storage.base import StateStore
from bot.surface import Surface, SurfaceError
from bot.tokens import TokenSigner
from bot.workspace import UnsafePath, Workspace, safe_filename

log = logging.getLogger(__name__)

NOT_OWNER = (
    "This conversation belongs to {owner}. Mention me in a new message (outside this thread) "
    "to start your own."
)
BAD_TOKEN = "That button is no longer valid here. Ask again in this thread to get fresh results."
CRASHED = "Something went wrong on our side while running this turn (details are in the bot's log). " \
          "Send your message again, or start a new thread if it keeps failing."


@dataclass
class _Queued:
    message: IncomingMessage
    surface: Surface
    done: asyncio.Future[None]


@dataclass(frozen=True)
class _View:
    """The dataset page a thread looked at last: what typed ``next`` / ``sort`` continue from."""

    dataset: str
    page: int
    sort: SortSpec | None


class Engine:
    """Routes messages and actions; owns per-thread ordering. One instance per process."""

    def __init__(
        self,
        settings: Settings,
        state: StateStore,
        datasets: DatasetStore,
        agent: AgentBackend,
        signer: TokenSigner | None = None,
        owner_name: Callable[[str], str] | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.datasets = datasets
        self.agent = agent
        self.signer = signer or TokenSigner(settings.secret())
        self._owner_name = owner_name or (lambda user: user)
        self._queues: dict[ThreadKey, deque[_Queued]] = {}
        self._workers: dict[ThreadKey, asyncio.Task[None]] = {}
        self._turns: dict[ThreadKey, asyncio.Task[None]] = {}
        self._views: dict[ThreadKey, _View] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, sweep_every: float = 600.0) -> None:
        """Start background upkeep (the dataset sweeper). Call from a running loop."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(sweep_every), name="dataset-sweeper")

    async def _sweep_forever(self, every: float) -> None:
        while True:
            try:
                removed = await self.datasets.sweep()
                if removed:
                    log.info("swept %d expired datasets", removed)
            except Exception:
                log.exception("dataset sweep failed")
            await asyncio.sleep(every)

    async def aclose(self) -> None:
        """Cancel running turns, stop workers and release the agent and stores."""
        if self._sweeper:
            self._sweeper.cancel()
        for task in list(self._workers.values()):
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        if self._sweeper:
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.agent.aclose()
        await self.datasets.aclose()
        await self.state.aclose()

    # ---- messages --------------------------------------------------------------------------

    def submit(self, message: IncomingMessage, surface: Surface) -> asyncio.Future[None]:
        """Queue a message on its thread and return a future that resolves when it was handled.

        Call it in arrival order: messages of one thread run one at a time in that order, other
        threads run concurrently. The future never carries user-facing errors (those are shown in
        the thread); it fails only for bugs, which are also logged.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = message.thread
        self._queues.setdefault(key, deque()).append(_Queued(message, surface, done))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._drain(key), name=f"thread {key.digest}")
        return done

    async def handle(self, message: IncomingMessage, surface: Surface) -> None:
        await self.submit(message, surface)

    def cancel(self, thread: ThreadKey) -> bool:
        """Stop the running turn of a thread (Ctrl-C, a Stop button). True if one was running."""
        task = self._turns.get(thread)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def _drain(self, key: ThreadKey) -> None:
        queue = self._queues[key]
        try:
            while queue:
                item = queue.popleft()
                try:
                    await self._process(item.message, item.surface)
                except asyncio.CancelledError:
                    item.done.cancel()
                    raise
                except Exception as exc:
                    log.exception("message handling failed in thread %s", key.digest)
                    if not item.done.done():
                        item.done.set_exception(exc)
                    continue
                if not item.done.done():
                    item.done.set_result(None)
        finally:
            # Same synchronous step as the emptiness check: a submit cannot slip in between.
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)
            else:  # cancelled with work left: fail the waiters rather than hang them
                while queue:
                    queue.popleft().done.cancel()

    async def _process(self, message: IncomingMessage, surface: Surface) -> None:
        if message.event_id and not await self.state.claim_event(f"{message.thread.platform}:{message.event_id}"):
            log.info("dropping duplicate delivery %s", message.event_id)
            return
        conversation = await self.state.conversation(message.thread)
        text = message.text.strip()
        if conversation is None:
            if not message.mentioned:
                return  # a thread we are not part of
            conversation = await self.state.start_conversation(message.thread, message.user)
        elif message.user != conversation.owner and not self.settings.allow_participants:
            if message.mentioned:
                await surface.notify(message.user, notice(NOT_OWNER.format(owner=self._owner_name(conversation.owner))))
            return
        if message.resettable and text.lower() in ("new", "reset"):
            await self.agent.release(conversation)
            await self.state.reset_conversation(message.thread, message.user)
            self._views.pop(message.thread, None)
            await surface.post(notice("Started a fresh conversation. Earlier files and datasets stay in the old one."))
            return
        if not message.files and await self._command(text, message, conversation, surface):
            return
        await self._run_turn(conversation, message, surface)

    # ---- turns -----------------------------------------------------------------------------

    async def _run_turn(self, conversation: Conversation, message: IncomingMessage, surface: Surface) -> None:
        started = time.monotonic()
        events: list[ev.AgentEvent] = []
        workspace = Workspace(conversation.workspace).ensure()
        state = "working"

        def render() -> Reply:
            return present_turn(events, state, time.monotonic() - started)  # type: ignore[arg-type]

        live = await surface.start_live(render())
        coalescer = Coalescer(live.update, render, surface.live_interval)
        await _best_effort(surface.set_status("is working…"))
        uploaded: set[Path] = set()
        try:
            attachments, problems = await self._attachments_for(message, workspace, surface)
            for problem in problems:
                events.append(ev.Notice(f"Could not use the attached file {problem}", "warning"))
            turn = Turn(
                conversation=conversation,
                text=message.text,
                attachments=tuple(attachments),
                workspace=workspace,
                datasets=_Registrar(self.datasets, conversation),
            )
            task = asyncio.create_task(self._consume(turn, events, coalescer, surface, uploaded))
            self._turns[message.thread] = task
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise  # the worker itself is being cancelled
                state = "stopped"
                events.append(ev.Notice("Stopped. The conversation is ready for your next message.", "warning"))
            else:
                state = "failed" if any(isinstance(e, ev.TurnFailed) for e in events) else "done"
        except Exception:
            log.exception("turn crashed in conversation %s", conversation.id)
            events.append(ev.TurnFailed(CRASHED))
            state = "failed"
        finally:
            self._turns.pop(message.thread, None)
            await coalescer.close()
            await _best_effort(surface.set_status(None))
            try:
                await live.finish(render())
            except Exception:
                log.exception("could not show the end of the turn")
            await _best_effort(self.state.touch(conversation))

    async def _attachments_for(
        self, message: IncomingMessage, workspace: Workspace, surface: Surface
    ) -> tuple[list[Attachment], list[str]]:
        saved: list[Attachment] = []
        problems: list[str] = []
        for remote in message.files:
            try:
                data = await surface.download(remote, self.settings.max_upload_bytes)
                path = await workspace.write(remote.name, data)
            except SurfaceError as exc:
                problems.append(f"{remote.name}: {exc}")
                continue
            except Exception:
                log.exception("download of an attachment failed")
                problems.append(f"{remote.name}: the download failed")
                continue
            saved.append(Attachment(remote.name, path, len(data), remote.media_type or media_type(path)))
        return saved, problems

    async def _consume(
        self,
        turn: Turn,
        events: list[ev.AgentEvent],
        coalescer: Coalescer,
        surface: Surface,
        uploaded: set[Path],
    ) -> None:
        agen = self.agent.run(turn)
        try:
            async for event in agen:
                events.append(event)
                await coalescer.poke()
                match event:
                    case ev.FileProduced(path=path, name=name) if path not in uploaded:
                        uploaded.add(path)
                        await self._upload(surface, path, name, events)
                    case ev.DatasetProduced(dataset=meta):
                        await self._post_page(surface, turn.conversation.key, meta, 1, None)
                    case ev.TurnFailed():
                        break
                    case _:
                        pass
        finally:
            await agen.aclose()  # type: ignore[attr-defined]

    async def _upload(self, surface: Surface, path: Path, name: str, events: list[ev.AgentEvent]) -> None:
        try:
            await surface.upload(path, name=Path(name).name)
        except SurfaceError as exc:
            events.append(ev.Notice(f"Could not post {name} into the thread: {exc}", "warning"))
        except Exception:
            log.exception("upload of %s failed", name)
            events.append(ev.Notice(f"Could not post {name} into the thread.", "warning"))

    # ---- datasets: one implementation for buttons and typed commands ------------------------

    def _sealer(self, thread: ThreadKey) -> Callable[[dict[str, Any]], str]:
        return lambda payload: self.signer.seal(payload, context=thread.digest)

    def files_token(self, thread: ThreadKey) -> str:
        """The token of a "Files" button for ``thread`` (the owner check happens on click)."""
        return self._sealer(thread)({"k": "files"})

    async def _post_page(
        self,
        surface: Surface,
        thread: ThreadKey,
        meta: DatasetMeta,
        number: int,
        sort: SortSpec | None,
        replace: MessageRef | None = None,
    ) -> None:
        page = await self.datasets.page(meta.id, number, self.settings.page_size, sort)
        reply = present_page(page, self._sealer(thread))
        self._views[thread] = _View(meta.id, page.number, sort)
        if replace is not None:
            await surface.update(replace, reply)
        else:
            await surface.post(reply)

    async def _authorized(self, dataset_id: str, thread: ThreadKey, user: str) -> DatasetMeta:
        """The dataset if it belongs to this thread and ``user`` may see it; else ``DatasetError``.

        Unknown, foreign and forbidden ids all get the same message, so a probe learns nothing.
        """
        try:
            meta = await self.datasets.get(dataset_id)
        except DatasetError:
            raise
        if meta.thread != thread or (user != meta.owner and not self.settings.allow_participants):
            raise DatasetError(BAD_TOKEN)
        return meta

    async def act(self, action: ActionInvoked, surface: Surface) -> None:
        """Carry out a button click. Every value is verified; failures become an ephemeral notice."""
        payload = self.signer.open(action.token, context=action.thread.digest)
        try:
            if payload is None:
                raise DatasetError(BAD_TOKEN)
            await self._act(payload, action.thread, action.user, surface, action.message)
        except (DatasetError, UnsafePath) as exc:
            await surface.notify(action.user, notice(str(exc), "warning"))
        except SurfaceError as exc:
            await _best_effort(surface.notify(action.user, notice(f"That did not work: {exc}", "error")))
        except Exception:
            log.exception("action %s failed", action.kind)
            failed = notice("That did not work; details are in the log.", "error")
            await _best_effort(surface.notify(action.user, failed))

    async def _act(
        self,
        payload: dict[str, Any],
        thread: ThreadKey,
        user: str,
        surface: Surface,
        message: MessageRef | None,
    ) -> None:
        kind = payload.get("k")
        if kind in ("files", "file"):
            conversation = await self.state.conversation(thread)
            if conversation is None or (user != conversation.owner and not self.settings.allow_participants):
                raise DatasetError("Only the owner of this conversation can see its workspace.")
            workspace = Workspace(conversation.workspace)
            if kind == "files":
                await surface.notify(user, present_files(workspace.files(), self._sealer(thread)))
            else:
                key = payload.get("f")
                found = next((f for f in workspace.files() if file_key(f.name) == key), None)
                if found is None:
                    raise DatasetError("That file is no longer in the workspace.")
                path = found.path
                await surface.upload(path, name=path.name, title=workspace.relative(path))
            return
        meta = await self._authorized(str(payload.get("d", "")), thread, user)
        names = [c.name for c in meta.columns]

        def column(index: object) -> str:
            if not isinstance(index, int) or not 0 <= index < len(names):
                raise DatasetError(BAD_TOKEN)
            return names[index]

        if kind in ("page", "sort"):
            sort = SortSpec(column(payload["c"]), bool(payload.get("r"))) if "c" in payload else None
            await self._post_page(surface, thread, meta, int(payload.get("p", 1)), sort, replace=message)
        elif kind == "chart":
            chart_kind, x, y = payload["c"]
            if chart_kind not in CHART_KINDS:
                raise DatasetError(BAD_TOKEN)
            await self._chart(surface, thread, meta, ChartSpec(chart_kind, column(x), None if y is None else column(y)))
        elif kind == "download":
            fmt: ExportFormat = "parquet" if payload.get("f") == "parquet" else "csv"
            conversation = await self.state.conversation(thread)
            assert conversation is not None
            out = Workspace(conversation.workspace).ensure().resolve(f"exports/{safe_filename(meta.name)}.{fmt}")
            out.parent.mkdir(parents=True, exist_ok=True)
            await self.datasets.export(meta.id, fmt, out)
            await surface.upload(out, name=out.name, title=f"{meta.name} ({meta.rows:,} rows, {fmt.upper()})")
        else:
            raise DatasetError(BAD_TOKEN)

    async def _chart(self, surface: Surface, thread: ThreadKey, meta: DatasetMeta, spec: ChartSpec) -> None:
        conversation = await self.state.conversation(thread)
        assert conversation is not None
        name = "-".join(safe_filename(p) for p in (meta.name, spec.kind, spec.y or spec.x))
        out = Workspace(conversation.workspace).ensure().resolve(f"charts/{name}.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        await self.datasets.chart(meta.id, spec, out)
        await surface.upload(out, name=out.name, title=f"chart: {meta.name} {spec.kind} {spec.y or spec.x}")

    # ---- typed commands ---------------------------------------------------------------------

    async def _command(
        self, text: str, message: IncomingMessage, conversation: Conversation, surface: Surface
    ) -> bool:
        """Run ``text`` if it is a command; False if it is for the agent."""
        words = text.split()
        if not words:
            return False
        head = words[0].lower()
        thread, user = message.thread, message.user
        if head == "help" and len(words) == 1:
            await surface.post(Reply((notice(COMMANDS).blocks[0],), "Commands"))
            return True
        if head == "files" and len(words) == 1:
            await surface.notify(user, present_files(Workspace(conversation.workspace).files(), self._sealer(thread)))
            return True
        if head == "datasets" and len(words) == 1:
            await surface.post(present_datasets(await self.datasets.list(thread)))
            return True
        handler = _COMMANDS.get(head)
        if handler is None or not _COMMAND_SHAPES[head].fullmatch(text.strip()):
            return False
        try:
            await handler(self, words[1:], thread, user, surface)
        except DatasetError as exc:
            await surface.post(notice(str(exc), "warning"))
        return True

    async def _latest(self, thread: ThreadKey, user: str) -> tuple[DatasetMeta, _View]:
        view = self._views.get(thread)
        if view is None:
            live = await self.datasets.list(thread)
            if not live:
                raise DatasetError("There is no dataset in this conversation yet.")
            view = _View(live[-1].id, 1, None)
        return await self._authorized(view.dataset, thread, user), view

    async def _cmd_move(self, args: list[str], thread: ThreadKey, user: str, surface: Surface, step: int) -> None:
        meta, view = await self._latest(thread, user)
        await self._post_page(surface, thread, meta, max(1, view.page + step), view.sort)

    async def _cmd_page(self, args: list[str], thread: ThreadKey, user: str, surface: Surface) -> None:
        meta, view = await self._latest(thread, user)
        await self._post_page(surface, thread, meta, max(1, int(args[0])), view.sort)

    async def _cmd_sort(self, args: list[str], thread: ThreadKey, user: str, surface: Surface) -> None:
        meta, _ = await self._latest(thread, user)
        column, desc = _column_arg(meta, args)
        await self._post_page(surface, thread, meta, 1, SortSpec(column, desc))

    async def _cmd_download(self, args: list[str], thread: ThreadKey, user: str, surface: Surface) -> None:
        meta, _ = await self._latest(thread, user)
        fmt = args[0].lower() if args else "csv"
        await self._act({"k": "download", "d": meta.id, "f": fmt}, thread, user, surface, None)

    async def _cmd_chart(self, args: list[str], thread: ThreadKey, user: str, surface: Surface) -> None:
        meta, _ = await self._latest(thread, user)
        kind = args[0].lower()
        if kind not in CHART_KINDS:
            raise DatasetError(f"Chart kinds are {', '.join(CHART_KINDS)}.")
        names = [_find_column(meta, a) for a in args[1:3]]
        chart_kind: ChartKind = kind
        await self._chart(surface, thread, meta, ChartSpec(chart_kind, names[0], names[1] if len(names) > 1 else None))


def _find_column(meta: DatasetMeta, name: str) -> str:
    for column in meta.columns:
        if column.name == name:
            return column.name
    for column in meta.columns:
        if column.name.lower() == name.lower():
            return column.name
    raise DatasetError(f"No column {name!r} in {meta.name}. Columns: {', '.join(c.name for c in meta.columns)}")


def _column_arg(meta: DatasetMeta, args: list[str]) -> tuple[str, bool]:
    desc = args[-1].lower() in ("desc", "descending") if len(args) > 1 else False
    name = " ".join(args[:-1] if len(args) > 1 and args[-1].lower() in ("desc", "asc", "descending",
                                                                         "ascending") else args)
    return _find_column(meta, name), desc


_Handler = Callable[[Engine, list[str], ThreadKey, str, Surface], Awaitable[None]]
_COMMANDS: dict[str, _Handler] = {
    "next": lambda e, a, t, u, s: e._cmd_move(a, t, u, s, 1),
    "n": lambda e, a, t, u, s: e._cmd_move(a, t, u, s, 1),
    "prev": lambda e, a, t, u, s: e._cmd_move(a, t, u, s, -1),
    "p": lambda e, a, t, u, s: e._cmd_move(a, t, u, s, -1),
    "page": Engine._cmd_page,
    "sort": Engine._cmd_sort,
    "chart": Engine._cmd_chart,
    "download": Engine._cmd_download,
}
# Commands must look like commands, so a message like "sort the table by revenue" reaches the agent.
_COMMAND_SHAPES: dict[str, re.Pattern[str]] = {
    "next": re.compile(r"next", re.I),
    "n": re.compile(r"n", re.I),
    "prev": re.compile(r"prev(ious)?", re.I),
    "p": re.compile(r"p", re.I),
    "page": re.compile(r"page\s+\d{1,9}", re.I),
    "sort": re.compile(r"sort\s+\S+(\s+(asc|desc|ascending|descending))?", re.I),
    "chart": re.compile(r"chart\s+(" + "|".join(CHART_KINDS) + r")\s+\S+(\s+\S+)?", re.I),
    "download": re.compile(r"download(\s+(csv|parquet))?", re.I),
}


class _Registrar:
    """``DatasetRegistrar`` bound to one conversation's thread and owner."""

    def __init__(self, store: DatasetStore, conversation: Conversation) -> None:
        self._store = store
        self._conversation = conversation

    async def register_frame(self, frame: Any, name: str, source: str | None = None) -> DatasetMeta:
        c = self._conversation
        return await self._store.register_frame(frame, name=name, thread=c.key, owner=c.owner, source=source)

    async def register_file(self, path: Path, name: str) -> DatasetMeta | None:
        c = self._conversation
        return await self._store.register_file(path, name=name, thread=c.key, owner=c.owner)

    async def list(self) -> list[DatasetMeta]:
        return list(await self._store.list(self._conversation.key))


async def _best_effort(call: Awaitable[Any]) -> None:
    try:
        await call
    except Exception:
        log.warning("best-effort call failed", exc_info=True)
