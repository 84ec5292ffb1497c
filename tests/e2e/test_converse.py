"""The Converse agent loop against local Bedrock Runtime and AgentCore fakes, through real boto3."""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from bot.agents.agentcore.executor import AgentCoreExecutor
from bot.agents.converse.agent import HISTORY_NAMESPACE, ConverseAgent
from bot.agents.converse.config import ConverseConfig
from bot.agents.converse.history import is_valid, trim
from bot.conversation import Attachment, Conversation, Turn
from bot.datasets.local import LocalDatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.events import (
    AgentEvent,
    CodeError,
    CodeOutput,
    CodeStarted,
    DatasetProduced,
    FileProduced,
    FinalText,
    Notice,
    Rationale,
    TurnFailed,
)
from bot.messages import ThreadKey
from bot.storage.local import SqliteStateStore
from bot.workspace import Workspace
from tests.fakes.agentcore import FakeAgentCore
from tests.fakes.bedrock_runtime import Call, Fail, FakeBedrockRuntime, Hang, Say, StreamFault, Think, reply

# -- harness --------------------------------------------------------------------------------------


class Env:
    def __init__(self, tmp: Path, runtime: FakeBedrockRuntime, agentcore: FakeAgentCore) -> None:
        self.tmp, self.runtime, self.agentcore = tmp, runtime, agentcore
        self.state = SqliteStateStore(tmp / "state.sqlite3", tmp / "workspaces")
        self.store = LocalDatasetStore(tmp / "datasets")

    async def conversation(self, thread: str = "t1") -> Conversation:
        return await self.state.start_conversation(ThreadKey("console", "local", "chat", thread), "alice")

    async def turn(self, conversation: Conversation, text: str, files: dict[str, bytes] | None = None) -> Turn:
        workspace = Workspace(conversation.workspace).ensure()
        attachments = []
        for name, data in (files or {}).items():
            path = await workspace.write(name, data)
            attachments.append(Attachment(name, path, len(data), "text/csv"))
        return Turn(conversation, text, tuple(attachments), workspace, ThreadDatasets(self.store, conversation))

    def executor(self) -> AgentCoreExecutor:
        return AgentCoreExecutor(self.state, region="us-east-1", read_timeout=60)

    def agent(self, **overrides: Any) -> ConverseAgent:
        config = ConverseConfig(model_id="test-model", executor="agentcore", region="us-east-1",
                                backoff_seconds=0.01, throttle_retries=2, rationale_holdback_chars=80)
        return ConverseAgent(replace(config, **overrides), self.executor(), self.state)

    async def history(self, conversation: Conversation) -> list[dict[str, Any]]:
        return list(await self.state.get_value(HISTORY_NAMESPACE, conversation.id) or [])


def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp: Path, runtime_url: str, agentcore_url: str) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", runtime_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", agentcore_url)


@contextlib.asynccontextmanager
async def aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    """Both fakes running, boto3 pointed at them with fake credentials, a state store and datasets."""
    runtime = await FakeBedrockRuntime([]).start()
    agentcore = await FakeAgentCore(root=tmp_path / "sandbox").start()
    aws_environment(monkeypatch, tmp_path, runtime.url, agentcore.url)
    harness = Env(tmp_path, runtime, agentcore)
    try:
        yield harness
    finally:
        await runtime.stop()
        await agentcore.stop()
        await harness.store.aclose()
        await harness.state.aclose()


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    async with aws_env(tmp_path, monkeypatch) as harness:
        yield harness


async def collect(agent: ConverseAgent, turn: Turn) -> list[AgentEvent]:
    return [event async for event in agent.run(turn)]


def answer(events: Sequence[AgentEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, FinalText))


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [b["toolResult"] for m in request["messages"] for b in m["content"] if "toolResult" in b]


# -- the seed's SALES / DETAILS request -----------------------------------------------------------

