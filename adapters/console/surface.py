"""The console as a ``Surface``: it cannot edit what it printed, so a live turn prints what is new.

Blocks of a turn only ever grow at the end (output lines, answer tokens), so the live message
remembers how many lines of each block it printed and prints the rest. The answer's last line is
held back while it is still streaming so words are not printed twice.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from pathlib import Path
from typing import Literal, TextIO

from bot.messages import MessageRef, RemoteFile
from bot.reply import Reply
from bot.surface import SurfaceError
from bot.transport import Limits, StreamRefused
from bot.workspace import human_size
from renderers.terminal import Frame, render, stream_text, turn_messages

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class ConsoleOutput:
    """stdout plus, on a terminal, a one-line spinner that is erased before anything else prints."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.interactive = self.out.isatty()
        self._spinner_shown = False

    def write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        self.clear_spinner()
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def show_spinner(self, frame: str) -> None:
        if self.interactive:
            self.out.write("\r\x1b[2K" + frame)
            self.out.flush()
            self._spinner_shown = True

    def clear_spinner(self) -> None:
        if self._spinner_shown:
            self.out.write("\r\x1b[2K")
            self.out.flush()
            self._spinner_shown = False


class ConsoleTransport:
    """``bot.transport.LiveTransport`` for one turn on the console: it cannot edit, so an edit prints
    the lines of each block that are not on screen yet; a spinner runs until the final frame."""

    name = "the console"
    limits = Limits(message_bytes=1 << 40, edit_interval=0.0, buttons=False, native_stop=True)  # Ctrl-C
    stream_id = None  # never streams
    render = staticmethod(turn_messages)
    stream_text = staticmethod(stream_text)

    def __init__(self, output: ConsoleOutput) -> None:
        self._out = output
        self._printed: list[tuple[str, ...]] = []
        self._started = time.monotonic()
        self._spin: asyncio.Task[None] | None = None

    async def _spinner(self) -> None:
        for frame in itertools.cycle(SPINNER):
            self._out.show_spinner(f"  {frame} running… {time.monotonic() - self._started:.0f} s")
            await asyncio.sleep(0.1)

    async def pace(self, kind: Literal["append", "edit"]) -> None:
        return None  # a terminal takes every line at once

    async def open_stream(self, reply: Reply, text: str) -> str:
        raise StreamRefused("not_supported")

    async def append(self, reply: Reply, text: str, delta: str) -> None:
        raise StreamRefused("not_supported")

    async def close_stream(self, reply: Reply | None, delta: str) -> str:
        raise StreamRefused("not_supported")

    async def post(self, message: Frame) -> str:
        if self._spin is None and self._out.interactive:
            self._spin = asyncio.create_task(self._spinner())
        await self.edit("turn", message)
        return "turn"

    async def edit(self, message_id: str, message: Frame) -> None:
        if message.final:
            await self._stop_spinner()
        out: list[str] = []
        for i, lines in enumerate(message.blocks):
            done = list(self._printed[i]) if i < len(self._printed) else []
            out += _unprinted(done, list(lines))
            if i < len(self._printed):
                self._printed[i] = lines
            else:
                self._printed.append(lines)
        self._out.write_lines(out)

    async def _stop_spinner(self) -> None:
        if self._spin is not None:
            self._spin.cancel()
            await asyncio.gather(self._spin, return_exceptions=True)


def _unprinted(done: list[str], lines: list[str]) -> list[str]:
    """The lines of a block's new form that the terminal has not shown yet.

    Usually the block only grew (print the new lines, or a last line that grew). A long output is
    re-clipped to its start and end as it grows: then continue after the last line we printed.
    """
    if not done:
        return lines
    if lines[: len(done) - 1] == done[:-1] and len(lines) >= len(done):
        return lines[len(done) :] if lines[len(done) - 1] == done[-1] else lines[len(done) - 1 :]
    after = next((j for j in range(len(lines) - 1, -1, -1) if lines[j] == done[-1]), None)
    if after is not None:
        return lines[after + 1 :]
    marker = next((j for j, line in enumerate(lines) if "not shown" in line), None)
    return lines[marker:] if marker is not None else []


class ConsoleSurface:
    """``Surface`` printing to stdout. Paths are shown relative to the working directory."""

    private_notices = True  # the terminal is its owner's
    native_charts = False  # a chart is a PNG file the terminal names
    output_chars = 10_000_000  # a terminal scrolls: show all of it (the agent's own output cap still applies)

    def __init__(self, output: ConsoleOutput | None = None) -> None:
        self.output = output or ConsoleOutput()

    def live_transport(self) -> ConsoleTransport:
        return ConsoleTransport(self.output)

    async def post(self, reply: Reply) -> MessageRef | None:
        self.output.write_lines(render(reply).split("\n"))
        return None

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        await self.post(reply)  # a terminal cannot edit: the new page is printed below

    async def upload(self, path: Path, *, name: str, title: str | None = None) -> None:
        shown = _display_path(path)
        size = human_size((await asyncio.to_thread(path.stat)).st_size)
        if title and title.startswith("chart"):
            self.output.write_lines([f"  ✓ chart saved: {shown}"])
        elif path.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".svg"):
            self.output.write_lines([f"  ✓ image {name} ({size}) saved: {shown}"])
        else:
            self.output.write_lines([f"  ✓ file {name} ({size}): {shown}"])

    async def set_status(self, text: str | None) -> None:
        return None  # the live message shows a spinner instead

    async def notify(self, user: str, reply: Reply) -> None:
        await self.post(reply)

    async def download(self, file: RemoteFile, limit: int) -> bytes:
        raise SurfaceError("attachments are not supported on the console; save the file in the workspace")


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
