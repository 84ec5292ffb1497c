"""A local AgentCore Code Interpreter (data plane) that really runs the code, over the real protocol.

``PUT .../sessions/start`` and ``.../sessions/stop`` answer JSON; ``POST .../tools/invoke`` answers
an AWS event stream of ``result`` events (``content`` + ``structuredContent``), for the tools
``executeCode`` (python, run in a fresh subprocess: unlike the real service, variables do not
persist between calls), ``executeCommand`` (bash), ``writeFiles``, ``listFiles`` (``resource_link``
items, directories described as ``directory``) and ``readFiles`` (``resource`` items with a blob).
A run first streams a ``working`` result carrying its ``taskId``; ``stopTask`` with that id kills
the run (recorded in ``stopped_tasks``, ``task_stopped`` set) and answers ``taskStatus: canceled``.
With ``report_tasks = False`` a run reports no task id while it runs (the service model allows
either; nothing documents which ``executeCode`` does): then only stopping the session ends it, and
``_stop`` kills the session's runs (``session_stopped`` is set). Each session has its own temporary
working directory. ``expire(session_id)`` makes a session
answer ``ResourceNotFoundException`` from then on, as the service does after its timeout.

Point boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE=<url>``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import mimetypes
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes import aws_eventstream as es
from tests.fakes.server import LocalServer, serve

SESSION_HEADER = "x-amzn-code-interpreter-session-id"


@dataclass
class FakeAgentCore:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fake-agentcore-")))
    sessions: dict[str, Path] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    stopped: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (session, tool, args)
    started: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    run_timeout: float = 60.0
    #: Running code, by task id: ``executeCode`` / ``executeCommand`` first stream a ``working`` result
    #: carrying the task id, which ``stopTask`` names to end the run.
    running: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    stopped_tasks: list[str] = field(default_factory=list)
    task_stopped: asyncio.Event = field(default_factory=asyncio.Event)
    #: False: runs stream only their final result, no ``working`` result with a task id first.
    report_tasks: bool = True
    #: The session each running task runs in; set when a stopped session ended a run.
    session_of: dict[str, str] = field(default_factory=dict)
    session_stopped: asyncio.Event = field(default_factory=asyncio.Event)
    _server: LocalServer | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _task_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> FakeAgentCore:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_put("/code-interpreters/{ci}/sessions/start", self._start)
        app.router.add_put("/code-interpreters/{ci}/sessions/stop", self._stop)
        app.router.add_post("/code-interpreters/{ci}/tools/invoke", self._invoke)
        self._server = await serve(app)
        self.url = self._server.url
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def expire(self, session_id: str) -> None:
        self.expired.add(session_id)

    def tools_called(self, session_id: str | None = None) -> list[str]:
        return [tool for sid, tool, _ in self.calls if session_id is None or sid == session_id]

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response({"message": message}, status=status, headers={"x-amzn-ErrorType": code})

    async def _start(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.started.append(body)
        session_id = f"s{next(self._ids):04d}"
        workdir = self.root / session_id
        workdir.mkdir(parents=True)
        self.sessions[session_id] = workdir
        return web.json_response({
            "codeInterpreterIdentifier": request.match_info["ci"], "sessionId": session_id,
            "createdAt": datetime.now(UTC).isoformat(),
        })

    async def _stop(self, request: web.Request) -> web.Response:
        session_id = request.query.get("sessionId", "")
        if session_id not in self.sessions or session_id in self.expired:
            return self._error(404, "ResourceNotFoundException", "session not found")
        self.stopped.append(session_id)
        self.expired.add(session_id)
        for task_id in [t for t, s in self.session_of.items() if s == session_id]:
            proc = self.running.pop(task_id, None)
            if proc is not None:
                proc.kill()
                self.session_stopped.set()
        return web.json_response({
            "codeInterpreterIdentifier": request.match_info["ci"], "sessionId": session_id,
            "lastUpdatedAt": datetime.now(UTC).isoformat(),
        })

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        session_id = request.headers.get(SESSION_HEADER, "")
        body = await request.json()
        name, args = body.get("name", ""), body.get("arguments") or {}
        self.calls.append((session_id, name, args))
        if session_id not in self.sessions or session_id in self.expired:
            return self._error(404, "ResourceNotFoundException", f"Session {session_id} not found or expired")
        workdir = self.sessions[session_id]
        files = {"writeFiles": self._write_files, "listFiles": self._list_files, "readFiles": self._read_files}
        response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
        if name in ("executeCode", "executeCommand"):
            argv = ([sys.executable, "-c", str(args.get("code", ""))] if name == "executeCode"
                    else ["bash", "-c", str(args.get("command", ""))])
            task_id = f"task-{next(self._task_ids):04d}"
            await response.prepare(request)
            if self.report_tasks:
                await response.write(es.event("result", {
                    "content": [], "structuredContent": {"taskId": task_id, "taskStatus": "working"},
                    "isError": False}))
            self.session_of[task_id] = session_id
            result = await self._run(workdir, argv, task_id)
        elif name == "stopTask":
            result = self._stop_task(str(args.get("taskId", "")))
        elif name in files:
            result = await asyncio.to_thread(files[name], workdir, args)
        else:
            return self._error(400, "ValidationException", f"unsupported tool {name}")
        if not response.prepared:
            await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the client stopped reading (a stopped run)
            await response.write(es.event("result", result))
            await response.write_eof()
        return response

    def _stop_task(self, task_id: str) -> dict[str, Any]:
        proc = self.running.pop(task_id, None)
        if proc is None:
            return {"content": [{"type": "text", "text": f"No running task {task_id}"}], "isError": True}
        proc.kill()
        self.stopped_tasks.append(task_id)
        self.task_stopped.set()
        return {"content": [{"type": "text", "text": f"Task {task_id} canceled"}],
                "structuredContent": {"taskId": task_id, "taskStatus": "canceled"}, "isError": False}

    async def _run(self, workdir: Path, argv: list[str], task_id: str) -> dict[str, Any]:
        started = time.monotonic()
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=workdir, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        self.running[task_id] = proc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.run_timeout)
        except TimeoutError:
            proc.kill()
            out, err = b"", b"TimeoutError: execution timed out"
        finally:
            self.running.pop(task_id, None)
        code = proc.returncode if proc.returncode is not None else -9
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        return {
            "content": [{"type": "text", "text": stdout + stderr}],
            "structuredContent": {"stdout": stdout, "stderr": stderr, "exitCode": code,
                                  "executionTime": round(time.monotonic() - started, 3)},
            "isError": code != 0,
        }

    @staticmethod
    def _write_files(workdir: Path, args: dict[str, Any]) -> dict[str, Any]:
        names = []
        for item in args.get("content", []):
            target = (workdir / item["path"]).resolve()
            if workdir.resolve() not in target.parents:
                return {"content": [{"type": "text", "text": f"bad path {item['path']}"}], "isError": True}
            target.parent.mkdir(parents=True, exist_ok=True)
            if "blob" in item:
                target.write_bytes(base64.b64decode(item["blob"]))
            else:
                target.write_text(item.get("text", ""))
            names.append(item["path"])
        return {"content": [{"type": "text", "text": f"Wrote {len(names)} files: {', '.join(names)}"}],
                "isError": False}

    @staticmethod
    def _list_files(workdir: Path, args: dict[str, Any]) -> dict[str, Any]:
        directory = (workdir / str(args.get("path") or args.get("directoryPath") or ".")).resolve()
        items = []
        for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
            is_dir = entry.is_dir()
            items.append({
                "type": "resource_link", "uri": f"file://{entry}", "name": entry.name,
                "description": "directory" if is_dir else "file",
                "mimeType": "inode/directory" if is_dir else (mimetypes.guess_type(entry.name)[0]
                                                              or "application/octet-stream"),
                **({} if is_dir else {"size": entry.stat().st_size}),
            })
        return {"content": items, "isError": False}

    @staticmethod
    def _read_files(workdir: Path, args: dict[str, Any]) -> dict[str, Any]:
        items = []
        for rel in args.get("paths", []):
            path = (workdir / rel).resolve()
            if not path.is_file():
                return {"content": [{"type": "text", "text": f"No such file: {rel}"}], "isError": True}
            items.append({"type": "resource", "resource": {
                "type": "blob", "uri": f"file://{path}",
                "mimeType": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                "blob": base64.b64encode(path.read_bytes()).decode(),
            }})
        return {"content": items, "isError": False}