GENERATE = textwrap.dedent("""
    import random
    random.seed(7)
    words = ["Maple", "River", "Summit", "Harbor", "Cedar", "Beacon", "Granite", "Willow", "Falcon", "Orchard"]
    kinds = ["Foods", "Logistics", "Software", "Textiles", "Energy"]
    east, west = ["NY", "MA", "NJ", "FL", "VA"], ["CA", "OR", "WA"]
    sales, details = ["COMPANY_ID,COMPANY_NAME,SALES_2024"], ["COMPANY_ID,COMPANY_STATE_CODE"]
    for i in range(1, 201):
        cid = f"C{i:05d}"
        state = random.choice(east if i % 2 else west)
        revenue = random.randint(0, 700_000) if state in east else random.randint(500_000, 2_000_000)
        name = f"{random.choice(words)} {random.choice(words)} {random.choice(kinds)}"
        sales.append(f"{cid},{name},{revenue}")
        details.append(f"{cid},{state}")
    open("SALES.csv", "w").write("\\n".join(sales) + "\\n")
    open("DETAILS.csv", "w").write("\\n".join(details) + "\\n")
    print("wrote 200 companies")
""")

CHECK_AND_PLOT = textwrap.dedent("""
    import pandas as pd
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sales, details = pd.read_csv("SALES.csv"), pd.read_csv("DETAILS.csv")
    df = sales.merge(details, on="COMPANY_ID")
    df["REGION"] = df.COMPANY_STATE_CODE.map(lambda s: "west" if s in ("CA", "OR", "WA") else "east")
    assert len(sales) == len(details) == 200 and set(sales.COMPANY_ID) == set(details.COMPANY_ID)
    assert df[df.REGION == "east"].SALES_2024.between(0, 700_000).all()
    assert df[df.REGION == "west"].SALES_2024.between(500_000, 2_000_000).all()
    df.boxplot(column="SALES_2024", by="REGION")
    plt.savefig("sales_by_region.png")
    print("all rules hold")
""")


@pytest.mark.e2e
async def test_sales_details_request_runs_code_twice_and_returns_files_datasets_and_chart(env: Env) -> None:
    answer_text = ("Both files follow every rule: 200 shared IDs, east coast sales up to $700k and west "
                   "coast sales from $500k to $2M. The box plot compares the regions.")
    env.runtime.script = [
        reply(Say("I'll generate both files first."), Call("run_python", {"code": GENERATE})),
        reply(Say("Now I check the rules and draw the chart."), Call("run_python", {"code": CHECK_AND_PLOT})),
        reply(Say(answer_text, chunk=10)),
    ]
    conversation = await env.conversation()
    agent = env.agent()
    events = await collect(agent, await env.turn(conversation, "generate two csv files for me ..."))

    assert [e.text for e in events if isinstance(e, Rationale)] == [
        "I'll generate both files first.", "Now I check the rules and draw the chart."]
    assert [e.code for e in events if isinstance(e, CodeStarted)] == [GENERATE, CHECK_AND_PLOT]
    files = [e.name for e in events if isinstance(e, FileProduced)]
    assert files == ["DETAILS.csv", "SALES.csv", "sales_by_region.png"]
    png = conversation.workspace / "sales_by_region.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    datasets = [e.dataset for e in events if isinstance(e, DatasetProduced)]
    assert sorted(d.name for d in datasets) == ["DETAILS", "SALES"]
    sales = next(d for d in datasets if d.name == "SALES")
    assert sales.rows == 200 and [c.name for c in sales.columns] == ["COMPANY_ID", "COMPANY_NAME", "SALES_2024"]
    page = await env.store.page(sales.id, 10, 20)
    assert page.rows[0][0] == "C00181" and not page.has_next
    # Order: each run's code, then its output, then its files; the answer last, in several pieces.
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("CodeStarted") < kinds.index("CodeOutput") < kinds.index("FileProduced")
    finals = [e for e in events if isinstance(e, FinalText)]
    assert len(finals) >= 3 and answer(events) == answer_text and isinstance(events[-1], FinalText)
    # The model saw both tool results, and the second request carried the first exchange.
    first, second = tool_results(env.runtime.requests[1]), tool_results(env.runtime.requests[2])
    assert first[0]["status"] == "success" and "wrote 200 companies" in first[0]["content"][0]["text"]
    assert "SALES" in first[0]["content"][0]["text"] and second[1]["status"] == "success"
    assert "all rules hold" in second[1]["content"][0]["text"]
    assert env.runtime.requests[0]["toolConfig"]["tools"][0]["toolSpec"]["name"] == "run_python"
    history = await env.history(conversation)
    assert is_valid(history) and len(history) == 6 and history[-1]["content"][-1]["text"] == answer_text

    # The next turn's system prompt lists the datasets with their columns; history is sent.
    env.runtime.script = [reply(Say("SALES has 200 rows."))]
    await collect(agent, await env.turn(conversation, "how many rows?"))
    request = env.runtime.requests[-1]
    assert "SALES" in request["system"][0]["text"] and "COMPANY_STATE_CODE (str)" in request["system"][0]["text"]
    assert len(request["messages"]) == 7 and request["messages"][-1]["content"][0]["text"] == "how many rows?"


