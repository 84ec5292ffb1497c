"""A local fake of the Slack Web API (aiohttp on 127.0.0.1, port 0) that records every call.

It speaks the real wire format slack-sdk uses (Bearer token, query / form / JSON arguments,
``{"ok": ...}`` answers, 429 with ``Retry-After``), keeps the messages the bot posted (with their
streamed Markdown), serves the ``files_upload_v2`` upload URLs (on another host name, like Slack's
``files.slack.com``) and users' files at ``url_private_download`` (answering an HTML login page
without the right token, like Slack), plays the Socket Mode WebSocket endpoint that
``apps.connections.open`` hands out (``hello``, envelopes, acks), and has switchable failure modes.

It ships with the adapter (as botbuilder ships ``TestAdapter`` and httpx ``MockTransport``) because
both the tests and ``benchmarks/`` drive the real Slack adapter against it, and benchmarks must not
depend on ``tests/``. Nothing in the product imports it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from adapters.local_server import LocalServer, serve
from adapters.slack.fake_block_rules import block_errors


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: The client's (host, port): calls with the same peer came over the same connection.
    peer: tuple[str, int] | None = None


@dataclass
class Posted:
    """A message as the channel shows it."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    markdown: str = ""  # streamed text
    streaming: bool = False
    tasks: list[dict[str, Any]] = field(default_factory=list)  # streamed task / plan chunks, in order
    task_display_mode: str | None = None  # as chat.startStream asked
    appends: int = 0
    updates: int = 0


@dataclass
class SharedFile:
    id: str
    name: str
    title: str
    data: bytes
    channel: str | None = None
    thread_ts: str | None = None
    created: float = 0.0
    #: bytes received (``data`` stays empty when the fake does not keep upload bodies).
    size: int = 0


@dataclass
class Failures:
    #: method -> number of 429 answers still to give (each with ``Retry-After: retry_after``).
    rate_limited: dict[str, int] = field(default_factory=dict)
    retry_after: int = 1
    #: error answered by chat.startStream (e.g. "method_not_supported_for_channel_type"), or None.
    stream_start_error: str | None = None
    #: after this many appends a stream answers ``message_not_in_streaming_state``.
    stream_expires_after: int | None = None
    #: seconds files.completeUploadExternal waits *after* sharing the file (a timeout that succeeded).
    complete_delay: float = 0.0
    #: method -> Slack error it answers (``{"ok": false, "error": ...}``) until removed.
    errors: dict[str, str] = field(default_factory=dict)
    #: Block types this workspace does not know: a message carrying one is answered ``invalid_blocks``
    #: (as Slack answers a ``data_table`` where that block has not shipped).
    unknown_blocks: set[str] = field(default_factory=set)
    #: The workspace knows no task chunks: ``task_display_mode`` is answered ``invalid_arguments``,
    #: a ``task_update`` / ``plan_update`` chunk ``invalid_chunks`` (as before Slack shipped them).
    no_task_chunks: bool = False


