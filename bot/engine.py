"""The router: threads to conversations, one turn at a time per thread, actions on datasets.

Surfaces call ``submit`` for every message (in arrival order) and ``act`` for every button. The
engine finds or starts the conversation, runs the agent turn while a live message shows it, uploads
files, posts a pageable message per dataset, and answers text commands with the same code paths the
buttons use. Nothing here knows a platform: it speaks ``Surface`` and ``Reply`` only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot import events as ev
from bot.actions import LAST_TURN, Actions, WorkflowCommands
from bot.agents.backend import AgentBackend
from bot.commands import parse_command
from bot.config import Settings
from bot.conversation import Attachment, Conversation, Turn, media_type
from bot.conversation_moves import VARIABLES_RESET, ConversationMoves
from bot.datasets.model import DatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.file_posting import TooLargeToPost, post_file
from bot.intake import TurnIntake
from bot.intent_tokens import IntentSealer
from bot.intents import Intent, LinkPurpose, Stop
from bot.journal import Addressable, TurnInFlight
from bot.live_turn import LiveTurn
from bot.message_records import MessageRecords
from bot.messages import ActionInvoked, IncomingMessage, ThreadKey
from bot.presenter import CODE_LINES, TurnState, feedback_buttons, files_button, present_turn, stop_button
from bot.recovery import TurnJournal, end_interrupted
from bot.reply import Reply, notice
from bot.storage.base import StateStore
from bot.surface import Surface, SurfaceError, best_effort
from bot.tokens import TokenSigner
from bot.turn_activity import TurnActivity, TurnWatchers, step_titles
from bot.turn_outcome import outcome
from bot.web_access import WorkspaceAccess
from bot.workflows.record import RunRecord
from bot.workspace import CODE_DIR, Workspace
from bot.workspace_sync import WorkspaceSync

log = logging.getLogger(__name__)

NOT_OWNER = (
    "This conversation belongs to the person who started it. Mention me in a new message "
    "(outside this thread) to start your own."
)
RESTARTING = "I am restarting and did not get to this message. Send it again in a minute."
CRASHED = "Something went wrong on our side while running this turn (details are in the bot's log). " \
          "Send your message again, or start a new thread if it keeps failing."


@dataclass(frozen=True)
class TurnOutcome:
    """How a turn run by ``Engine.run_turn`` ended, and every event it produced, in order."""

    state: Literal["done", "failed", "stopped"]
    events: tuple[ev.AgentEvent, ...]


@dataclass(frozen=True)
class _Queued:
    message: IncomingMessage
    surface: Surface
    done: asyncio.Future[None]


class Engine:
    """Routes messages and actions; owns per-thread ordering. One instance per process."""

    def __init__(
        self,
        settings: Settings,
        state: StateStore,
        datasets: DatasetStore,
        agent: AgentBackend,
        signer: TokenSigner | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.datasets = datasets
        self.agent = agent
        tokens = IntentSealer(signer or TokenSigner(settings.secret()))
        self.actions = Actions(settings, state, datasets, tokens, self._cancel_anywhere)
        self._records = MessageRecords(state, settings.retention)
        #: Turn starts, steps and ends, per thread, for watchers such as the browser's workspace page.
        self._activity = TurnWatchers()
        #: Set by composition when turns are shared by several replicas (``DATATHREAD_STORE=aws``):
        #: surfaces then hand messages to it instead of ``submit``.
        self._intake: TurnIntake | None = None
        self.workspace_sync: WorkspaceSync | None = None
        #: Set by composition when kernels are per replica: tells a thread its variables were reset.
        self.moves: ConversationMoves | None = None
        self._queues: dict[ThreadKey, deque[_Queued]] = {}
        self._workers: dict[ThreadKey, asyncio.Task[None]] = {}
        self._turns: dict[ThreadKey, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self._turned_away: set[asyncio.Future[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, sweep_every: float = 600.0) -> None:
        """Start background upkeep (the dataset sweeper). Call from a running loop."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(sweep_every), name="dataset-sweeper")
        if self._intake is not None:
            self._intake.start()

    async def _sweep_forever(self, every: float) -> None:
        while True:
            try:
                await self.datasets.sweep()  # the store logs what it removed
            except Exception:
                log.exception("dataset sweep failed")
            await asyncio.sleep(every)

    async def show_dataset(self, surface: Surface, thread: ThreadKey, dataset_id: str, page: int = 1) -> None:
        """Post page ``page`` of a dataset the engine itself produced for ``thread`` (a workflow's
        result); ``DatasetError`` says why it cannot be shown (expired, unknown)."""
        meta = await self.datasets.get(dataset_id)
        await self.actions.post_page(surface, thread, meta, page)

    async def workflow_runs(self, limit: int = 20) -> Sequence[RunRecord]:
        """The most recent workflow runs, newest first."""
        return await self.state.workflow_runs(limit=limit)

    @property
    def workflows(self) -> WorkflowCommands | None:
        """What runs workflows for threads (``run NAME``, Workflow Builder); ``None`` if not set up."""
        return self.actions.workflows

    @property
    def idle(self) -> bool:
        """No thread has a message queued or a turn running."""
        return not self._workers

    @property
    def accepting(self) -> bool:
        """False once ``shutdown`` began: surfaces answer new requests with 503 so the platform
        delivers them again later (to this process after a restart, or to another replica)."""
        return not self._closing

    async def shutdown(self, grace: float) -> None:
        """Stop taking new work, then end what is in flight the way a Stop does: every running turn
        is cancelled and ends with its "Stopped" note and cleared status; messages still waiting
        behind a turn are told to be sent again. Waits at most ``grace`` seconds for that clean-up;
        ``aclose`` (which cancels whatever is left) follows."""
        self._closing = True
        waiting: list[_Queued] = []
        for queue in self._queues.values():
            waiting += queue
            queue.clear()
        pending = {*self._workers.values(), *(asyncio.ensure_future(self._turn_away(item)) for item in waiting)}
        stopped: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while pending and loop.time() < deadline:
            # A message that was past the queue but not yet in its turn starts one meanwhile: stop
            # that too, but cancel each turn once (a second cancel would cut its clean-up short).
            for task in set(self._turns.values()) - stopped:
                stopped.add(task)
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=min(0.1, max(0.0, deadline - loop.time())))
        if pending:
            log.warning("shutdown: %d turn(s) still ending after %g s; cancelling them", len(pending), grace)

    async def _turn_away(self, item: _Queued) -> None:
        """Tell the sender of a message that will not run now to send it again."""
        await best_effort(item.surface.post(notice(RESTARTING, "warning")))
        if not item.done.done():
            item.done.set_result(None)

    async def aclose(self) -> None:
        """Cancel running turns, stop workers and release the agent and stores."""
        if self._intake is not None:
            await self._intake.aclose()
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
        if self._closing:  # the edge answers 503 by now; this one slipped in (or came by Socket Mode)
            task = asyncio.ensure_future(self._turn_away(_Queued(message, surface, done)))
            self._turned_away.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(self._turned_away.discard)
            return done
        key = message.thread
        if self.running(key) and not message.files and isinstance(parse_command(message.text), Stop):
            # A typed ``stop`` must not wait in the queue behind the very turn it stops.
            task = asyncio.ensure_future(self._stop_now(message, surface, done))
            self._turned_away.add(task)
            task.add_done_callback(self._turned_away.discard)
            return done
        self._queues.setdefault(key, deque()).append(_Queued(message, surface, done))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._drain(key), name=f"thread {key.digest}")
        return done

    async def _stop_now(self, message: IncomingMessage, surface: Surface, done: asyncio.Future[None]) -> None:
        try:
            if not message.event_id or await self.state.claim_event(f"{message.thread.platform}:{message.event_id}"):
                await self.actions.request(Stop(), message.thread, message.user, surface, typed=True)
        finally:
            if not done.done():
                done.set_result(None)

    def running(self, thread: ThreadKey) -> bool:
        """Whether ``thread`` has a turn running now."""
        task = self._turns.get(thread)
        return task is not None and not task.done()

    async def request(self, intent: Intent, thread: ThreadKey, user: str, surface: Surface) -> None:
        """Carry out an intent a platform event asked for (Slack's own Stop button of an agent
        session): the platform vouches for the user and thread, so there is no token, but the
        access checks are those of a click; a refusal is told to ``user`` alone. Never raises."""
        await self.actions.request(intent, thread, user, surface)

    async def act(self, action: ActionInvoked, surface: Surface) -> None:
        """Carry out a button click (see ``Actions.act``); never raises, every failure is shown."""
        await self.actions.act(action, surface)

    @property
    def intake(self) -> TurnIntake | None:
        """Where surfaces hand messages when turns are shared by replicas (``DATATHREAD_STORE=aws``);
        ``None`` on one process, where surfaces call ``submit``."""
        return self._intake

    @intake.setter
    def intake(self, intake: TurnIntake | None) -> None:
        self._intake = intake

    @property
    def activity(self) -> TurnWatchers:
        """Where a turn's start, steps and end are published for watchers (the workspace page)."""
        return self._activity

    @property
    def message_records(self) -> MessageRecords:
        """Which turn a sent message answers and which card carries a token, shared by replicas
        and kept across restarts (for clicks and verdicts that name only one of the two)."""
        return self._records

    @property
    def web(self) -> WorkspaceAccess:
        """Workspace links and browser sessions (the web adapter's one way in)."""
        return self.actions.web

    def seal(self, thread: ThreadKey, intent: Intent) -> str:
        """A button token for ``intent`` that works in ``thread`` only (access is checked on click)."""
        return self.actions.tokens.seal(thread, intent)

    async def file_link(self, thread: ThreadKey, path: Path, *, purpose: LinkPurpose,
                        ttl: float) -> str | None:
        """A token that opens ``path`` (in the thread's workspace) for ``ttl`` seconds, as a download
        link or a consent offer's context; ``None`` if the thread has no conversation."""
        return await self.actions.file_link(thread, path, purpose=purpose, ttl=ttl)

    async def open_file_link(self, token: str, *, purpose: LinkPurpose,
                             thread: ThreadKey | None = None) -> Path | None:
        """The file a link token opens, or ``None`` if it is forged, expired, of another purpose or
        thread (when given) or conversation, or the file is gone."""
        return await self.actions.open_file_link(token, purpose=purpose, thread=thread)

    async def claim_event(self, key: str) -> bool:
        """True the first time ``key`` (a platform delivery id) is claimed, across restarts."""
        return await self.state.claim_event(key)

    async def open_conversation(self, thread: ThreadKey, user: str) -> tuple[Conversation, bool]:
        """The thread's conversation, started for ``user`` if there is none; and whether it existed."""
        existing = await self.state.conversation(thread)
        return await self.state.start_conversation(thread, user), existing is not None

    def cancel(self, thread: ThreadKey) -> bool:
        """Stop the running turn of a thread (Ctrl-C, a Stop button). True if one was running."""
        task = self._turns.get(thread)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def share_workspaces(self, sync: WorkspaceSync) -> None:
        """Keep workspaces in ``sync`` (pulled before each turn and file action, pushed after each
        code run that made files and after each turn)."""
        self.workspace_sync = self.actions.workspace_sync = sync

    async def _sync_workspace(self, direction: str, conversation: Conversation, workspace: Workspace) -> None:
        if self.workspace_sync is None:
            return
        try:
            if direction == "pull":
                await self.workspace_sync.pull(conversation.id, workspace)
            else:
                await self.workspace_sync.push(conversation.id, workspace)
        except Exception:  # the turn still runs on what is here; the log says what failed
            log.exception("workspace %s failed for conversation %s", direction, conversation.id)

    async def _cancel_anywhere(self, thread: ThreadKey) -> bool:
        """``cancel`` here, or (with a shared intake) on the replica running the thread's turn."""
        if self.cancel(thread):
            return True
        return self._intake is not None and await self._intake.cancel_remote(thread)

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

    async def end_interrupted(self, platform: str, surface_for: Callable[[TurnInFlight], Surface | None]) -> int:
        """At start-up: end the turns of ``platform`` a crash cut off (see ``bot.recovery``).

        Not with a shared turn queue: the journal is then every replica's, and the queue itself hands
        a dead replica's turn to a live one, which ends it (a replica starting must not end turns
        other replicas are running)."""
        if self._intake is not None:
            return 0
        return await end_interrupted(self.state, platform, surface_for)

    async def _process(self, message: IncomingMessage, surface: Surface) -> None:
        if message.event_id and not await self.state.claim_event(_event_key(message)):
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
                await best_effort(surface.notify(message.user, notice(NOT_OWNER)))
            return
        if message.resettable and text.lower() in ("new", "reset"):
            await self.agent.release(conversation)
            await self.state.reset_conversation(message.thread, message.user)
            self.actions.forget(message.thread)
            await surface.post(notice("Started a fresh conversation. Earlier files and datasets stay in the old one."))
            return
        if not message.files and await self.actions.command(text, message.thread, message.user, surface):
            return
        await self._run_turn(conversation, message, surface)

    # ---- turns -----------------------------------------------------------------------------

    async def _run_turn(self, conversation: Conversation, message: IncomingMessage, surface: Surface) -> None:
        async def attachments(workspace: Workspace, events: list[ev.AgentEvent]) -> tuple[Attachment, ...]:
            saved, problems = await self._attachments_for(message, workspace, surface)
            for problem in problems:
                events.append(ev.Notice(f"Could not use the attached file {problem}", "warning"))
            return tuple(saved)

        await self._live_turn(conversation, message.thread, surface, message.text, attachments, self.agent,
                              message=message)

    async def run_turn(
        self,
        conversation: Conversation,
        surface: Surface,
        text: str,
        *,
        attachments: Sequence[Attachment] = (),
        agent: AgentBackend | None = None,
        intro: Sequence[ev.AgentEvent] = (),
    ) -> TurnOutcome:
        """Run one turn of ``conversation`` outside any thread queue, shown live on ``surface`` exactly
        as a chat turn is (live message, uploads, dataset pages), and return how it ended.

        ``agent`` answers instead of the engine's backend (a workflow's ``run`` step runs its code on the
        executor); ``intro`` events open the live message (a workflow step's name).
        ``cancel(conversation.key)`` stops it (the outcome is then ``stopped``). Never raises
        for a failing turn: a crash is an outcome ``failed`` with a ``TurnFailed`` event, and logged.
        """
        async def given(workspace: Workspace, events: list[ev.AgentEvent]) -> tuple[Attachment, ...]:
            events.extend(intro)
            return tuple(attachments)

        return await self._live_turn(conversation, conversation.key, surface, text, given, agent or self.agent)

    async def _live_turn(
        self,
        conversation: Conversation,
        thread: ThreadKey,
        surface: Surface,
        text: str,
        attachments: Callable[[Workspace, list[ev.AgentEvent]], Awaitable[tuple[Attachment, ...]]],
        agent: AgentBackend,
        *,
        message: IncomingMessage | None = None,
    ) -> TurnOutcome:
        """One turn shown live. ``message``: the chat message it answers, journaled while the turn
        runs so a restart can end it (workflow steps have none)."""
        started = time.monotonic()
        events: list[ev.AgentEvent] = []
        workspace = Workspace(conversation.workspace).ensure()
        await self._sync_workspace("pull", conversation, workspace)
        if self.moves is not None and await self.moves.arrived(conversation):
            events.append(ev.Notice(VARIABLES_RESET, "warning"))
        state: TurnState = "working"

        def render() -> Reply:
            return present_turn(events, state, time.monotonic() - started, surface.output_chars)

        await best_effort(surface.set_status("is working…"))
        turn_id = uuid.uuid4().hex[:12]
        await best_effort(self.state.put_value(LAST_TURN, thread.digest, turn_id))

        def seal(intent: Intent) -> str:
            return self.seal(thread, intent)

        live = LiveTurn(surface.live_transport(), render,
                        end_buttons=files_button(seal, workspace=surface.private_notices),
                        on_stop=lambda: self.cancel(thread), stop_buttons=stop_button(seal),
                        feedback=lambda: feedback_buttons(seal, turn_id) if state == "done" else None)
        await live.start()
        self._activity.publish(TurnActivity(thread, "working"))
        journal = None
        if message is not None and isinstance(surface, Addressable):
            # After the first message shows, so a restart can end it; a redelivery then runs again.
            # With a shared turn queue the queue's turn records carry it (the replica that receives a
            # dead replica's turn ends its message); on one process the state store does (start-up does).
            journal = TurnJournal(self.state if self._intake is None else self._intake.journal, TurnInFlight(
                thread, message.user, time.time(), _event_key(message) if message.event_id else None,
                address=surface.address()))
            await best_effort(journal.note(live.message_ids))
        uploaded: set[Path] = set()
        try:
            turn = Turn(
                conversation=conversation,
                text=text,
                attachments=await attachments(workspace, events),
                workspace=workspace,
                datasets=ThreadDatasets(self.datasets, conversation),
            )
            task = asyncio.create_task(self._consume(agent, turn, events, live, surface, uploaded, journal))
            self._turns[thread] = task
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise  # the worker itself is being cancelled
                state = "stopped"
                events.append(ev.Notice("Stopped. The conversation is ready for your next message.", "warning"))
            else:
                state = outcome(events)
        except Exception:
            log.exception("turn crashed in conversation %s", conversation.id)
            events.append(ev.TurnFailed(CRASHED))
            state = "failed"
        finally:
            self._turns.pop(thread, None)
            await self._sync_workspace("push", conversation, workspace)  # before the Files button shows
            self._activity.publish(TurnActivity(thread, state, step_titles(events)))
            await best_effort(surface.set_status(None))
            try:
                await live.finish()  # a platform refusing the end is reported in the thread by the policy
            except Exception:  # a bug while presenting must not stop this thread's queue
                log.exception("could not show the end of the turn")
            if journal is not None:
                await best_effort(journal.end())
            await best_effort(self.state.touch(conversation))
        return TurnOutcome(state, tuple(events))

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
        agent: AgentBackend,
        turn: Turn,
        events: list[ev.AgentEvent],
        live: LiveTurn[Any],
        surface: Surface,
        uploaded: set[Path],
        journal: TurnJournal | None = None,
    ) -> None:
        agen = agent.run(turn)
        try:
            async for event in agen:
                events.append(event)
                await live.changed()
                if isinstance(event, ev.CodeStarted):  # a new step for anyone watching the thread
                    self._activity.publish(TurnActivity(turn.conversation.key, "working", step_titles(events)))
                if journal is not None:
                    await best_effort(journal.note(live.message_ids))
                match event:
                    case ev.FileProduced(path=path, name=name) if path not in uploaded:
                        # A run's files are announced once it has made them: mirror them now, so a
                        # replica dying later in the turn loses at most the run in progress.
                        await self._sync_workspace("push", turn.conversation, turn.workspace)
                        uploaded.add(path)
                        await self._upload(surface, path, name, events)
                    case ev.DatasetProduced(dataset=meta):
                        await self.actions.post_page(surface, turn.conversation.key, meta, 1)
                    case ev.CodeStarted(code=code) if code.count("\n") >= CODE_LINES:
                        # The message shows the first lines; the whole code stays readable in the workspace.
                        step = sum(isinstance(e, ev.CodeStarted) for e in events)
                        saved = await turn.workspace.write(f"step-{step}.py", code.encode(), folder=CODE_DIR)
                        events.append(ev.Notice(f"Full code ({code.count(chr(10)) + 1} lines): "
                                                f"{turn.workspace.relative(saved)} (see `files`)"))
                        await live.changed()
                    case ev.TurnFailed():
                        break
                    case _:
                        pass
        finally:
            await agen.aclose()  # type: ignore[attr-defined]

    async def _upload(self, surface: Surface, path: Path, name: str, events: list[ev.AgentEvent]) -> None:
        try:
            await post_file(surface, path, name=Path(name).name, limit=self.settings.max_post_bytes)
        except TooLargeToPost as exc:
            events.append(ev.Notice(str(exc), "warning"))
        except SurfaceError as exc:
            events.append(ev.Notice(f"Could not post {name} into the thread: {exc}", "warning"))
        except Exception:
            log.exception("upload of %s failed", name)
            events.append(ev.Notice(f"Could not post {name} into the thread.", "warning"))


def _event_key(message: IncomingMessage) -> str:
    """The claim key of a message's delivery: platform ids are only unique per platform."""
    return f"{message.thread.platform}:{message.event_id}"