# -- streaming -----------------------------------------------------------------------------------


@pytest.mark.e2e
async def test_reasoning_is_rationale_and_short_answers_arrive_whole(env: Env) -> None:
    env.runtime.script = [reply(Think("The user greets me."), Say("Hello!"))]
    conversation = await env.conversation()
    events = await collect(env.agent(), await env.turn(conversation, "hi"))
    assert events == [Rationale("The user greets me."), FinalText("Hello!")]
    history = await env.history(conversation)
    assert history[1]["content"][0] == {
        "reasoningContent": {"reasoningText": {"text": "The user greets me.", "signature": "sig-1"}}}


@pytest.mark.e2e
async def test_rationale_paragraphs_stay_apart_in_the_turn_message(env: Env) -> None:
    from bot.presenter import present_turn
    from bot.reply import Markdown

    env.runtime.script = [
        reply(Think("They want the files.", chunk=4), Say("Let me look at the workspace."), Call("list_files", {})),
        reply(Say("Now I count the rows."), Call("run_python", {"code": "print(2)"})),
        reply(Say("Two.")),
    ]
    conversation = await env.conversation()
    events = await collect(env.agent(), await env.turn(conversation, "rows?"))
    # Reasoning streams as it arrives (it is never the answer), one piece per delta.
    assert [e.text for e in events if isinstance(e, Rationale)][:3] == ["They", " wan", "t th"]
    assert (await env.history(conversation))[1]["content"][0]["reasoningContent"]["reasoningText"] == {
        "text": "They want the files.", "signature": "sig-1"}
    texts = [b.text for b in present_turn(events, "done", 1.0).blocks if isinstance(b, Markdown)]
    assert texts == ["They want the files.\n\nLet me look at the workspace.\n\nNow I count the rows.", "Two."]


# -- service errors ------------------------------------------------------------------------------


@pytest.mark.e2e
async def test_throttling_is_retried_then_the_answer_arrives(env: Env) -> None:
    env.runtime.script = [Fail(429, "ThrottlingException"), reply(StreamFault("throttlingException")),
                          reply(Say("Fine now."))]
    events = await collect(env.agent(), await env.turn(await env.conversation(), "hi"))
    assert answer(events) == "Fine now." and not any(isinstance(e, TurnFailed) for e in events)
    assert len(env.runtime.requests) == 3


@pytest.mark.e2e
async def test_throttling_that_persists_ends_the_turn_and_keeps_history_valid(env: Env) -> None:
    env.runtime.script = [Fail(429, "ThrottlingException")] * 3
    conversation = await env.conversation()
    events = await collect(env.agent(), await env.turn(conversation, "hi"))
    assert len(env.runtime.requests) == 3  # one try and two retries
    assert isinstance(events[-1], TurnFailed) and "busy" in events[-1].message
    assert events[-1].retryable
    history = await env.history(conversation)
    assert is_valid(history) and history[0]["content"][0]["text"] == "hi"


@pytest.mark.e2e
@pytest.mark.parametrize(("status", "code", "words"), [
    (403, "AccessDeniedException", "denied"),
    (429, "ModelNotReadyException", "not ready"),
    (400, "ValidationException", "rejected"),
])
async def test_service_errors_end_the_turn_with_a_clear_message(env: Env, status: int, code: str, words: str) -> None:
    env.runtime.script = [Fail(status, code)]
    events = await collect(env.agent(), await env.turn(await env.conversation(), "hi"))
    assert len(env.runtime.requests) == 1
    assert isinstance(events[-1], TurnFailed) and words in events[-1].message


