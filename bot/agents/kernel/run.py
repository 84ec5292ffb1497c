"""One execution in a kernel: its iopub messages become agent events, within the run's limits.

Streams are yielded as they arrive. Figures (``FIGURE_MIME`` or a plain ``image/png``) become
``FileProduced`` at once; displayed tables are collected in ``frames`` for the caller to register
after the run, so a slow registration never eats into the run's time limit. A kernel with its own
disk (``KernelConnection.files_elsewhere``, a gateway kernel) reports figures and tables whose files
reach this host only after the run: they wait in ``figures`` / ``frames`` for the caller.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from bot.agents.kernel.connection import KernelConnection, Message
from bot.agents.kernel.sandbox import QUOTA_ERRNOS
from bot.agents.kernel.startup import EXIT_MIME, FIGURE_MIME, FRAME_MIME, next_free
from bot.conversation import Turn, media_type
from bot.durations import human_duration
from bot.events import AgentEvent, CodeError, CodeOutput, FileProduced, Notice
from bot.workspace import PRIVATE_DIR, UnsafePath

#: Tracebacks longer than this keep their last lines (the ones next to the error).
TRACEBACK_MAX_LINES = 40
_POLL = 0.5  # how often a quiet run checks that its kernel is still alive

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_SYNTAX_FILE = re.compile(r" \(\d+\.py, line (\d+)\)$")


@dataclass(frozen=True)
class RunLimits:
    timeout: float  # seconds per run
    output_cap: int  # characters of output shown per run
    interrupt_grace: float = 3.0  # seconds an interrupted run gets to stop before the kernel is killed
    workspace_max_bytes: int | None = None  # the sandbox's disk limit, named when a write passes it


def shell_cell(command: str) -> str:
    """The cell that runs ``command`` in a shell in the kernel's folder (``startup.run_shell``)."""
    return f"__import__('bot.agents.kernel.startup', fromlist=['run_shell']).run_shell({command!r})"


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def trim_traceback(frames: list[str], ename: str, workspace: Path | PurePosixPath | None = None) -> str:
    """The frames a user can act on: their cells (and workspace modules), plus where it was raised.

    Keeps only the last exception of a chain, drops IPython's banner lines, the closing
    ``ename: evalue`` line (``CodeError`` carries it) and any ANSI escapes.
    """
    clean = [strip_ansi(f).rstrip("\n") for f in frames]
    for i in range(len(clean) - 1, -1, -1):  # the last chained exception starts after its cause
        if "The above exception was the direct cause" in clean[i] or "During handling of the above" in clean[i]:
            clean = clean[i + 1 :]
            break
    body = [f for f in clean if f.strip() and not set(f.strip()) <= {"-"} and "most recent call last" not in f]

    def own(frame: str) -> bool:
        head = frame.lstrip()
        return head.startswith("Cell In[") or (workspace is not None and head.startswith(f"File {workspace}"))

    mine = [f for f in body if own(f)]
    if mine and not own(body[-1]):
        mine.append(body[-1])  # the library line that raised tells what went wrong
    text = "\n".join(mine or body)
    lines = text.splitlines()
    while lines and (not lines[-1].strip() or lines[-1] == ename or lines[-1].startswith(f"{ename}:")):
        lines.pop()
    if len(lines) > TRACEBACK_MAX_LINES:
        lines = ["…", *lines[-TRACEBACK_MAX_LINES:]]
    return "\n".join(lines)


def code_error(content: dict[str, Any], workspace: Path | PurePosixPath | None = None) -> CodeError:
    ename = strip_ansi(str(content.get("ename", "Error")))
    evalue = _SYNTAX_FILE.sub(r" (line \1)", strip_ansi(str(content.get("evalue", ""))))
    return CodeError(ename, evalue, trim_traceback(list(content.get("traceback", [])), ename, workspace))


