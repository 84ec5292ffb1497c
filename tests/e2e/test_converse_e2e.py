"""``datathread chat`` and ``datathread doctor`` as a user runs them, with the Converse agent.

A real process; Bedrock is the local fake (through ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``), and the
code runs in a real Jupyter kernel (``DATATHREAD_EXECUTOR=local``) or in the local AgentCore fake.
What is checked is what the user reads on stdout, in order, and when it appears.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.test_converse import CHECK_AND_PLOT, GENERATE, aws_environment
from tests.fakes.agentcore import FakeAgentCore
from tests.fakes.bedrock_runtime import Call, Fail, FakeBedrockRuntime, Item, Say, reply

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses

REQUEST = ("generate two csv files SALES and DETAILS of 200 companies, east coast sales up to 700k, west coast "
           "500k to 2M, check the rules and draw a box plot of sales by region")
#: Six lines of about 80 characters: long enough to stream past the rationale hold-back.
ANSWER_LINES = [f"- Line {i}: " + "both files follow the rules; the box plot compares east and west sales. "[:70]
                for i in range(1, 7)]
ANSWER = "\n".join(ANSWER_LINES)


@dataclass
class Fakes:
    runtime: FakeBedrockRuntime
    agentcore: FakeAgentCore
    tmp: Path


@pytest.fixture
async def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fakes]:
    runtime = await FakeBedrockRuntime([]).start()
    agentcore = await FakeAgentCore(root=tmp_path / "sandbox").start()
    aws_environment(monkeypatch, tmp_path, runtime.url, agentcore.url)
    try:
        yield Fakes(runtime, agentcore, tmp_path)
    finally:
        await runtime.stop()
        await agentcore.stop()


@dataclass
class Chat:
    """A running ``datathread chat``: every stdout line with the time it arrived."""

    proc: asyncio.subprocess.Process
    lines: list[tuple[float, str]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, fakes: Fakes, thread: str, executor: str) -> Chat:
        env = {**os.environ, "DATATHREAD_HOME": str(fakes.tmp / "home"), "BEDROCK_MODEL_ID": "test-model",
               "DATATHREAD_EXECUTOR": executor}
        env.pop("DATATHREAD_AGENT", None)  # BEDROCK_MODEL_ID alone picks the Converse agent
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "chat", "--thread", thread, cwd=fakes.tmp, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        chat = cls(proc)
        chat._reader = asyncio.create_task(chat._read())
        return chat

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append((time.monotonic(), line.decode().rstrip("\n")))

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    async def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def wait_for(self, pattern: str, after: int = 0, within: float = 90) -> int:
        """The index of the first line from ``after`` on matching ``pattern``."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for i, (_, line) in enumerate(self.lines[after:], after):
                if re.search(pattern, line):
                    return i
            if self.proc.returncode is not None and self._reader is not None and self._reader.done():
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"{pattern!r} never appeared; transcript:\n{self.text}")

    async def close(self) -> str:
        """End the input (Ctrl-D), wait for a clean exit, and return stderr."""
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        err = await asyncio.wait_for(self.proc.stderr.read(), 60)
        await asyncio.wait_for(self.proc.wait(), 60)
        if self._reader is not None:
            await self._reader
        assert self.proc.returncode == 0, err.decode()[-2000:] + "\n" + self.text
        return err.decode()


def index(lines: list[str], pattern: str, start: int = 0) -> int:
    for i, line in enumerate(lines[start:], start):
        if re.search(pattern, line):
            return i
    raise AssertionError(f"{pattern!r} not after line {start}:\n" + "\n".join(lines))


def sales_script() -> list[Item]:
    return [
        reply(Say("I'll generate both files first."), Call("run_python", {"code": GENERATE})),
        reply(Say("Now I check the rules and draw the chart."), Call("run_python", {"code": CHECK_AND_PLOT})),
        # ~40 deltas 60 ms apart: the answer takes ~2.5 s to arrive, so streaming is visible.
        reply(Say(ANSWER, chunk=12), delay=0.06),
    ]


