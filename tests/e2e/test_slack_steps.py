"""Agent steps as Slack tasks, end to end: the real bolt app against the fake Web API.

Where the workspace takes task chunks, the turn's stream is opened in plan mode, each step is a
``task_update`` (rationale -> title, code -> details, output -> output, an error -> ``error``), a
multi-step turn has one plan title and the answer stays the streamed Markdown. Where the workspace
refuses them, the same turn shows as today's text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.slack.fake_web_api import FakeSlack
from adapters.slack.harness import SlackBot, mention, until
from bot import events as ev
from bot.conversation import Turn
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, Step

pytestmark = pytest.mark.e2e  # starts servers

CHANNEL = "C0CHAN"


def two_steps(turn: Turn) -> list[Step]:
    return [
        ev.Rationale("Loading the sales file first."),
        Sleep(0.2),
        ev.CodeStarted("df = pd.read_csv('sales.csv')\nprint(len(df))"),
        ev.CodeOutput("200\n"),
        Sleep(0.2),
        ev.Rationale("Now the total per region."),
        ev.CodeStarted("df.groupby('region').total.sum()"),
        ev.CodeError("KeyError", "'region'", "KeyError: 'region'"),
        ev.FinalText("There are **200** rows; the file has no region column."),
    ]




def ended(fake: FakeSlack, ts: str) -> bool:
    msgs = fake.thread(CHANNEL, ts)
    return bool(msgs) and not msgs[0].streaming and "200" in fake.shown(msgs[0])


async def test_each_agent_step_is_a_task_of_one_plan_and_the_answer_stays_text(
        fake: FakeSlack, tmp_path: Path) -> None:
    bot = await SlackBot(fake, tmp_path, ScriptedAgent(two_steps)).start()
    try:
        ts = "1700000500.000100"
        await bot.send(mention("how many rows per region?", ts), "EvS1")
        await until(lambda: bool(fake.thread(CHANNEL, ts)) and bool(fake.steps(fake.thread(CHANNEL, ts)[0])),
                    what="the first step shown as a task")
        live = fake.thread(CHANNEL, ts)[0]
        assert live.task_display_mode == "plan"
        first = fake.steps(live)[0]
        assert first["title"] == "Loading the sales file first." and first["status"] == "in_progress"
        await until(lambda: ended(fake, ts), what="the end of the turn")
        (message,) = fake.thread(CHANNEL, ts)
        steps = fake.steps(message)
        assert [(s["title"], s["status"]) for s in steps] == [
            ("Loading the sales file first.", "complete"), ("Now the total per region.", "error")]
        assert "pd.read_csv('sales.csv')" in steps[0]["details"] and steps[0]["output"] == "200"
        assert "KeyError: 'region'" in steps[1]["output"]
        assert [c["title"] for c in message.tasks if c["type"] == "plan_update"] == ["2 steps"]  # one plan
        # The answer is the streamed Markdown, without the steps repeated as text.
        assert "There are **200** rows" in message.markdown
        assert "read_csv" not in message.markdown and "Loading the sales file" not in message.markdown
    finally:
        await bot.stop()


async def test_a_workspace_refusing_task_chunks_shows_the_steps_as_text(fake: FakeSlack, tmp_path: Path) -> None:
    fake.fail.no_task_chunks = True
    bot = await SlackBot(fake, tmp_path, ScriptedAgent(two_steps)).start()
    try:
        ts = "1700000600.000100"
        await bot.send(mention("how many rows per region?", ts), "EvS2")
        await until(lambda: ended(fake, ts), what="the end of the turn")
        (message,) = fake.thread(CHANNEL, ts)
        assert not message.tasks and message.task_display_mode is None
        text = message.markdown
        assert text.index("Loading the sales file first.") < text.index("read_csv") < text.index("200")
        assert "KeyError" in text and "There are **200** rows" in text
        # Task chunks were asked for once; refused, the same stream went on as text.
        refused = [c for c in fake.named("chat.startStream") if c.args.get("task_display_mode")]
        assert len(refused) == 1
    finally:
        await bot.stop()