class _Output:
    """Counts what is shown; past the cap, the whole output goes to ``outputs/output-<n>.txt``.

    After the cap, only the last ``TAIL_CHARS`` are kept in memory and shown when the run ends, so
    the message shows how the output began and how it ended, with a marker for what was left out.
    """

    TAIL_CHARS = 1500

    def __init__(self, cap: int, root: Path) -> None:
        self.cap = cap
        self.root = root
        self.shown: list[str] = []
        self.shown_chars = 0
        self.total = 0
        self.path: Path | None = None
        self._file: IO[str] | None = None
        self._tail = ""
        self._tail_trimmed = False
        self.cut_at = 0  # characters shown before the cut

    def add(self, text: str) -> str:
        """The part of ``text`` to show (possibly empty); the rest is saved."""
        self.total += len(text)
        if self._file is not None:
            self._file.write(text)
            self._keep_tail(text)
            return ""
        room = self.cap - self.shown_chars
        if len(text) <= room:
            self.shown.append(text)
            self.shown_chars += len(text)
            return text
        # Visible in the workspace (not our private folder): it is announced as a file after the
        # run, so Slack and Teams users can open it too, not only console users.
        self.path = next_free(self.root / "outputs", "output", ".txt")
        self._file = self.path.open("w", encoding="utf-8", errors="replace")
        self._file.write("".join(self.shown))
        self._file.write(text)
        cut = text.rfind("\n", 0, room) + 1 or room  # end what is shown at a line boundary when possible
        self._keep_tail(text[cut:])
        self.shown_chars = self.cap
        self.cut_at = self.total - len(text) + cut
        return text[:cut]

    def _keep_tail(self, text: str) -> None:
        self._tail += text
        if len(self._tail) > self.TAIL_CHARS:
            self._tail = self._tail[-self.TAIL_CHARS :]
            self._tail_trimmed = True

    def close(self) -> list[AgentEvent]:
        """The end of a cut output and a notice naming the full file; nothing if nothing was cut."""
        if self._file is None or self.path is None:
            return []
        self._file.close()
        self._file = None
        rel = self.path.relative_to(self.root).as_posix()
        tail = self._tail
        if self._tail_trimmed and "\n" in tail[:200]:
            tail = tail[tail.find("\n") + 1 :]  # start the end part at a whole line
        hidden = self.total - self.cut_at - len(tail)
        marker = f"… {hidden:,} characters not shown …\n" if hidden > 0 else ""
        return [
            CodeOutput(marker + tail),
            Notice(f"Output was longer than {self.cap:,} characters, so only its start and end are shown; "
                   f"the full output ({self.total:,} characters) is saved as {rel}." if hidden > 0
                   else f"The full output ({self.total:,} characters) is also saved as {rel}.", "info"),
        ]