@pytest.mark.e2e
@pytest.mark.parametrize("code", ["UnrecognizedClientException", "ExpiredTokenException", "InvalidSignatureException"])
async def test_rejected_credentials_say_so_and_are_not_retried(env: Env, code: str) -> None:
    env.runtime.script = [Fail(403, code, "The security token included in the request is invalid.")] * 3
    events = await collect(env.agent(), await env.turn(await env.conversation(), "hi"))
    assert len(env.runtime.requests) == 1
    failed = events[-1]
    assert isinstance(failed, TurnFailed) and not failed.retryable
    assert "rejected this bot's credentials" in failed.message and "doctor" in failed.message


@pytest.mark.e2e
async def test_cancelling_a_turn_mid_stream_drops_the_connection(env: Env) -> None:
    env.runtime.script = [reply(Think("Working on it."), Hang())]
    agent = env.agent()
    turn = await env.turn(await env.conversation(), "slow")
    started = asyncio.Event()

    async def consume() -> None:
        async for event in agent.run(turn):
            if isinstance(event, Rationale):
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The read timeout is 300 s: only an aborted read lets the model's stream go this soon.
    await asyncio.wait_for(env.runtime.disconnected.wait(), 5)
    assert env.runtime.disconnects == 1
    for _ in range(100):  # and the thread that was reading it ends too
        if not any(t.name == "converse-stream" for t in threading.enumerate()):
            break
        await asyncio.sleep(0.05)
    assert not any(t.name == "converse-stream" for t in threading.enumerate())
    await agent.aclose()


@pytest.mark.e2e
async def test_a_failure_after_text_was_shown_is_not_retried(env: Env) -> None:
    env.runtime.script = [reply(Say("x" * 100), StreamFault("throttlingException")), reply(Say("again"))]
    events = await collect(env.agent(), await env.turn(await env.conversation(), "hi"))
    assert len(env.runtime.requests) == 1 and isinstance(events[-1], TurnFailed)


# -- tool errors and limits ----------------------------------------------------------------------


@pytest.mark.e2e
async def test_the_model_recovers_from_a_tool_error(env: Env) -> None:
    env.runtime.script = [
        reply(Call("run_python", {"code": "import pandas as pd\npd.read_csv('missing.csv')"})),
        reply(Call("run_python", {"code": "print(21 * 2)"})),
        reply(Say("The answer is 42.")),
    ]
    conversation = await env.conversation()
    events = await collect(env.agent(), await env.turn(conversation, "compute"))
    errors = [e for e in events if isinstance(e, CodeError)]
    assert len(errors) == 1 and errors[0].ename == "FileNotFoundError" and "missing.csv" in errors[0].evalue
    results = tool_results(env.runtime.requests[2])
    assert [r["status"] for r in results] == ["error", "success"]
    assert "FileNotFoundError" in results[0]["content"][0]["text"] and "42" in results[1]["content"][0]["text"]
    assert answer(events) == "The answer is 42."


@pytest.mark.e2e
async def test_reaching_max_tool_rounds_ends_the_turn_and_history_stays_valid(env: Env) -> None:
    env.runtime.script = [reply(Call("run_python", {"code": f"print({i})"})) for i in range(2)]
    conversation = await env.conversation()
    events = await collect(env.agent(max_tool_rounds=2), await env.turn(conversation, "loop"))
    assert isinstance(events[-1], TurnFailed) and "2 rounds" in events[-1].message
    assert len([e for e in events if isinstance(e, CodeStarted)]) == 2
    history = await env.history(conversation)
    assert is_valid(history) and "tool rounds" in history[-1]["content"][-1]["text"]
    # The conversation goes on: the next turn sends the stored history and succeeds.
    env.runtime.script = [reply(Say("ok"))]
    events = await collect(env.agent(), await env.turn(conversation, "summarise"))
    assert answer(events) == "ok" and len(env.runtime.requests[-1]["messages"]) == len(history) + 1


