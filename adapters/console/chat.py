"""``datathread chat``: a console conversation on the embedded default.

Input is line based: a line opening a code fence (```` ``` ````) reads until the closing fence.
stdout carries the conversation (failures included); logs go to stderr. EOF or ``exit`` ends the
chat with exit status 0 after shutting the kernel down; Ctrl-C during a run stops that run only.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import secrets
import signal
import sys
from collections.abc import Callable
from typing import TextIO

from adapters.console.surface import ConsoleOutput, ConsoleSurface
from bot.engine import Engine
from bot.messages import IncomingMessage, ThreadKey

log = logging.getLogger(__name__)

EXIT_WORDS = frozenset({"exit", "quit", ":q"})


def console_thread(name: str) -> ThreadKey:
    return ThreadKey("console", "local", "console", name)


def new_thread_name() -> str:
    return "chat-" + secrets.token_hex(3)


class LineReader:
    """Reads messages from stdin without blocking the event loop (a thread does the blocking read)."""

    def __init__(self, stream: TextIO, prompt: Callable[[str], None]) -> None:
        self._stream = stream
        self._prompt = prompt

    async def _line(self) -> str | None:
        line = await asyncio.to_thread(self._stream.readline)
        return None if line == "" else line.rstrip("\n")

    async def message(self) -> str | None:
        """The next message, or ``None`` at end of input."""
        self._prompt("you> ")
        first = await self._line()
        if first is None:
            return None
        if not first.strip().startswith("```"):
            return first
        lines = [first]
        while True:
            self._prompt("...  ")
            line = await self._line()
            if line is None:
                break
            lines.append(line)
            if line.strip() == "```":
                break
        return "\n".join(lines)


async def run_chat(engine: Engine, thread_name: str | None, agent_label: str, *, runs_code: bool,
                   stdin: TextIO | None = None, web: bool = False) -> int:
    """Run the console conversation until EOF or ``exit``; return the exit status.

    ``runs_code``: the agent runs what is typed (the local kernel), so the hint asks for code.
    ``web``: the web view is being served; print the link to this conversation's workspace page.
    """
    stdin = stdin or sys.stdin
    output = ConsoleOutput()
    surface = ConsoleSurface(output)
    thread = console_thread(thread_name or new_thread_name())
    user = getpass.getuser()
    conversation, resumed = await engine.open_conversation(thread, user)
    engine.start()
    hint = ("send Python (one line, or a ``` fenced block), or type help" if runs_code
            else "ask in plain words, or type help")
    output.write_lines([
        f"datathread · conversation {thread.thread!r}{' (resumed)' if resumed else ''} · agent: {agent_label}",
        f"  workspace: {conversation.workspace}",
        f"  resume later with: datathread chat --thread {thread.thread}",
        f"  {hint} · exit or Ctrl-D to leave",
        # Said once, here: a resumed conversation gets a new kernel, and a NameError later would be a surprise.
        *(["  the Python kernel starts fresh: variables from before are gone (files and datasets stay)"]
          if resumed and runs_code else []),
    ])
    link = await engine.web.link(conversation) if web else None
    if link is not None:
        output.write_lines([f"  workspace in your browser: {link}"])

    def prompt(text: str) -> None:
        if output.interactive:
            output.out.write(text)
            output.out.flush()

    reader = LineReader(stdin, prompt)
    loop = asyncio.get_running_loop()

    def on_interrupt() -> None:
        if engine.cancel(thread):
            output.write_lines(["  ! interrupting…"])
        else:
            output.write_lines(["", "  (type exit or press Ctrl-D to leave)"])
            prompt("you> ")

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread / not supported
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        while True:
            text = await reader.message()
            if text is None and output.interactive:
                output.write_lines([""])  # Ctrl-D leaves the cursor after the prompt
            if text is None or text.strip().lower() in EXIT_WORDS:
                break
            if not text.strip():
                continue
            if not output.interactive:
                first = text.split("\n", 1)[0]
                output.write_lines([f"you> {first}{' …' if chr(10) in text else ''}"])
            message = IncomingMessage(thread=thread, user=user, text=text)
            try:
                await engine.submit(message, surface)
            except Exception:
                log.exception("message failed")
                output.write_lines(["  ✗ That failed on our side (details in the log). Try again."])
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        output.clear_spinner()
        await engine.aclose()
    return 0
