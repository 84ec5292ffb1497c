"""Stopping a slow turn of a real backend from Slack: the local kernel, a Bedrock agent, AgentCore code.

The real bolt app against the fake Web API; the local kernel is a real Jupyter kernel, Bedrock the
local fake service reached by boto3. Stop comes from Slack's own button (an agent session), from our
Stop button (an app without sessions) or as the typed word ``stop``. Each time the turn ends within
2 s with "Stopped", the kernel is interrupted (it keeps its variables), the Bedrock stream is
closed, or the AgentCore task stopped with ``stopTask``), the thread's status leaves working, and
the next message works.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from adapters.slack.fake_web_api import FakeSlack, Posted
from adapters.slack.harness import SlackBot, mention, message, until
from bot.agents.backend import AgentBackend
from bot.agents.bedrock_agents.agent import BedrockAgent
from bot.agents.kernel.agent import LocalKernelAgent
from bot.config import Settings
from tests.e2e.test_converse import aws_env
from tests.fakes import bedrock_agent_runtime as fx
from tests.fakes.bedrock_runtime import Call, Say, reply

pytestmark = pytest.mark.e2e  # starts servers, kernels

CHANNEL = "C0CHAN"
STOP_LIMIT = 2.0
#: Prints a word its source does not contain, so seeing it proves the code runs.
SLOW_CODE = "```python\nimport time\nx = 41\nprint('run' + 'ning', flush=True)\ntime.sleep(60)\n```"
AGENTCORE_SLOW = "import time\nprint('working', flush=True)\ntime.sleep(60)"
BEDROCK_ENV = {"BEDROCK_AGENT_ID": "AB12CD34EF", "BEDROCK_AGENT_ALIAS_ID": "LIVE123456"}
#: Measured stop-to-"Stopped" times, printed at the end of the module (``-s``) for the README.
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def report() -> object:
    yield None
    for name, seconds in sorted(TIMES.items()):
        print(f"stop -> Stopped visible: {name}: {seconds * 1000:.0f} ms")


def live(fake: FakeSlack, ts: str) -> Posted:
    return fake.thread(CHANNEL, ts)[0]


def stopped(fake: FakeSlack, ts: str) -> bool:
    msgs = fake.thread(CHANNEL, ts)
    return bool(msgs) and not msgs[0].streaming and "Stopped" in fake.shown(msgs[0])


def working(fake: FakeSlack, ts: str) -> bool:
    if fake.agent:
        return fake.session(CHANNEL, ts) == "processing"
    calls = [c for c in fake.named("assistant.threads.setStatus") if c.args.get("thread_ts") == ts]
    return bool(calls) and calls[-1].args["status"] != ""


async def stop(bot: SlackBot, fake: FakeSlack, ts: str, how: str) -> None:
    match how:
        case "native":
            await bot.send({"type": "agent_session_stopped", "channel": CHANNEL, "thread_ts": ts, "user": "UALICE",
                            "streaming_message_ts": [live(fake, ts).ts]}, f"EvStop{ts}")
        case "button":
            button = next(el for b in live(fake, ts).blocks for el in b.get("elements") or ()
                          if str(el.get("action_id", "")).startswith("datathread:stop"))
            await bot.click(button, user="UALICE", channel=CHANNEL, message_ts=live(fake, ts).ts, thread_ts=ts)
        case _:
            await bot.send(message("stop", f"{ts[:-3]}200", thread_ts=ts), f"EvStop{ts}")


@pytest.mark.parametrize("how", ["native", "button", "typed"])
async def test_a_slow_local_kernel_turn_stops_within_2_s_and_the_kernel_keeps_its_state(
        how: str, tmp_path: Path) -> None:
    fake = await FakeSlack(agent=how != "button").start()
    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path / "home")})
    agent = LocalKernelAgent.from_settings(settings)
    bot = await SlackBot(fake, tmp_path / "home", agent).start()
    try:
        ts = "1700000200.000100"
        await bot.send(mention(SLOW_CODE, ts), "EvK1")
        await until(lambda: bool(fake.thread(CHANNEL, ts)) and "running" in fake.shown(live(fake, ts)), limit=60,
                    what="the slow code running")
        assert working(fake, ts)
        began = time.monotonic()
        await stop(bot, fake, ts, how)
        await until(lambda: stopped(fake, ts), limit=10, what='"Stopped"')
        TIMES[f"Slack / local kernel / {how}"] = elapsed = time.monotonic() - began
        assert elapsed <= STOP_LIMIT
        assert "running" in fake.shown(live(fake, ts))  # what was shown stays, "Stopped" follows
        await until(lambda: not working(fake, ts), what="the status leaving working")
        await bot.send(message("```python\nprint(x + 1)\n```", "1700000200.000300", thread_ts=ts), "EvK2")
        await until(lambda: any("42" in fake.shown(m) for m in fake.thread(CHANNEL, ts)[1:]), limit=30,
                    what="the next message's answer from the same kernel")
    finally:
        await bot.stop()
        await fake.close()


@pytest.mark.parametrize("how", ["native", "button", "typed"])
async def test_a_slow_bedrock_turn_stops_within_2_s_and_its_stream_is_closed(
        how: str, bedrock: fx.FakeBedrockAgents, tmp_path: Path) -> None:
    fake = await FakeSlack(agent=how != "button").start()
    agent: AgentBackend = BedrockAgent.from_env(Settings.from_env(BEDROCK_ENV), BEDROCK_ENV)
    bot = await SlackBot(fake, tmp_path / "home", agent, **BEDROCK_ENV).start()
    try:
        bedrock.queue.append([fx.rationale("c-0", "Starting a long computation."), fx.Hang()])
        ts = "1700000300.000100"
        await bot.send(mention("crunch everything", ts), "EvB1")
        await until(lambda: bool(fake.thread(CHANNEL, ts)) and "long computation" in fake.shown(live(fake, ts)),
                    limit=15, what="the slow Bedrock turn running")
        began = time.monotonic()
        await stop(bot, fake, ts, how)
        await until(lambda: stopped(fake, ts), limit=10, what='"Stopped"')
        TIMES[f"Slack / Bedrock agent / {how}"] = elapsed = time.monotonic() - began
        assert elapsed <= STOP_LIMIT
        assert "long computation" in fake.shown(live(fake, ts))
        await asyncio.wait_for(bedrock.disconnected.wait(), 5)  # the stream was closed, not left hanging
        await until(lambda: not working(fake, ts), what="the status leaving working")
        await bot.send(message("and now?", "1700000300.000300", thread_ts=ts), "EvB2")
        await until(lambda: any("Hello from the fake agent." in fake.shown(m) for m in fake.thread(CHANNEL, ts)),
                    limit=15, what="the next answer")
    finally:
        await bot.stop()
        await agent.aclose()
        await fake.close()


@pytest.mark.parametrize("how", ["native", "typed"])
async def test_a_slow_agentcore_turn_stops_within_2_s_and_its_task_is_stopped_server_side(
        how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = await FakeSlack(agent=True).start()
    async with aws_env(tmp_path, monkeypatch) as aws:
        aws.runtime.script.extend([
            reply(Say("Starting a long computation."), Call("run_python", {"code": AGENTCORE_SLOW})),
            reply(Say("Next answer from the model.")),
        ])
        agent = aws.agent()
        bot = await SlackBot(fake, tmp_path / "home", agent).start()
        try:
            ts = "1700000400.000100"
            await bot.send(mention("crunch everything", ts), "EvA1")
            await until(lambda: bool(aws.agentcore.running), limit=30, what="the code running in AgentCore")
            await until(lambda: bool(fake.thread(CHANNEL, ts)) and "long computation" in fake.shown(live(fake, ts)),
                        limit=15, what="the slow AgentCore turn shown")
            [task_id] = list(aws.agentcore.running)
            began = time.monotonic()
            await stop(bot, fake, ts, how)
            await until(lambda: stopped(fake, ts), limit=10, what='"Stopped"')
            TIMES[f"Slack / Converse + AgentCore / {how}"] = elapsed = time.monotonic() - began
            assert elapsed <= STOP_LIMIT
            assert "long computation" in fake.shown(live(fake, ts))
            await asyncio.wait_for(aws.agentcore.task_stopped.wait(), 5)  # stopTask reached the service
            assert aws.agentcore.stopped_tasks == [task_id] and not aws.agentcore.running
            await until(lambda: not working(fake, ts), what="the status leaving working")
            await bot.send(message("and now?", "1700000400.000300", thread_ts=ts), "EvA2")
            await until(lambda: any("Next answer from the model." in fake.shown(m)
                                    for m in fake.thread(CHANNEL, ts)), limit=15, what="the next answer")
        finally:
            await bot.stop()
            await agent.aclose()
            await fake.close()


async def test_an_agentcore_run_that_names_no_task_is_ended_with_its_session_and_the_next_turn_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing documents whether executeCode reports its task while it runs: without a task id to
    # stop, stopping the session is what ends the code; the next turn runs in a new session.
    fake = await FakeSlack(agent=True).start()
    async with aws_env(tmp_path, monkeypatch) as aws:
        aws.agentcore.report_tasks = False
        aws.runtime.script.extend([
            reply(Say("Starting a long computation."), Call("run_python", {"code": AGENTCORE_SLOW})),
            reply(Say("Running it again."), Call("run_python", {"code": "print(6 * 7)"})),
            reply(Say("Next answer from the model.")),
        ])
        agent = aws.agent()
        bot = await SlackBot(fake, tmp_path / "home", agent).start()
        try:
            ts = "1700000500.000100"
            await bot.send(mention("crunch everything", ts), "EvB1")
            await until(lambda: bool(aws.agentcore.running), limit=30, what="the code running in AgentCore")
            await until(lambda: bool(fake.thread(CHANNEL, ts)) and "long computation" in fake.shown(live(fake, ts)),
                        limit=15, what="the slow AgentCore turn shown")
            [first_session] = list(aws.agentcore.sessions)
            began = time.monotonic()
            await stop(bot, fake, ts, "typed")
            await until(lambda: stopped(fake, ts), limit=10, what='"Stopped"')
            TIMES["Slack / Converse + AgentCore, no task id / typed"] = elapsed = time.monotonic() - began
            assert elapsed <= STOP_LIMIT
            await asyncio.wait_for(aws.agentcore.session_stopped.wait(), 5)  # the code ended server-side
            assert aws.agentcore.stopped == [first_session] and not aws.agentcore.running
            await bot.send(message("and now?", "1700000500.000300", thread_ts=ts), "EvB2")
            await until(lambda: any("Next answer from the model." in fake.shown(m)
                                    for m in fake.thread(CHANNEL, ts)), limit=20, what="the next answer")
            shown = "".join(fake.shown(m) for m in fake.thread(CHANNEL, ts)[1:])
            assert "variables from earlier steps are gone" in shown and "42" in shown
            assert len(aws.agentcore.sessions) == 2  # a new session ran the next code
        finally:
            await bot.stop()
            await agent.aclose()
            await fake.close()
