"""The AgentCore Code Interpreter executor (and the Converse doctor) against the local fakes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bot.agents.agentcore.executor import SESSION_NAMESPACE, AgentCoreExecutor
from bot.agents.converse.agent import diagnose
from bot.conversation import Turn
from bot.events import AgentEvent, CodeError, CodeOutput, DatasetProduced, FileProduced, FinalText, Notice
from tests.e2e.test_converse import Env, answer, aws_env, collect
from tests.fakes.bedrock_runtime import Call, Fail, Say, reply

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    async with aws_env(tmp_path, monkeypatch) as harness:
        yield harness


async def run(executor: AgentCoreExecutor, turn: Turn, code: str, language: str = "python") -> list[AgentEvent]:
    return [event async for event in executor.execute(turn, code, language=language)]


def stdout(events: Sequence[AgentEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, CodeOutput) and e.stream == "stdout")


async def test_attachments_are_written_into_the_session_and_results_come_back(env: Env) -> None:
    conversation = await env.conversation()
    turn = await env.turn(conversation, "sum it", {"numbers.csv": b"n\n1\n2\n3\n"})
    executor = env.executor()
    code = ("import pandas as pd\nd = pd.read_csv('numbers.csv')\nprint(d.n.sum())\n"
            "d.describe().to_csv('out/summary.csv')")
    events = await run(executor, turn, "import os; os.makedirs('out', exist_ok=True)\n" + code)
    assert stdout(events).strip() == "6"
    assert [e.name for e in events if isinstance(e, FileProduced)] == ["out/summary.csv"]
    assert [e.dataset.name for e in events if isinstance(e, DatasetProduced)] == ["summary"]
    assert (conversation.workspace / "out" / "summary.csv").read_text().startswith(",n")
    session_id = next(iter(env.agentcore.sessions))
    assert env.agentcore.tools_called()[:2] == ["writeFiles", "executeCode"]
    # The next run neither re-uploads the attachment nor re-fetches unchanged files.
    events = await run(executor, turn, "print('again')")
    assert stdout(events) == "again\n" and not any(isinstance(e, FileProduced) for e in events)
    assert env.agentcore.tools_called(session_id).count("writeFiles") == 1
    assert env.agentcore.tools_called(session_id).count("readFiles") == 1


async def test_failures_become_code_errors(env: Env) -> None:
    conversation = await env.conversation()
    turn = await env.turn(conversation, "x")
    executor = env.executor()
    events = await run(executor, turn, "print('before')\n1 / 0")
    assert stdout(events) == "before\n"
    [error] = [e for e in events if isinstance(e, CodeError)]
    assert (error.ename, error.evalue) == ("ZeroDivisionError", "division by zero")
    assert "Traceback" in error.traceback
    events = await run(executor, turn, "echo partial; exit 3", language="shell")
    [error] = [e for e in events if isinstance(e, CodeError)]
    assert stdout(events) == "partial\n" and error.ename == "ExitCode" and "exit code 3" in error.evalue


async def test_a_session_that_expired_between_turns_is_restarted_with_the_files(env: Env) -> None:
    conversation = await env.conversation()
    executor = env.executor()
    turn = await env.turn(conversation, "make", {"input.csv": b"a\n1\n"})
    await run(executor, turn, "open('made.txt', 'w').write('from the first session')")
    first = next(iter(env.agentcore.sessions))
    env.agentcore.expire(first)

    # A new process: the stored session id is reused first, found expired, and replaced.
    restarted = AgentCoreExecutor(env.state, region="us-east-1", read_timeout=60)
    events = await run(restarted, await env.turn(conversation, "again"),
                       "print(open('made.txt').read(), open('input.csv').read().split()[1])")
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "restarted" in notices[0].text and "variables" in notices[0].text
    assert stdout(events) == "from the first session 1\n"
    stored = await env.state.get_value(SESSION_NAMESPACE, conversation.id)
    assert stored is not None
    second = stored["session_id"]
    assert second != first and len(env.agentcore.started) == 2
    assert env.agentcore.tools_called(first) == ["writeFiles", "executeCode", "listFiles", "readFiles", "executeCode"]
    written = [args for sid, tool, args in env.agentcore.calls if sid == second and tool == "writeFiles"]
    assert sorted(item["path"] for item in written[0]["content"]) == ["input.csv", "made.txt"]


async def test_a_restarted_process_reuses_the_live_session(env: Env) -> None:
    conversation = await env.conversation()
    await run(env.executor(), await env.turn(conversation, "x", {"in.csv": b"a\n1\n"}), "x = 1")
    restarted = AgentCoreExecutor(env.state, region="us-east-1", read_timeout=60)
    events = await run(restarted, await env.turn(conversation, "y"), "print(open('in.csv').read().split()[1])")
    assert stdout(events) == "1\n" and not any(isinstance(e, Notice) for e in events)
    [session_id] = env.agentcore.sessions
    assert len(env.agentcore.started) == 1
    assert env.agentcore.tools_called(session_id).count("writeFiles") == 1  # the attachment is not sent again


async def test_a_session_expiring_mid_conversation_reruns_the_code(env: Env) -> None:
    conversation = await env.conversation()
    executor = env.executor()
    turn = await env.turn(conversation, "x")
    await run(executor, turn, "print(1)")
    env.agentcore.expire(next(iter(env.agentcore.sessions)))
    events = await run(executor, turn, "print(2)")
    assert stdout(events) == "2\n" and any(isinstance(e, Notice) for e in events)


async def test_the_loop_survives_a_restarted_environment(env: Env) -> None:
    """End to end: turn two finds the session gone, the files return, the model sees the notice."""
    conversation = await env.conversation()
    agent = env.agent()
    env.runtime.script = [reply(Call("run_python", {"code": "open('keep.txt','w').write('kept')"})), reply(Say("ok"))]
    await collect(agent, await env.turn(conversation, "write"))
    env.agentcore.expire(next(iter(env.agentcore.sessions)))
    env.runtime.script = [reply(Call("run_python", {"code": "print(open('keep.txt').read())"})), reply(Say("kept"))]
    events = await collect(agent, await env.turn(conversation, "read"))
    assert answer(events) == "kept" and isinstance(events[-1], FinalText)
    result = env.runtime.requests[-1]["messages"][-1]["content"][0]["toolResult"]
    assert result["status"] == "success" and "kept" in result["content"][0]["text"]
    assert "restarted" in result["content"][0]["text"]


async def test_release_stops_the_session(env: Env) -> None:
    conversation = await env.conversation()
    executor = env.executor()
    await run(executor, await env.turn(conversation, "x"), "print(1)")
    session_id = next(iter(env.agentcore.sessions))
    await executor.release(conversation)
    assert env.agentcore.stopped == [session_id]
    assert await env.state.get_value(SESSION_NAMESPACE, conversation.id) is None


async def test_an_unreachable_interpreter_fails_the_turn_clearly(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", "http://127.0.0.1:9")
    executor = AgentCoreExecutor(env.state, region="us-east-1", connect_timeout=1, read_timeout=2)
    events = await run(executor, await env.turn(await env.conversation(), "x"), "print(1)")
    assert len(events) == 1 and "Code Interpreter" in events[0].message  # type: ignore[union-attr]


async def test_doctor_checks_model_and_interpreter(env: Env) -> None:
    env.runtime.script = [reply(Say("ok"))]
    checks = await diagnose({**os.environ, "BEDROCK_MODEL_ID": "test-model", "DATATHREAD_EXECUTOR": "agentcore"})
    assert [(c.name, c.ok) for c in checks] == [
        ("Converse settings", True), ("Bedrock model", True), ("AgentCore Code Interpreter", True)]
    assert env.runtime.paths == ["/model/test-model/converse-stream"]  # the API (and IAM action) chat uses
    assert env.runtime.requests[0]["toolConfig"]["tools"][0]["toolSpec"]["name"] == "ping"
    assert len(env.agentcore.started) == 1 and len(env.agentcore.stopped) == 1

    env.runtime.script = [Fail(400, "ValidationException", "This model doesn't support tool use.")]
    checks = await diagnose({**os.environ, "BEDROCK_MODEL_ID": "old-model", "DATATHREAD_EXECUTOR": "local"})
    model = checks[1]
    assert not model.ok and "tool use" in model.hint and checks[2].ok


async def test_an_attachment_far_beyond_ten_megabytes_reaches_the_session(env: Env) -> None:
    data = b"n\n" + b"1234567\n" * 1_600_000  # 12.8 MB: more than Agents Classic's 10 MB limit
    turn = await env.turn(await env.conversation(), "sum", {"big.csv": data})
    events = await run(env.executor(), turn, "import os; print(os.path.getsize('big.csv'))")
    assert stdout(events) == f"{len(data)}\n" and not any(isinstance(e, Notice) for e in events)


async def test_too_large_files_are_warned_about_once_and_our_folders_stay_out(env: Env) -> None:
    conversation = await env.conversation()
    turn = await env.turn(conversation, "x", {"small.csv": b"a\n1\n", "big.csv": b"n\n" + b"1\n" * 200})
    for folder, name in (("exports", "full.csv"), ("charts", "chart.png"), ("code", "step-1.py")):
        await turn.workspace.write(name, b"ours", folder=folder)
    executor = AgentCoreExecutor(env.state, region="us-east-1", read_timeout=60, max_file_bytes=300)
    events = await run(executor, turn, "open('made.bin', 'wb').write(b'x' * 500)")
    warnings = [e.text for e in events if isinstance(e, Notice)]
    assert len(warnings) == 2 and "big.csv" in warnings[0] and "made.bin" in warnings[1]
    session_id = next(iter(env.agentcore.sessions))
    written = [item["path"] for sid, tool, args in env.agentcore.calls if tool == "writeFiles"
               for item in args["content"]]
    assert written == ["small.csv"]  # not big.csv, not exports/, charts/ or code/
    assert not (env.agentcore.sessions[session_id] / "exports").exists()
    # The next runs say nothing more about the same files.
    for _ in range(2):
        events = await run(executor, turn, "print('again')")
        assert stdout(events) == "again\n" and not any(isinstance(e, Notice) for e in events)
    assert env.agentcore.tools_called(session_id).count("writeFiles") == 1
