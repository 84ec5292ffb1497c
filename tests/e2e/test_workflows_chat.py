"""``run NAME`` in a Slack thread and the Workflow Builder step, through the real bolt app, the fake Web API
and a scripted agent."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from adapters.slack import workflow_step
from adapters.slack.fake_web_api import function_executed_body, signed_headers
from bot import events as ev
from bot.conversation import Turn
from bot.intents import Stop
from bot.messages import ThreadKey
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, Step, WriteFile
from tests.fakes.slack_api import FakeSlack, Posted
from tests.slack_harness import SIGNING_SECRET, SlackBot, mention, message, until

#: A dataset page's table: Slack's native data_table, or the table block it steps down to.
TABLE_BLOCKS = ("data_table", "table")

pytestmark = pytest.mark.e2e  # starts servers

CHANNEL = "C0CHAN"
ROWS = 45
SALES = ("id,region,amount\n" + "".join(f"{i},{'EMEA' if i % 2 else 'APAC'},{i}\n" for i in range(ROWS))).encode()
WORKFLOW = """\
name: weekly
params: {region: EMEA}
steps:
  - id: extract
    ask: "make sales for {region}"
    outputs: [sales]
  - id: summarise
    inputs: [extract.sales]
    ask: "summarise"
    outputs: [summary]
  - id: comment
    inputs: [summarise.summary]
    ask: "comment"