@pytest.mark.e2e
async def test_a_cancelled_turn_leaves_history_valid(env: Env) -> None:
    env.runtime.script = [reply(Say("Let me run it."), Call("run_python", {"code": "import time; time.sleep(30)"}))]
    conversation = await env.conversation()
    agent = env.agent()
    stream = cast(AsyncGenerator[AgentEvent, None], agent.run(await env.turn(conversation, "slow")))
    async for event in stream:
        if isinstance(event, CodeStarted):
            break
    await stream.aclose()
    history = await env.history(conversation)
    assert is_valid(history)
    assert [r["status"] for r in tool_results({"messages": history})] == ["error"]


@pytest.mark.e2e
async def test_unknown_tool_and_bad_input_go_back_to_the_model_as_errors(env: Env) -> None:
    env.runtime.script = [
        reply(Call("make_coffee", {}), Call("run_python", {"source": "print(1)"})),
        reply(Call("list_files", {})),
        reply(Say("done")),
    ]
    conversation = await env.conversation()
    events = await collect(env.agent(), await env.turn(conversation, "x", {"data.csv": b"a,b\n1,2\n"}))
    first = tool_results(env.runtime.requests[1])
    assert [r["status"] for r in first] == ["error", "error"]
    assert "make_coffee" in first[0]["content"][0]["text"] and "'code'" in first[1]["content"][0]["text"]
    listing = tool_results(env.runtime.requests[2])[-1]["content"][0]["text"]
    assert "data.csv" in listing and answer(events) == "done"


@pytest.mark.e2e
async def test_publish_dataset_registers_an_existing_file(env: Env) -> None:
    env.runtime.script = [reply(Call("publish_dataset", {"path": "data.csv", "name": "input"})), reply(Say("ok"))]
    conversation = await env.conversation()
    events = await collect(env.agent(), await env.turn(conversation, "show it", {"data.csv": b"a,b\n1,2\n3,4\n"}))
    produced = [e.dataset for e in events if isinstance(e, DatasetProduced)]
    assert [(d.name, d.rows) for d in produced] == [("input", 2)]
    assert "input: 2 rows" in tool_results(env.runtime.requests[1])[0]["content"][0]["text"]


# -- history -------------------------------------------------------------------------------------


def test_trimming_keeps_whole_exchanges_and_starts_with_user_text() -> None:
    def exchange(i: int) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": [{"text": f"question {i} " + "x" * 400}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": f"t{i}", "name": "run_python",
                                                           "input": {"code": "1"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": f"t{i}", "content": [{"text": "1"}]}}]},
            {"role": "assistant", "content": [{"text": f"answer {i}"}]},
        ]

    messages = [m for i in range(10) for m in exchange(i)]
    assert is_valid(messages)
    kept = trim(messages, budget_tokens=400)
    assert is_valid(kept) and 0 < len(kept) < len(messages) and len(kept) % 4 == 0
    assert kept[0]["content"][0]["text"].startswith("question ") and kept[-1] == messages[-1]
    assert json.dumps(kept).count("toolUse\"") == json.dumps(kept).count("toolResult\"")
    assert trim(messages, budget_tokens=1) == messages[-4:]  # the newest exchange always stays


@pytest.mark.e2e
async def test_history_is_trimmed_to_the_budget_across_turns(env: Env) -> None:
    conversation = await env.conversation()
    agent = env.agent(history_tokens=1000)
    for i in range(6):
        env.runtime.script = [reply(Say(f"answer {i} " + "y" * 3000))]
        await collect(agent, await env.turn(conversation, f"question {i}"))
    history = await env.history(conversation)
    assert is_valid(history) and history[0]["content"][0]["text"] == "question 5" and len(history) == 2
    sent = env.runtime.requests[-1]["messages"]  # the stored newest exchange fits next to the question
    assert [m["content"][0]["text"][:10] for m in sent] == ["question 4", "answer 4 y", "question 5"]


# -- configuration -------------------------------------------------------------------------------