class KernelRun:
    """Runs one piece of code and yields its events. ``kernel_lost`` tells the caller to replace
    the kernel (it died, or it ignored an interrupt after the time limit)."""

    def __init__(self, session: KernelConnection, turn: Turn, limits: RunLimits) -> None:
        self.session = session
        self.turn = turn
        self.limits = limits
        self.frames: list[tuple[Path, str]] = []  # displayed tables, in order: (arrow file, name)
        self.announced: set[Path] = set()  # files already reported as FileProduced
        self.figures: list[Path] = []  # figures still on the kernel's own disk, in order (files_elsewhere)
        self.kernel_lost = False
        self._interrupted = False
        self._settled = False
        self._output = _Output(limits.output_cap, turn.workspace.root)

    async def events(self, code: str, *, store_history: bool = True) -> AsyncGenerator[AgentEvent, None]:
        loop = asyncio.get_running_loop()
        msg_id = self.session.execute(code, store_history=store_history)
        deadline = loop.time() + self.limits.timeout
        try:
            async with aclosing(self._until_idle(msg_id, deadline)) as stream:
                async for event in stream:
                    yield event
            if not self._settled and not self.kernel_lost:  # the time limit came first
                await self.session.interrupt()
                self._interrupted = True
                grace = loop.time() + self.limits.interrupt_grace
                async with aclosing(self._until_idle(msg_id, grace)) as stream:
                    async for event in stream:
                        yield event
                yield self._time_limit_notice()
            if self.kernel_lost and self.session.quota is not None and self.session.quota.stopped:
                yield Notice("The Python kernel was stopped: the code kept writing past this conversation's folder "
                             "size limit. Delete files you no longer need; variables were lost.", "error")
            elif self.kernel_lost and not self._interrupted:
                yield Notice(
                    "The Python kernel stopped unexpectedly (out of memory, or the code ended the process). "
                    "Variables were lost; a new kernel starts with your next code. Files and datasets stay.",
                    "error",
                )
            elif self._settled:
                await self.session.reply(msg_id, wait=1.0)  # keep the shell channel drained
        finally:
            if not self._settled and not self.kernel_lost:
                # Cancelled (Ctrl-C, Stop): stop the code, keep the kernel and its variables.
                self._interrupted = True
                await self.session.interrupt()
            ending = self._output.close()
        for event in ending:
            yield event

    def _time_limit_notice(self) -> Notice:
        limit = human_duration(self.limits.timeout)
        if self._settled:
            return Notice(f"Stopped: the code ran longer than the time limit ({limit}). Variables are kept.",
                          "warning")
        self.kernel_lost = True
        return Notice(
            f"Stopped: the code ran longer than the time limit ({limit}) and did not respond to an interrupt, "
            "so the Python kernel was restarted. Variables were lost; files and datasets stay.",
            "warning",
        )

    async def _until_idle(self, msg_id: str, deadline: float) -> AsyncGenerator[AgentEvent, None]:
        loop = asyncio.get_running_loop()
        while (left := deadline - loop.time()) > 0:
            msg = await self.session.message(min(left, _POLL))
            if msg is None:
                if not await self.session.is_alive():
                    self.kernel_lost = True
                    return
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue  # a silent request, or an abandoned earlier run
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                self._settled = True
                return
            for event in self._events_of(msg):
                yield event

    def _events_of(self, msg: Message) -> list[AgentEvent]:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            return self._show(strip_ansi(content.get("text", "")), content.get("name", "stdout"))
        if kind == "error":
            if self._interrupted and content.get("ename") == "KeyboardInterrupt":
                return []  # our own interrupt: the notice says what happened
            error = code_error(content, self.session.visible_workspace)
            return [self._quota_error(error) or error]
        if kind in ("execute_result", "display_data"):
            return self._bundle(content.get("data", {}))
        return []

    def _quota_error(self, error: CodeError) -> CodeError | None:
        """A write refused by the sandbox's disk limit, told in words (the OS says "File too large")."""
        limit = self.limits.workspace_max_bytes
        if limit is None or not any(f"[Errno {n}]" in error.evalue for n in QUOTA_ERRNOS):
            return None
        return CodeError("WorkspaceFull", f"this conversation's folder reached its size limit ({limit // 2**20:,} MB): "
                         "nothing more can be written. Delete files you no longer need.", error.traceback)

    def _show(self, text: str, stream: str) -> list[AgentEvent]:
        part = self._output.add(text)
        if not part:
            return []
        return [CodeOutput(part, "stderr" if stream == "stderr" else "stdout")]

    def _bundle(self, data: dict[str, Any]) -> list[AgentEvent]:
        if FRAME_MIME in data:
            frame = data[FRAME_MIME]
            path = self._inside(str(frame.get("path", "")), arrived=not self.session.files_elsewhere)
            # Only our hand-over folder: the file is deleted once the store has copied it.
            if path is not None and path.parent == self.turn.workspace.root / PRIVATE_DIR / "frames":
                self.frames.append((path, str(frame.get("name") or "result")))
                return []
        if FIGURE_MIME in data:
            path = self._inside(str(data[FIGURE_MIME].get("path", "")), arrived=not self.session.files_elsewhere)
            if path is not None and self.session.files_elsewhere:
                self.figures.append(path)
                return []
            return [self.produced(path)] if path is not None else []
        if EXIT_MIME in data:
            code = int(data[EXIT_MIME].get("returncode", 0))
            return [CodeError("ShellError", f"the command exited with status {code}")] if code else []
        if "image/png" in data:
            return self._save_png(str(data["image/png"]))
        text = data.get("text/plain")
        return self._show(strip_ansi(str(text)) + "\n", "stdout") if text else []

    def _inside(self, raw: str, *, arrived: bool = True) -> Path | None:
        """A path the kernel reported, if it is inside the workspace (and, when ``arrived``, an existing file)."""
        try:
            path = self.turn.workspace.resolve(self.session.host_path(raw))
        except UnsafePath:
            return None
        return path if not arrived or path.is_file() else None

    def _save_png(self, b64: str) -> list[AgentEvent]:
        try:
            png = base64.b64decode(b64, validate=False)
        except (binascii.Error, ValueError):
            return []
        path = next_free(self.turn.workspace.root / "figures", "figure", ".png")
        path.write_bytes(png)
        return [self.produced(path)]

    def produced(self, path: Path) -> FileProduced:
        """``FileProduced`` for a file now in the workspace, remembered as announced."""
        self.announced.add(path)
        return FileProduced(path=path, name=self.turn.workspace.relative(path), size=path.stat().st_size,
                            media_type=media_type(path))