"""
SEEN: list[tuple[str, tuple[str, ...], str]] = []


def script(turn: Turn) -> list[Step]:
    SEEN.append((turn.text, tuple(a.name for a in turn.attachments), turn.conversation.id))
    if turn.text.startswith("make sales"):
        return [WriteFile("sales.csv", SALES), ev.FinalText("Loaded.")]
    if turn.text == "summarise":
        return [WriteFile("summary.csv", b"region,total\nEMEA,484\nAPAC,506\n"), ev.FinalText("Summed.")]
    if turn.text == "wait":
        return [Sleep(30)]
    if turn.text == "comment":
        return [ev.FinalText("EMEA is a little behind APAC.")]
    return [ev.FinalText("ok")]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    SEEN.clear()
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "weekly.yml").write_text(WORKFLOW)
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


def texts(fake: FakeSlack, ts: str) -> list[str]:
    return [fake.shown(m) for m in fake.thread(CHANNEL, ts)]


def tables(fake: FakeSlack, ts: str) -> list[Posted]:
    return [m for m in fake.thread(CHANNEL, ts) if any(b["type"] in TABLE_BLOCKS for b in m.blocks)]


def button(m: Posted, label: str) -> dict[str, str] | None:
    for b in m.blocks:
        for e in b.get("elements", ()) if b["type"] == "actions" else ():
            if label in (e.get("text") or {}).get("text", ""):
                return {"type": "button", "action_id": e["action_id"], "block_id": "b", "value": e["value"]}
    return None


async def test_run_posts_a_live_message_per_step_and_datasets_that_page_with_buttons(
        bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000900.000100"
    assert await bot.send(mention("run weekly region=APAC", ts), "EvRun1") == 200
    await until(lambda: any("Workflow weekly finished" in t for t in texts(fake, ts)), 20, "the run's summary")
    shown = texts(fake, ts)
    steps = [t for t in shown if "of weekly:" in t]
    assert len(steps) == 3 and [("Step 1/3" in steps[0]), ("Step 2/3" in steps[1]), ("Step 3/3" in steps[2])] == [
        True] * 3
    assert "EMEA is a little behind APAC." in steps[2]
    # the prompt got the parameter; later steps got earlier datasets as files; each its own conversation
    assert [s[0] for s in SEEN] == ["make sales for APAC", "summarise", "comment"]
    assert SEEN[1][1] == ("sales.csv",) and SEEN[2][1] == ("summary.csv",)  # no executor: CSV session files
    assert len({s[2] for s in SEEN}) == 3
    pages = tables(fake, ts)
    assert len(pages) == 2 and "rows 1–20 of 45" in fake.shown(pages[0])
    nxt = button(pages[0], "Next")
    assert nxt is not None  # the dataset's buttons work in the thread that ran the workflow
    before = pages[0].updates
    assert await bot.click(nxt, user="UALICE", channel=CHANNEL, message_ts=pages[0].ts, thread_ts=ts) == 200
    await until(partial(lambda m, b: m.updates > b, pages[0], before), what="page 2")
    assert "rows 21–40 of 45" in fake.shown(pages[0])
    assert {f.name for f in fake.shared(CHANNEL)} == {"sales.csv", "summary.csv"}  # files uploaded


async def test_a_failing_step_is_named_in_the_thread_and_workflows_lists_what_there_is(
        bot: SlackBot, fake: FakeSlack, tmp_path: Path) -> None:
    (tmp_path / "workflows" / "broken.yml").write_text(WORKFLOW.replace("outputs: [summary]", "outputs: [totals]")
                                                       .replace("summarise.summary", "summarise.totals"))
    ts = "1700000950.000100"
    await bot.send(mention("run broken", ts), "EvRun2")
    await until(lambda: any("Workflow weekly failed" in t for t in texts(fake, ts)), 20, "the failure")
    failure = next(t for t in texts(fake, ts) if "Workflow weekly failed" in t)
    assert "step summarise failed" in failure and "'totals'" in failure
    assert not any("Step 3/3" in t for t in texts(fake, ts))
    await bot.send(message("workflows", "1700000951.000100", thread_ts=ts), "EvList")
    await until(lambda: any("Workflows (run one" in t for t in texts(fake, ts)), what="the listing")
    listing = next(t for t in texts(fake, ts) if "Workflows (run one" in t)
    assert "weekly" in listing and "broken" in listing and "extract, summarise, comment" in listing


async def test_stop_in_the_thread_stops_the_run_and_skips_the_steps_after(
        bot: SlackBot, fake: FakeSlack, tmp_path: Path) -> None:
    (tmp_path / "workflows" / "slow.yml").write_text(
        "steps:\n  - id: wait\n    ask: wait\n  - id: comment\n    ask: comment\n")
    ts = "1700000970.000100"
    await bot.send(mention("run slow", ts), "EvSlow")
    await until(lambda: [s[0] for s in SEEN] == ["wait"], what="the first step running")
    assert bot.engine is not None
    token = bot.engine.seal(ThreadKey("slack", "T0001", CHANNEL, ts), Stop())
    await until(lambda: bool(fake.thread(CHANNEL, ts)), what="the step's live message")
    step_message = fake.thread(CHANNEL, ts)[0]
    stop = {"type": "button", "action_id": "datathread:stop:0", "block_id": "b", "value": token}
    assert await bot.click(stop, user="UALICE", channel=CHANNEL, message_ts=step_message.ts, thread_ts=ts) == 200
    await until(lambda: any("Workflow slow stopped" in t for t in texts(fake, ts)), 10, "the stopped run")
    assert "Stopped" in fake.shown(step_message)
    assert [s[0] for s in SEEN] == ["wait"]  # the next step never ran


async def run_step(bot: SlackBot, fake: FakeSlack, execution: str, **inputs: str) -> tuple[str, object]:
    """Send a signed ``function_executed`` for the step and wait until Slack hears how it ended."""
    body = json.dumps(function_executed_body(workflow_step.CALLBACK_ID, inputs, execution_id=execution,
                                             token=fake.function_token))
    started = time.monotonic()
    assert await bot.post(body, "application/json", signed_headers(SIGNING_SECRET, body)) == 200
    assert time.monotonic() - started < 3  # acknowledged within Slack's limit; the run goes on after
    await until(lambda: execution in fake.completed, 20, "the step's completion")
    return fake.completed[execution]


async def test_a_workflow_builder_step_posts_results_in_the_channel_and_completes_with_outputs(
        bot: SlackBot, fake: FakeSlack) -> None:
    kind, outputs = await run_step(bot, fake, "Fx0001", workflow="weekly", parameters="region=APAC\n",
                                   channel="C0REPORTS", owner="UALICE")
    assert kind == "success", outputs
    assert isinstance(outputs, dict) and set(outputs) == set(workflow_step.OUTPUTS)
    root = next(m for m in fake.messages.values() if m.channel == "C0REPORTS" and m.thread_ts is None)
    assert "weekly" in root.text and outputs["thread_link"].endswith(f"/C0REPORTS/p{root.ts.replace('.', '')}")
    shown = texts_in(fake, "C0REPORTS", root.ts)
    assert sum("of weekly:" in t for t in shown) == 3 and len(tables_in(fake, "C0REPORTS", root.ts)) == 2
    assert outputs["summary"].startswith("Workflow weekly finished: 3/3 steps")
    assert outputs["run_id"] in outputs["summary"]
    assert SEEN[0][0] == "make sales for APAC"
    nxt = button(tables_in(fake, "C0REPORTS", root.ts)[0], "Next")
    assert nxt is not None  # the owner named in the step can page the results
    page = tables_in(fake, "C0REPORTS", root.ts)[0]
    await bot.click(nxt, user="UALICE", channel="C0REPORTS", message_ts=page.ts, thread_ts=root.ts)
    await until(lambda: "rows 21–40 of 45" in fake.shown(page), what="page 2")


async def test_a_failing_workflow_fails_the_workflow_builder_step_with_the_steps_error(
        bot: SlackBot, fake: FakeSlack, tmp_path: Path) -> None:
    (tmp_path / "workflows" / "broken.yml").write_text(WORKFLOW.replace("outputs: [summary]", "outputs: [totals]")
                                                       .replace("summarise.summary", "summarise.totals"))
    kind, error = await run_step(bot, fake, "Fx0002", workflow="broken", channel="C0REPORTS")
    assert kind == "error"
    assert isinstance(error, str) and "step summarise failed" in error and "'totals'" in error
    kind, error = await run_step(bot, fake, "Fx0003", workflow="nope", channel="C0REPORTS")
    assert kind == "error" and "There is no workflow called nope" in str(error)
    kind, error = await run_step(bot, fake, "Fx0004", workflow="weekly", parameters="region", channel="C0REPORTS")
    assert kind == "error" and "name=value" in str(error)


def texts_in(fake: FakeSlack, channel: str, ts: str) -> list[str]:
    return [fake.shown(m) for m in fake.thread(channel, ts)]


def tables_in(fake: FakeSlack, channel: str, ts: str) -> list[Posted]:
    return [m for m in fake.thread(channel, ts) if any(b["type"] in TABLE_BLOCKS for b in m.blocks)]