class FakeSlack:
    """``await FakeSlack().start()`` then point ``SLACK_API_URL`` at ``api_url``."""

    def __init__(self, token: str = "xoxb-test-token", team: str = "T0001", bot_user: str = "UBOT",
                 bot_id: str = "BBOT", app_token: str = "xapp-1-test-app-token", *, agent: bool = False) -> None:
        self.token, self.team, self.bot_user, self.bot_id = token, team, bot_user, bot_id
        #: Whether the app is declared as an agent: only then does ``agents.sessions.setStatus`` work
        #: (else ``not_authorized``, as Slack answers other apps).
        self.agent = agent
        #: Agent sessions: (channel, thread_ts) -> every status set, in order.
        self.sessions: dict[tuple[str, str], list[str]] = {}
        self.app_token = app_token
        #: The short-lived token a ``function_executed`` event carries (Slack's workflow token): the
        #: only one ``functions.*`` accepts, as Slack ties a step's completion to its execution.
        self.function_token = "xwfp-test-workflow-token"
        #: Workflow Builder steps completed: execution id -> ("success", outputs) or ("error", message).
        self.completed: dict[str, tuple[str, Any]] = {}
        #: Socket Mode: open connections, and every frame the app sent back (acks), parsed.
        self.sockets: list[web.WebSocketResponse] = []
        self.acks: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Posted] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self.files: dict[str, SharedFile] = {}
        self.user_files: dict[str, tuple[bytes, str]] = {}
        self.user_file_names: dict[str, str] = {}
        self.fail = Failures()
        #: False: uploads are counted, not kept (memory benchmarks post gigabytes).
        self.keep_uploads = True
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._server: LocalServer | None = None
        self.base = ""

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    async def start(self) -> FakeSlack:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{key}/{name}", self._serve_file)
        app.router.add_get("/socket-mode", self._socket)
        self._server = await serve(app, access_log=False)
        self.base = self._server.url
        return self

    async def close(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self._server is not None:
            await self._server.close()

    @property
    def upload_base(self) -> str:
        """The same server under another host name (``localhost``), as Slack's uploads live on
        ``files.slack.com``: a client that sends its token to the upload URL shows up in ``calls``."""
        return self.base.replace("127.0.0.1", "localhost")

    # ---- helpers for tests ---------------------------------------------------------------------

    def add_user_file(self, name: str, data: bytes, content_type: str = "text/csv") -> str:
        key = f"F{next(self._ids):05d}"
        self.user_files[key] = (data, content_type)
        self.user_file_names[key] = name
        return f"{self.base}/files-pri/{key}/{name}"

    def user_file_id(self, url: str) -> str:
        """The file id of a file added with ``add_user_file`` (what ``files.info`` takes)."""
        return url.rsplit("/", 2)[-2]

    def named(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[Posted]:
        """Messages the bot has in a thread, in order."""
        return sorted((m for m in self.messages.values() if m.channel == channel and m.thread_ts == thread_ts),
                      key=lambda m: float(m.ts))

    def steps(self, message: Posted) -> list[dict[str, Any]]:
        """The tasks a streamed message shows: the last state of each ``task_update`` id, in order."""
        latest: dict[str, dict[str, Any]] = {}
        for chunk in message.tasks:
            if chunk.get("type") == "task_update":
                latest[str(chunk.get("id"))] = {**latest.get(str(chunk.get("id")), {}), **chunk}
        return list(latest.values())

    def shown(self, message: Posted) -> str:
        """Everything a person would read in a message, in order: tasks (streamed before the text
        they lead to), streamed text and block texts."""
        parts: list[str] = []
        for task in self.steps(message):
            parts.extend(str(task.get(key) or "") for key in ("title", "details", "output"))
        parts += [message.markdown, message.text]
        for block in message.blocks:
            parts.append(json.dumps(block, ensure_ascii=False))
        return "\n".join(parts)

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    # ---- wire ----------------------------------------------------------------------------------

    async def _args(self, request: web.Request) -> tuple[dict[str, Any], bytes]:
        args: dict[str, Any] = dict(request.query)
        body = b""
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if hasattr(value, "file"):
                    body = value.file.read()
                else:
                    args[key] = value
        else:
            body = await request.read()
        return args, body

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args, body = await self._args(request)
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.calls.append(Call(method, args, time.monotonic(), body, dict(request.headers),
                               tuple(peer[:2]) if peer else None))
        if self.fail.rate_limited.get(method, 0) > 0:
            self.fail.rate_limited[method] -= 1
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(self.fail.retry_after)})
        if method == "apps.connections.open":  # the only method that takes the app-level token
            if request.headers.get("Authorization") != f"Bearer {self.app_token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
        elif method.startswith("functions."):
            if request.headers.get("Authorization") != f"Bearer {self.function_token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
        elif not self._authorized(request):
            return web.json_response({"ok": False, "error": "not_authed"})
        if method in self.fail.errors:
            return web.json_response({"ok": False, "error": self.fail.errors[method]})
        unknown = self._unknown_block(args)
        if unknown:
            return web.json_response({"ok": False, "error": "invalid_blocks",
                                      "errors": [f"unknown block type {unknown}"]})
        if "blocks" in args and (errors := block_errors(self._blocks(args))):
            return web.json_response({"ok": False, "error": "invalid_blocks", "errors": errors})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result = handler(args)
        if asyncio.iscoroutine(result):
            result = await result
        return web.json_response(result)

    # ---- methods -------------------------------------------------------------------------------

    def _m_auth_test(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://test.slack.com/", "team": "Test", "user": "datathread",
                "team_id": self.team, "user_id": self.bot_user, "bot_id": self.bot_id}

    def _m_users_info(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user": {"id": a.get("user"), "name": f"name-{a.get('user')}",
                                     "real_name": f"Real {a.get('user')}"}}

    def _unknown_block(self, a: dict[str, Any]) -> str | None:
        if not self.fail.unknown_blocks or "blocks" not in a:
            return None
        return next((b.get("type") for b in self._blocks(a) if b.get("type") in self.fail.unknown_blocks), None)

    def session(self, channel: str, thread_ts: str) -> str | None:
        """The agent session's current status in a thread, if it has a session."""
        statuses = self.sessions.get((channel, thread_ts))
        return statuses[-1] if statuses else None

    def _m_agents_sessions_setStatus(self, a: dict[str, Any]) -> dict[str, Any]:
        if not self.agent:
            return {"ok": False, "error": "not_authorized"}
        if a.get("status") not in ("processing", "active", "suspended", "closed"):
            return {"ok": False, "error": "invalid_arguments"}
        if not a.get("channel_id"):
            return {"ok": False, "error": "invalid_arguments"}
        self.sessions.setdefault((a["channel_id"], a.get("thread_ts") or ""), []).append(a["status"])
        return {"ok": True}

    def _m_assistant_threads_setTitle(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def _m_assistant_threads_setSuggestedPrompts(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def _refuses_chunks(self, a: dict[str, Any]) -> dict[str, Any] | None:
        if not self.fail.no_task_chunks:
            return None
        if a.get("task_display_mode"):
            return {"ok": False, "error": "invalid_arguments"}
        chunks = a.get("chunks") or ()
        chunks = json.loads(chunks) if isinstance(chunks, str) else chunks
        if any(c.get("type") in ("task_update", "plan_update") for c in chunks):
            return {"ok": False, "error": "invalid_chunks"}
        return None

    def _chunks(self, m: Posted, a: dict[str, Any]) -> None:
        """Apply streaming chunks: text is appended, a blocks chunk shows under the text."""
        for chunk in a.get("chunks") or ():
            if chunk.get("type") == "markdown_text":
                m.markdown += chunk.get("text") or ""
            elif chunk.get("type") == "blocks":
                m.blocks = list(chunk.get("blocks") or ())
            elif chunk.get("type") in ("task_update", "plan_update"):
                m.tasks.append(chunk)

    def _blocks(self, a: dict[str, Any]) -> list[dict[str, Any]]:
        blocks = a.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)

    def _m_chat_postMessage(self, a: dict[str, Any]) -> dict[str, Any]:
        ts = self._next_ts()
        m = Posted(a["channel"], ts, a.get("thread_ts"), a.get("text") or "", self._blocks(a))
        self.messages[(m.channel, ts)] = m
        return {"ok": True, "channel": m.channel, "ts": ts, "message": {"ts": ts, "text": m.text}}

    def _m_chat_update(self, a: dict[str, Any]) -> dict[str, Any]:
        m = self.messages.get((a["channel"], a["ts"]))
        if m is None:
            return {"ok": False, "error": "message_not_found"}
        m.text, m.blocks, m.updates = a.get("text") or "", self._blocks(a), m.updates + 1
        m.markdown, m.tasks = "", []  # an update replaces the whole message, streamed tasks included
        return {"ok": True, "channel": m.channel, "ts": m.ts, "text": m.text}

    def _m_chat_getPermalink(self, a: dict[str, Any]) -> dict[str, Any]:
        if (a.get("channel"), a.get("message_ts")) not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        ts = str(a["message_ts"]).replace(".", "")
        return {"ok": True, "channel": a["channel"], "permalink": f"https://test.slack.com/archives/{a['channel']}/p{ts}"}

    def _complete(self, a: dict[str, Any], outcome: tuple[str, Any]) -> dict[str, Any]:
        execution = str(a.get("function_execution_id") or "")
        if not execution:
            return {"ok": False, "error": "invalid_arguments"}
        if execution in self.completed:  # Slack: a step completes once
            return {"ok": False, "error": "function_execution_not_found"}
        self.completed[execution] = outcome
        return {"ok": True}

    def _m_functions_completeSuccess(self, a: dict[str, Any]) -> dict[str, Any]:
        outputs = a.get("outputs") or {}
        return self._complete(a, ("success", json.loads(outputs) if isinstance(outputs, str) else outputs))

    def _m_functions_completeError(self, a: dict[str, Any]) -> dict[str, Any]:
        return self._complete(a, ("error", str(a.get("error") or "")))

    def _m_chat_postEphemeral(self, a: dict[str, Any]) -> dict[str, Any]:
        self.ephemeral.append({**a, "blocks": self._blocks(a)})
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_chat_startStream(self, a: dict[str, Any]) -> dict[str, Any]:
        if self.fail.stream_start_error:
            return {"ok": False, "error": self.fail.stream_start_error}
        if not a.get("channel", "").startswith("D") and not (a.get("recipient_user_id") and a.get("recipient_team_id")):
            return {"ok": False, "error": "missing_recipient_user_id"}
        if refused := self._refuses_chunks(a):
            return refused
        ts = self._next_ts()
        m = Posted(a["channel"], ts, a.get("thread_ts"), markdown=a.get("markdown_text") or "", streaming=True,
                   task_display_mode=a.get("task_display_mode"))
        self._chunks(m, a)
        self.messages[(m.channel, ts)] = m
        return {"ok": True, "channel": m.channel, "ts": ts}

    def _streaming(self, a: dict[str, Any]) -> Posted | dict[str, Any]:
        m = self.messages.get((a["channel"], a["ts"]))
        if m is None:
            return {"ok": False, "error": "message_not_found"}
        if not m.streaming:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        return m

    def _m_chat_appendStream(self, a: dict[str, Any]) -> dict[str, Any]:
        m = self._streaming(a)
        if isinstance(m, dict):
            return m
        limit = self.fail.stream_expires_after
        if limit is not None and m.appends >= limit:
            m.streaming = False
            return {"ok": False, "error": "message_not_in_streaming_state"}
        if refused := self._refuses_chunks(a):
            return refused
        m.markdown += a.get("markdown_text") or ""
        self._chunks(m, a)
        m.appends += 1
        return {"ok": True, "channel": m.channel, "ts": m.ts}

    def _m_chat_stopStream(self, a: dict[str, Any]) -> dict[str, Any]:
        m = self._streaming(a)
        if isinstance(m, dict):
            return m
        if refused := self._refuses_chunks(a):
            return refused
        m.markdown += a.get("markdown_text") or ""
        self._chunks(m, a)
        if "blocks" in a:  # blocks replace what the stream showed under its text (a Stop button)
            m.blocks = self._blocks(a)
        if a.get("session_status"):
            self.sessions.setdefault((m.channel, m.thread_ts or ""), []).append(a["session_status"])
        m.streaming = False
        return {"ok": True, "channel": m.channel, "ts": m.ts, "message": {"ts": m.ts}}

    def _m_reactions_add(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def _m_reactions_remove(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def _m_assistant_threads_setStatus(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def _m_files_getUploadURLExternal(self, a: dict[str, Any]) -> dict[str, Any]:
        fid = f"FUP{next(self._ids):05d}"
        self.files[fid] = SharedFile(fid, a.get("filename", ""), "", b"")
        return {"ok": True, "upload_url": f"{self.upload_base}/upload/{fid}", "file_id": fid}

    async def _upload(self, request: web.Request) -> web.Response:
        fid = request.match_info["file_id"]
        if self.keep_uploads:
            _, body = await self._args(request)
            size = len(body)
        else:
            body, size = b"", 0
            async for chunk in request.content.iter_chunked(1 << 20):
                size += len(chunk)
        self.calls.append(Call("upload", {"file_id": fid}, time.monotonic(), body, dict(request.headers)))
        if fid not in self.files:
            return web.Response(status=404, text="no such upload")
        self.files[fid].data, self.files[fid].size = body, size
        return web.Response(text=f"OK - {size}")

    async def _m_files_completeUploadExternal(self, a: dict[str, Any]) -> dict[str, Any]:
        items = a.get("files")
        items = json.loads(items) if isinstance(items, str) else items
        done = []
        for item in items or []:
            f = self.files.get(item["id"])
            if f is None:
                return {"ok": False, "error": "file_not_found"}
            f.title, f.channel, f.thread_ts, f.created = item.get("title") or f.name, a.get("channel_id"), \
                a.get("thread_ts"), time.time()
            done.append(self._file_json(f))
        if self.fail.complete_delay:
            delay, self.fail.complete_delay = self.fail.complete_delay, 0.0
            await asyncio.sleep(delay)
        return {"ok": True, "files": done}

    def _file_json(self, f: SharedFile) -> dict[str, Any]:
        return {"id": f.id, "name": f.name, "title": f.title, "size": f.size, "created": int(f.created),
                "channels": [f.channel] if f.channel else []}

    def _m_files_info(self, a: dict[str, Any]) -> dict[str, Any]:
        """Files the bot shared, and users' files (``add_user_file``) with their private URLs, as
        Slack answers for a file that an event sent as ``"file_access": "check_file_info"``."""
        key = a.get("file", "")
        if key in self.user_files:
            data, content_type = self.user_files[key]
            name = self.user_file_names[key]
            url = f"{self.base}/files-pri/{key}/{name}"
            return {"ok": True, "file": {"id": key, "name": name, "title": name, "mimetype": content_type,
                                         "size": len(data), "url_private": url,
                                         "url_private_download": url + "?download=1"}}
        f = self.files.get(key)
        return {"ok": True, "file": self._file_json(f)} if f else {"ok": False, "error": "file_not_found"}

    def _m_files_list(self, a: dict[str, Any]) -> dict[str, Any]:
        since = float(a.get("ts_from") or 0)
        found = [self._file_json(f) for f in self.files.values()
                 if f.channel and (not a.get("channel") or f.channel == a["channel"]) and f.created >= since]
        return {"ok": True, "files": found, "paging": {"count": len(found), "total": len(found), "page": 1, "pages": 1}}

    # ---- Socket Mode ---------------------------------------------------------------------------

    def _m_apps_connections_open(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.base.replace("http://", "ws://") + "/socket-mode"}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)  # answers the client's pings with pongs, like Slack
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": len(self.sockets),
                            "connection_info": {"app_id": "A0001"}, "debug_info": {"host": "fake"}})
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self.acks.append(json.loads(frame.data))
        finally:
            self.sockets.remove(ws)
        return ws

    async def push(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> str:
        """Send an envelope (``events_api`` or ``interactive``) over the newest Socket Mode
        connection, as Slack does; returns its ``envelope_id`` (the app must ack it)."""
        envelope_id = f"env-{next(self._ids)}"
        envelope: dict[str, Any] = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                                    "accepts_response_payload": kind != "events_api"}
        if kind == "events_api":
            envelope |= {"retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else ""}
        await self.sockets[-1].send_json(envelope)
        return envelope_id

    def shared(self, channel: str | None = None) -> list[SharedFile]:
        return [f for f in self.files.values() if f.channel and (channel is None or f.channel == channel)]

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(Call("download", {"path": request.path}, time.monotonic()))
        key = request.match_info["key"]
        if not self._authorized(request) or key not in self.user_files:
            # Slack answers a login page, with 200, when the token may not see the file.
            return web.Response(text="<html><body>Sign in</body></html>", content_type="text/html")
        data, content_type = self.user_files[key]
        return web.Response(body=data, content_type=content_type)


# ---- driving the bot as Slack does ------------------------------------------------------------


def signed_headers(secret: str, body: str, timestamp: int | None = None, **extra: str) -> dict[str, str]:
    """Slack's v0 request signature: ``v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))``."""
    import hashlib
    import hmac

    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}", **extra}


def event_body(event: dict[str, Any], event_id: str, team: str = "T0001") -> dict[str, Any]:
    """An Events API ``event_callback`` envelope around ``event``."""
    return {"token": "legacy", "team_id": team, "api_app_id": "A0001", "event": event, "type": "event_callback",
            "event_id": event_id, "event_time": int(time.time()),
            "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True}]}


def function_executed_body(callback_id: str, inputs: dict[str, Any], *, execution_id: str, token: str,
                           team: str = "T0001") -> dict[str, Any]:
    """An Events API envelope around the ``function_executed`` event of a Workflow Builder step."""
    event = {"type": "function_executed", "function": {"id": "Fn0001", "callback_id": callback_id,
                                                       "title": callback_id, "type": "app", "app_id": "A0001"},
             "inputs": inputs, "function_execution_id": execution_id, "workflow_execution_id": "Wx" + execution_id,
             "event_ts": f"{time.time():.6f}", "bot_access_token": token}
    return {"token": "legacy", "team_id": team, "api_app_id": "A0001", "event": event, "type": "event_callback",
            "event_id": "Ev" + execution_id, "event_time": int(time.time()),
            "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True}]}


def action_body(action: dict[str, Any], *, user: str, channel: str, message_ts: str, thread_ts: str | None,
                team: str = "T0001", ephemeral: bool = False) -> dict[str, Any]:
    """A ``block_actions`` payload for one clicked element of a bot message.

    From an ephemeral message Slack sends no ``message`` object (the message is not stored) and
    ``container.is_ephemeral`` is true; the container still has ``thread_ts`` in a thread.
    """
    container: dict[str, Any] = {"type": "message", "message_ts": message_ts, "channel_id": channel,
                                 "is_ephemeral": ephemeral}
    message: dict[str, Any] = {"type": "message", "ts": message_ts, "bot_id": "BBOT"}
    if thread_ts:
        container["thread_ts"] = thread_ts
        message["thread_ts"] = thread_ts
    body = {"type": "block_actions", "user": {"id": user, "team_id": team}, "api_app_id": "A0001",
            "token": "legacy", "container": container, "trigger_id": "1.2.3", "team": {"id": team},
            "channel": {"id": channel}, "actions": [action],
            "response_url": "https://hooks.slack.com/actions/T0001/1/x"}
    if not ephemeral:
        body["message"] = message
    return body