def test_config_defaults_follow_credentials(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path), "BEDROCK_MODEL_ID": "m"}
    assert ConverseConfig.from_env(home).executor == "local"
    with_keys = ConverseConfig.from_env({**home, "AWS_ACCESS_KEY_ID": "AKID", "DATATHREAD_MAX_TOOL_ROUNDS": "3"})
    assert with_keys.executor == "agentcore" and with_keys.max_tool_rounds == 3
    assert with_keys.interpreter_id == "aws.codeinterpreter.v1"
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="DATATHREAD_EXECUTOR"):
        ConverseConfig.from_env({**home, "DATATHREAD_EXECUTOR": "docker"})
    with pytest.raises(ConfigError, match="BEDROCK_MODEL_ID"):
        ConverseConfig.from_env({"HOME": str(tmp_path)})


def test_one_region_rule_and_bounded_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.agents.aws import aws_session, backoff_delay

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert aws_session().region_name == "eu-west-1"  # AWS_REGION, which botocore alone ignores
    assert aws_session("ap-south-1").region_name == "ap-south-1"
    monkeypatch.delenv("AWS_REGION")
    assert aws_session().region_name == "us-east-1"
    for attempt, wait in enumerate([1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):  # doubling, capped, up to 25% jitter
        assert all(wait <= backoff_delay(attempt, 1.0) <= wait * 1.25 for _ in range(20))


@pytest.mark.e2e
async def test_notices_do_not_break_the_turn(env: Env) -> None:
    env.runtime.script = [reply(Say("cut"), stop="max_tokens")]
    events = await collect(env.agent(), await env.turn(await env.conversation(), "long"))
    assert any(isinstance(e, Notice) and "length limit" in e.text for e in events)
    assert answer(events) == "cut"


# -- the loop against the real local kernel --------------------------------------------------------


@pytest.mark.e2e
async def test_the_loop_drives_the_local_kernel(env: Env) -> None:
    from bot.agents.kernel.agent import LocalKernelExecutor
    from bot.config import Settings

    settings = Settings.from_env({"DATATHREAD_HOME": str(env.tmp / "home")})
    config = ConverseConfig(model_id="test-model", executor="local", rationale_holdback_chars=80)
    agent = ConverseAgent(config, LocalKernelExecutor(settings), env.state)
    conversation = await env.conversation()
    make = ("import pandas as pd\ntotals = pd.DataFrame({'region': ['east', 'west'], 'sales': [3, 5]})\n"
            "totals.to_csv('totals.csv', index=False)\nprint(totals.sales.sum())")
    env.runtime.script = [reply(Call("run_python", {"code": make})), reply(Say("Total sales are 8."))]
    try:
        events = await collect(agent, await env.turn(conversation, "total sales?"))
        assert "8" in "".join(e.text for e in events if isinstance(e, CodeOutput))
        assert [e.dataset.name for e in events if isinstance(e, DatasetProduced)] == ["totals"]
        assert answer(events) == "Total sales are 8."
        # Variables live on in the kernel between turns; shell commands run too.
        env.runtime.script = [
            reply(Call("run_python", {"code": "print(len(totals))"}), Call("run_shell", {"command": "ls"})),
            reply(Say("2 rows.")),
        ]
        events = await collect(agent, await env.turn(conversation, "rows?"))
        results = tool_results(env.runtime.requests[-1])[-2:]
        assert [r["status"] for r in results] == ["success", "success"]
        assert "2" in results[0]["content"][0]["text"] and "totals.csv" in results[1]["content"][0]["text"]
        assert [e.language for e in events if isinstance(e, CodeStarted)] == ["python", "shell"]
    finally:
        await agent.aclose()


def test_from_env_picks_the_executor(tmp_path: Path) -> None:
    from bot.agents.kernel.agent import LocalKernelExecutor
    from bot.config import Settings

    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path)})
    state = SqliteStateStore(tmp_path / "s.sqlite3", tmp_path / "w")
    base = {"HOME": str(tmp_path), "BEDROCK_MODEL_ID": "m"}
    local = ConverseAgent.from_env(settings, {**base, "DATATHREAD_EXECUTOR": "local"}, state)
    remote = ConverseAgent.from_env(settings, {**base, "DATATHREAD_EXECUTOR": "agentcore"}, state)
    assert isinstance(local.executor, LocalKernelExecutor) and isinstance(remote.executor, AgentCoreExecutor)