@pytest.mark.parametrize("executor", ["local", "agentcore"])
async def test_sales_details_in_the_console_then_resumed_after_a_restart(fakes: Fakes, executor: str) -> None:
    fakes.runtime.script = sales_script()
    chat = await Chat.start(fakes, "sales", executor)
    await chat.say(REQUEST)
    done = await chat.wait_for(r"done in")
    await chat.say("next")
    await chat.wait_for(r"SALES · rows 21–40 of 200", after=done)
    await chat.close()
    lines = [line for _, line in chat.lines]

    # What the user reads, in order: why, the code, its output, the files and dataset pages, the
    # second step, the chart, then the answer, then "done".
    at = index(lines, r"I'll generate both files first\.")
    at = index(lines, r"┆ .*print\(\"wrote 200 companies\"\)", at)
    at = index(lines, r"^\s+wrote 200 companies$", at)
    at = index(lines, r"file DETAILS\.csv", at)
    at = index(lines, r'dataset "DETAILS" · 200 rows × 2 columns', at)
    at = index(lines, r"DETAILS · rows 1–20 of 200", at)
    at = index(lines, r'dataset "SALES" · 200 rows × 3 columns', at)
    at = index(lines, r"SALES · rows 1–20 of 200", at)
    at = index(lines, r"│ C00001 +│ \w+ \w+ \w+ +│ +\d+ │", at)
    at = index(lines, r"Now I check the rules and draw the chart\.", at)
    at = index(lines, r"┆ .*df\.boxplot", at)
    at = index(lines, r"all rules hold", at)
    at = index(lines, r"image sales_by_region\.png \(\d+(\.\d)? KB\)", at)
    first_answer = index(lines, re.escape(ANSWER_LINES[0]), at)
    last_answer = index(lines, re.escape(ANSWER_LINES[-1]), first_answer)
    assert index(lines, r"done in", last_answer) == done
    assert index(lines, r"│ C00021 ", done) > done  # "next" paged the SALES dataset
    assert "Traceback" not in chat.text and "TurnFailed" not in chat.text
    workspace = next((fakes.tmp / "home" / "workspaces").iterdir())
    assert (workspace / "sales_by_region.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"SALES.csv", "DETAILS.csv"} <= {p.name for p in workspace.iterdir()}

    # The answer streamed: its first line was on screen well before its last one arrived.
    shown_first, shown_last = chat.lines[first_answer][0], chat.lines[last_answer][0]
    assert shown_last - shown_first > 0.8, chat.text

    # A new process resumes the thread: the model gets the stored history and the datasets.
    fakes.runtime.script = [reply(Say("SALES and DETAILS have 200 rows each."))]
    chat = await Chat.start(fakes, "sales", executor)
    await chat.say("how many rows?")
    await chat.wait_for(r"done in")
    await chat.close()
    assert "(resumed)" in chat.lines[0][1] and "SALES and DETAILS have 200 rows each." in chat.text
    request = fakes.runtime.requests[-1]
    texts = [b.get("text", "") for m in request["messages"] for b in m["content"]]
    assert len(request["messages"]) == 7 and texts[0].startswith("generate two csv files")
    assert texts[-2] == ANSWER and texts[-1] == "how many rows?"
    assert "SALES" in request["system"][0]["text"] and "COMPANY_STATE_CODE" in request["system"][0]["text"]


async def test_a_throttled_model_then_a_failing_tool_the_model_fixes(fakes: Fakes) -> None:
    fakes.runtime.script = [
        Fail(429, "ThrottlingException"),
        reply(Say("Reading the file."), Call("run_python", {"code": "import pandas as pd\npd.read_csv('nope.csv')"})),
        reply(Say("That file does not exist; I'll make it."), Call("run_python", {"code": "print(6 * 7)"})),
        reply(Say("The answer is 42.")),
    ]
    chat = await Chat.start(fakes, "fix", "local")
    await chat.say("what is six times seven, from nope.csv?")
    await chat.wait_for(r"done in")
    await chat.close()
    lines = [line for _, line in chat.lines]
    at = index(lines, r"Reading the file\.")
    at = index(lines, r"FileNotFoundError", at)
    at = index(lines, r"That file does not exist", at)
    at = index(lines, r"^\s+42$", at)
    index(lines, r"The answer is 42\.", at)
    assert "Bedrock is throttling" not in chat.text  # retried quietly: nothing had been shown yet
    assert len(fakes.runtime.requests) == 4


async def test_doctor_reports_in_plain_words(fakes: Fakes) -> None:
    async def doctor(**env: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "doctor", cwd=fakes.tmp,
            env={**os.environ, "DATATHREAD_HOME": str(fakes.tmp / "home"), **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    fakes.runtime.script = [reply(Say("ok"))]
    code, out = await doctor(BEDROCK_MODEL_ID="anthropic.claude-test", DATATHREAD_EXECUTOR="agentcore")
    assert code == 0, out
    assert "[ok] Bedrock model: anthropic.claude-test answers with tool use enabled" in out
    assert "[ok] AgentCore Code Interpreter: aws.codeinterpreter.v1: a session started and stopped" in out
    assert fakes.runtime.paths == ["/model/anthropic.claude-test/converse-stream"]  # the API chat uses
    assert len(fakes.agentcore.started) == len(fakes.agentcore.stopped) == 1

    fakes.runtime.script = [Fail(400, "ValidationException", "Invocation of model ID anthropic.claude-test with "
                                 "on-demand throughput isn't supported. Retry your request with the ID or ARN "
                                 "of an inference profile that contains this model.")]
    code, out = await doctor(BEDROCK_MODEL_ID="anthropic.claude-test", DATATHREAD_EXECUTOR="agentcore",
                             AWS_ENDPOINT_URL_BEDROCK_AGENTCORE="http://127.0.0.1:9")
    assert code == 1, out
    assert "[FAIL] Bedrock model: anthropic.claude-test: ValidationException (Invocation of model ID" in out
    assert "BEDROCK_MODEL_ID to the profile ID (e.g. us.anthropic.claude-test)" in out
    assert "could not start a session (Connection)" in out and "could not be reached" in out
    assert "DATATHREAD_EXECUTOR=local" in out and "secret-test" not in out
