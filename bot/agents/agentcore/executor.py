"""``CodeExecutor`` on an Amazon Bedrock AgentCore Code Interpreter session, one per conversation.

The session id is kept in memory and in the ``StateStore`` (namespace ``agentcore-session``), so a
restarted process reuses the conversation's session while it lives. Files move both ways by name,
relative to the session's working directory: workspace files the session does not have yet (the
user's attachments) are written with ``writeFiles`` before code runs, and files the code created
or changed are found with ``listFiles`` and fetched with ``readFiles`` into the workspace after it
runs. What the session holds is tracked as ``{name: size}``; a file rewritten with the same size
is therefore not fetched again (listFiles gives no modification time). Files too large to copy are
tracked the same way, so their warning is given once, not on every run; our own folders
(``exports/``, ``charts/``, ``code/``: dataset exports, drawn charts, saved code steps) are never
copied into the session.

When the session has expired (``ResourceNotFoundException``), a new one is started, every
workspace file is written back, the code is run again and a ``Notice`` says variables were lost.
``aclose`` does not stop sessions (a restarted process reuses them; they time out on their own);
``release`` does.

A run that is abandoned (the turn was stopped or cancelled) is stopped server-side with the
``stopTask`` tool when the service told us its task id (``structuredContent.taskId``, sent with
``taskStatus: working`` while it runs): closing our stream alone would leave the code running in
the session, holding it for the next turn. The stop is sent in the background so "Stopped" is
shown at once; ``aclose`` waits briefly for stops still on their way. botocore's service model
(``bedrock-agentcore`` 2024-02-28) has ``stopTask`` take ``taskId`` and lets any result carry
``structuredContent.taskId`` / ``taskStatus``, but nothing says whether ``executeCode`` reports its
task while it runs. A run abandoned before any task id came is therefore ended by stopping its
whole session (the only sure way): the conversation's next run starts a new session with the
workspace files written back, and a notice says earlier variables are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from bot.agents.agentcore.results import code_error, environment_failure, is_expired, save_into, sizes, text_blocks
from bot.agents.aws import StreamFailed, ThreadedStream, aws_client
from bot.agents.backend import announce_files
from bot.agents.converse.config import SYSTEM_INTERPRETER, ConverseConfig
from bot.conversation import Conversation, Turn
from bot.events import AgentEvent, CodeOutput, Notice
from bot.workspace import OWN_FOLDERS, WorkspaceFile, human_size

if TYPE_CHECKING:
    from bot.storage.base import StateStore

log = logging.getLogger(__name__)

SESSION_NAMESPACE = "agentcore-session"
#: Per-call inline transfer limit of writeFiles / readFiles (AgentCore documents 100 MB inline).
MAX_FILE_BYTES = 100_000_000
_UPLOAD_BATCH_BYTES = 20_000_000
_MAX_FETCH = 50
_LIST_DEPTH = 3
_SKIP_DIRS = frozenset({"__pycache__", "node_modules", ".ipynb_checkpoints"})
RESTARTED = (
    "The code environment had expired and was restarted: workspace files were restored, "
    "but variables from earlier steps are gone."
)
ENDED = (
    "The stopped code could only be ended by restarting the code environment: workspace files were "
    "restored, but variables from earlier steps are gone."
)


@dataclass
class _Session:
    session_id: str
    synced: dict[str, int] = field(default_factory=dict)  # what the session holds: name -> size
    skipped: dict[str, int] = field(default_factory=dict)  # too large to copy (either way): name -> size


class AgentCoreExecutor:
    """Runs a conversation's code in its AgentCore Code Interpreter session (see module doc)."""

    def __init__(
        self,
        state: StateStore,
        *,
        interpreter_id: str = SYSTEM_INTERPRETER,
        session_timeout: int = 3600,
        region: str | None = None,
        read_timeout: float = 900.0,
        connect_timeout: float = 10.0,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.state = state
        self.interpreter_id = interpreter_id
        self.session_timeout = session_timeout
        self.region = region
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.max_file_bytes = max_file_bytes
        self._sessions: dict[str, _Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._client: Any = None
        self._client_lock = asyncio.Lock()
        self._stopping: set[asyncio.Task[None]] = set()
        #: Conversation id -> the session ended because a stopped run named no task (see module doc).
        self._abandoned: dict[str, str] = {}

    @classmethod
    def from_config(cls, config: ConverseConfig, state: StateStore) -> AgentCoreExecutor:
        # Code may run for minutes: the read timeout covers a whole run, not the model's pace.
        return cls(state, interpreter_id=config.interpreter_id, session_timeout=config.session_timeout,
                   region=config.region, read_timeout=max(config.read_timeout, 900.0),
                   connect_timeout=config.connect_timeout)

    # -- AWS calls ------------------------------------------------------------------------------

    async def _aws(self) -> Any:
        async with self._client_lock:
            if self._client is None:
                self._client = await asyncio.to_thread(self._make_client)
            return self._client

    def _make_client(self) -> Any:
        return aws_client("bedrock-agentcore", region=self.region, read_timeout=self.read_timeout,
                          connect_timeout=self.connect_timeout, attempts=3)

    async def _invoke(self, session_id: str, name: str, arguments: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The ``result`` events of one ``invoke_code_interpreter`` call, as they arrive."""
        client = await self._aws()

        def call() -> Any:
            return client.invoke_code_interpreter(
                codeInterpreterIdentifier=self.interpreter_id, sessionId=session_id,
                name=name, arguments=arguments,
            )["stream"]

        try:
            with ThreadedStream(call, name="agentcore-stream") as stream:
                async for event in stream:
                    if "result" in event:
                        yield event["result"]
        except StreamFailed as failed:
            raise failed.error from None  # the service's own error: callers tell expiry from failure by it

    async def _collect(self, session_id: str, name: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
        return [result async for result in self._invoke(session_id, name, arguments)]

    async def start_session(self, name: str) -> str:
        """Start a session and return its id (also used by ``doctor``)."""
        client = await self._aws()
        response = await asyncio.to_thread(
            client.start_code_interpreter_session, codeInterpreterIdentifier=self.interpreter_id,
            name=name[:100], sessionTimeoutSeconds=self.session_timeout,
        )
        return str(response["sessionId"])

    async def stop_session(self, session_id: str) -> None:
        client = await self._aws()
        await asyncio.to_thread(
            client.stop_code_interpreter_session, codeInterpreterIdentifier=self.interpreter_id,
            sessionId=session_id,
        )

    # -- sessions -------------------------------------------------------------------------------

    async def _remember(self, conversation: Conversation, session: _Session) -> None:
        self._sessions[conversation.id] = session
        await self.state.put_value(SESSION_NAMESPACE, conversation.id, {
            "interpreter": self.interpreter_id, "session_id": session.session_id, "synced": session.synced,
            "skipped": session.skipped,
        })

    async def _session(self, conversation: Conversation, avoid: str | None = None) -> _Session:
        """The conversation's live session, else a new one; never session ``avoid`` (one being stopped)."""
        session = self._sessions.get(conversation.id)
        if session is not None and session.session_id != avoid:
            return session
        stored = await self.state.get_value(SESSION_NAMESPACE, conversation.id)
        if (isinstance(stored, dict) and stored.get("interpreter") == self.interpreter_id and stored.get("session_id")
                and stored["session_id"] != avoid):
            session = _Session(str(stored["session_id"]), sizes(stored.get("synced")), sizes(stored.get("skipped")))
            self._sessions[conversation.id] = session
            return session
        return await self._new_session(conversation)

    async def _new_session(self, conversation: Conversation) -> _Session:
        session = _Session(await self.start_session(f"datathread-{conversation.id}"))
        log.info("started code interpreter session for conversation %s", conversation.id)
        await self._remember(conversation, session)
        return session

    # -- files ----------------------------------------------------------------------------------

    async def _upload(self, turn: Turn, session: _Session) -> list[Notice]:
        """Write workspace files the session does not hold (attachments, or all after a restart)."""
        notices: list[Notice] = []
        batch: list[tuple[WorkspaceFile, bytes]] = []
        batch_bytes = 0
        for f in await turn.workspace.list_files():
            if f.name.split("/", 1)[0] in OWN_FOLDERS or f.size in (session.synced.get(f.name),
                                                                     session.skipped.get(f.name)):
                continue
            if f.size > self.max_file_bytes:
                session.skipped[f.name] = f.size  # warned once; a changed size is looked at again
                notices.append(Notice(f"{f.name} ({human_size(f.size)}) is too large to copy into the code "
                                      "environment.", "warning"))
                continue
            if batch and batch_bytes + f.size > _UPLOAD_BATCH_BYTES:
                await self._write_batch(session, batch)
                batch, batch_bytes = [], 0
            batch.append((f, await asyncio.to_thread(f.path.read_bytes)))
            batch_bytes += f.size
        if batch:
            await self._write_batch(session, batch)
        await self._remember(turn.conversation, session)
        return notices

    async def _write_batch(self, session: _Session, batch: list[tuple[WorkspaceFile, bytes]]) -> None:
        content = [{"path": f.name, "blob": data} for f, data in batch]
        results = await self._collect(session.session_id, "writeFiles", {"content": content})
        if any(r.get("isError") for r in results):
            raise RuntimeError(f"writeFiles failed: {' '.join(text_blocks(r) for r in results)[:300]}")
        for f, data in batch:
            session.synced[f.name] = len(data)

    async def _list(self, session_id: str, directory: str = "", depth: int = 0) -> list[tuple[str, int | None]]:
        results = await self._collect(session_id, "listFiles", {"path": directory or "."})
        found: list[tuple[str, int | None]] = []
        for result in results:
            for item in result.get("content", []):
                if item.get("type") != "resource_link":
                    continue
                base = PurePosixPath(str(item.get("name") or str(item.get("uri", "")).rstrip("/"))).name
                if not base or base.startswith("."):
                    continue
                rel = f"{directory}/{base}" if directory else base
                kind = f"{item.get('description') or ''} {item.get('mimeType') or ''}".lower()
                if "directory" in kind or str(item.get("uri", "")).endswith("/"):
                    if depth < _LIST_DEPTH and base not in _SKIP_DIRS:
                        found.extend(await self._list(session_id, rel, depth + 1))
                    continue
                size = item.get("size")
                found.append((rel, int(size) if isinstance(size, int) else None))
        return found

    async def _fetch(self, turn: Turn, session: _Session) -> tuple[list[WorkspaceFile], list[Notice]]:
        """Copy new or changed session files into the workspace; returns them in name order."""
        notices: list[Notice] = []
        wanted: list[str] = []
        for name, size in sorted(await self._list(session.session_id)):
            known = session.synced.get(name)
            if (known is not None and (size is None or known == size)) or session.skipped.get(name) == size:
                continue
            if size is not None and size > self.max_file_bytes:
                session.skipped[name] = size
                notices.append(Notice(f"{name} ({human_size(size)}) is too large to fetch.", "warning"))
                continue
            wanted.append(name)
        if len(wanted) > _MAX_FETCH:
            notices.append(Notice(f"Only the first {_MAX_FETCH} of {len(wanted)} new files were fetched.", "warning"))
            wanted = wanted[:_MAX_FETCH]
        written: list[str] = []
        for name in wanted:  # one file a call: a response carries the whole file inline
            data = await self._read(session.session_id, name)
            if data is None:
                continue
            if not await asyncio.to_thread(save_into, turn.workspace, name, data):
                continue
            session.synced[name] = len(data)
            written.append(name)
        await self._remember(turn.conversation, session)
        by_name = {f.name: f for f in await turn.workspace.list_files()}
        return [by_name[n] for n in written if n in by_name], notices

    async def _read(self, session_id: str, name: str) -> bytes | None:
        for result in await self._collect(session_id, "readFiles", {"paths": [name]}):
            for item in result.get("content", []):
                resource = item.get("resource") if item.get("type") == "resource" else None
                if not isinstance(resource, dict):
                    continue
                if resource.get("blob") is not None:
                    blob = resource["blob"]
                    return blob if isinstance(blob, bytes) else str(blob).encode()
                if resource.get("text") is not None:
                    return str(resource["text"]).encode()
        log.warning("readFiles returned no content for %r", name)
        return None

    # -- running code ---------------------------------------------------------------------------

    async def _run(self, conversation: Conversation, session: _Session, code: str,
                   language: str) -> AsyncIterator[AgentEvent]:
        if language == "shell":
            name, arguments = "executeCommand", {"command": code}
        else:
            name, arguments = "executeCode", {"code": code, "language": language}
        task_id: str | None = None
        finished = False
        try:
            async for event in self._read_run(session.session_id, name, arguments, language):
                if isinstance(event, str):
                    task_id = event
                    continue
                yield event
            finished = True
        finally:
            if not finished and task_id is not None:
                self._stop_in_background(session.session_id, task_id)
            elif not finished:
                self._end_session_in_background(conversation, session)

    async def _read_run(self, session_id: str, name: str, arguments: dict[str, Any],
                        language: str) -> AsyncIterator[AgentEvent | str]:
        """The run's events, and its task id (a ``str``) as soon as the service reports it."""
        failed = False
        stderr_parts: list[str] = []
        text_parts: list[str] = []
        exit_code: int | None = None
        async for result in self._invoke(session_id, name, arguments):
            structured = result.get("structuredContent") or {}
            if structured.get("taskId"):
                yield str(structured["taskId"])
            stdout, stderr = structured.get("stdout"), structured.get("stderr")
            if structured.get("exitCode") is not None:
                exit_code = int(structured["exitCode"])
            is_error = bool(result.get("isError")) or exit_code not in (None, 0)
            failed = failed or is_error
            if stdout is None and stderr is None:
                text = text_blocks(result)
                if is_error:
                    text_parts.append(text)
                elif text:
                    yield CodeOutput(text, "stdout")
                continue
            if stdout:
                yield CodeOutput(stdout, "stdout")
            if stderr:
                stderr_parts.append(stderr)
                if not is_error:  # an error's stderr is its traceback, shown once in CodeError
                    yield CodeOutput(stderr, "stderr")
        if failed:
            yield code_error("".join(stderr_parts), exit_code, "".join(text_parts), language)

    def _stop_in_background(self, session_id: str, task_id: str) -> None:
        self._in_background(self.stop_task(session_id, task_id))

    def _in_background(self, stop: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(stop)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _end_session_in_background(self, conversation: Conversation, session: _Session) -> None:
        """End an abandoned run that named no task by stopping its session; the next run starts anew."""
        if self._sessions.get(conversation.id) is session:
            del self._sessions[conversation.id]
        self._abandoned[conversation.id] = session.session_id
        self._in_background(self._end_session(conversation, session.session_id))

    async def _end_session(self, conversation: Conversation, session_id: str) -> None:
        try:
            stored = await self.state.get_value(SESSION_NAMESPACE, conversation.id)
            if isinstance(stored, dict) and stored.get("session_id") == session_id:
                await self.state.put_value(SESSION_NAMESPACE, conversation.id, None)
            await self.stop_session(session_id)
            log.info("stopped code interpreter session %s: a stopped run named no task", session_id)
        except Exception:
            log.info("stopping session %s failed (it may have expired)", session_id, exc_info=True)

    async def stop_task(self, session_id: str, task_id: str) -> None:
        """Stop a running task of the session (``stopTask``); failures are logged, never raised."""
        try:
            results = await self._collect(session_id, "stopTask", {"taskId": task_id})
            if any(r.get("isError") for r in results):
                log.info("stopTask %s: %s", task_id, " ".join(text_blocks(r) for r in results)[:300])
            else:
                log.info("stopped code interpreter task %s", task_id)
        except Exception:
            log.info("stopTask %s failed (the task may have ended)", task_id, exc_info=True)

    async def execute(self, turn: Turn, code: str, *, language: str = "python") -> AsyncIterator[AgentEvent]:
        """Run ``code`` (``python`` or ``shell``) in the conversation's session; see module doc."""
        conversation = turn.conversation
        lock = self._locks.setdefault(conversation.id, asyncio.Lock())
        async with lock:
            restarted = False
            abandoned = self._abandoned.pop(conversation.id, None)
            if abandoned is not None:
                yield Notice(ENDED, "warning")
            try:
                session = await self._session(conversation, avoid=abandoned)
                try:
                    notices = await self._upload(turn, session)
                except Exception as exc:
                    if not is_expired(exc):
                        raise
                    session, notices, restarted = await self._restart(turn), [], True
                    yield Notice(RESTARTED, "warning")
            except Exception as exc:
                log.warning("code interpreter session unusable for %s", conversation.id, exc_info=True)
                yield environment_failure(exc)
                return
            for notice in notices:
                yield notice
            while True:
                produced = False
                try:
                    async for event in self._run(conversation, session, code, language):
                        produced = True
                        yield event
                    break
                except Exception as exc:
                    if is_expired(exc) and not restarted and not produced:
                        try:
                            session, restarted = await self._restart(turn), True
                        except Exception as again:
                            yield environment_failure(again)
                            return
                        yield Notice(RESTARTED, "warning")
                        continue
                    log.warning("code run failed in session for %s", conversation.id, exc_info=True)
                    yield environment_failure(exc)
                    return
            try:
                files, notices = await self._fetch(turn, session)
            except Exception:
                log.warning("could not fetch new files for %s", conversation.id, exc_info=True)
                files, notices = [], [Notice("New files could not be copied from the code environment.", "warning")]
            for notice in notices:
                yield notice
            async for event in announce_files(turn, files):
                yield event

    async def _restart(self, turn: Turn) -> _Session:
        log.info("code interpreter session of %s expired; starting a new one", turn.conversation.id)
        self._sessions.pop(turn.conversation.id, None)
        session = await self._new_session(turn.conversation)
        await self._upload(turn, session)
        return session

    async def release(self, conversation: Conversation) -> None:
        session = self._sessions.pop(conversation.id, None)
        stored = await self.state.get_value(SESSION_NAMESPACE, conversation.id)
        session_id = session.session_id if session else (stored or {}).get("session_id")
        await self.state.put_value(SESSION_NAMESPACE, conversation.id, None)
        if session_id:
            try:
                await self.stop_session(str(session_id))
            except Exception:
                log.info("stopping session of %s failed (it may have expired)", conversation.id, exc_info=True)

    async def aclose(self) -> None:
        """Forget sessions (they live on for a restarted process) and close the client's connections."""
        self._sessions.clear()
        if self._stopping:  # stops of abandoned runs still on their way: give them a moment
            await asyncio.wait(set(self._stopping), timeout=5)
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

