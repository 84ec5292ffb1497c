"""A conversation's workspace and kernel across replicas (``DATATHREAD_STORE=aws``, moto's server,
Teams replicas on the fake Bot Connector): a run's files reach S3 before the turn goes on, and a
conversation whose turn moves to another replica's kernel is told once that its variables were reset.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bot import events as ev
from bot.agents.kernel.agent import LocalKernelAgent
from bot.config import Settings
from bot.conversation import Turn
from bot.conversation_moves import VARIABLES_RESET
from tests.fakes import moto_aws
from tests.fakes.bot_connector import Call
from tests.fakes.scripted_agent import Wait, WriteFile
from tests.slack_harness import until
from tests.teams_harness import TeamsHarness, fixture, queue_settled, teams_replicas

pytestmark = pytest.mark.e2e

PERSONAL = "a:1Pz8Y2personalchatid-Ada"


def said(h: TeamsHarness, text: str) -> set[str]:
    """Ids of the messages (not stream updates) in the personal chat that show ``text``."""
    return {c.returned_id for c in h.to(PERSONAL) if c.body.get("type") == "message" and text in json.dumps(c.body)}


def in_s3(h: TeamsHarness, conversation_id: str) -> set[str]:
    mirror: Any = h.engine.workspace_sync
    base = f"{mirror.prefix}workspaces/{conversation_id}/"
    listed = moto_aws.shared().clients().s3.list_objects_v2(Bucket=mirror.bucket, Prefix=base)
    return {o["Key"][len(base):] for o in listed.get("Contents", [])}


async def test_a_runs_files_reach_s3_before_the_next_run_of_the_same_turn_ends(tmp_path: Path) -> None:
    gate = asyncio.Event()

    def script(turn: Turn) -> list[Any]:
        return [ev.CodeStarted("open('first.csv', 'w').write(...)"), WriteFile("first.csv", b"a,b\n1,2\n"),
                ev.CodeStarted("slow_second_run()"), Wait(gate), WriteFile("second.txt", b"later"),
                ev.FinalText("Both runs done.")]

    async with teams_replicas(tmp_path, script, count=1) as [h]:
        await h.post(fixture("personal_message", text="two runs please"))
        await until(lambda: bool(h.agent.turns), what="the turn to start")
        conversation = h.agent.turns[0].conversation.id
        await until(lambda: "first.csv" in in_s3(h, conversation), limit=10, what="run 1's file in S3")
        assert not gate.is_set() and not said(h, "Both runs done.")  # run 2 is still going
        assert "second.txt" not in in_s3(h, conversation)
        gate.set()
        await h.until(lambda _: said(h, "Both runs done."), within=10)
        assert {"first.csv", "second.txt"} <= in_s3(h, conversation)


def kernel(settings: Settings) -> Any:
    return LocalKernelAgent.from_settings(settings)


async def run_on(bots: list[TeamsHarness], index: int) -> None:
    """Only replica ``index`` takes turns from the queue from now on (once the last turn's message
    is deleted: a turn whose message outlives its replica's workers comes back as interrupted)."""
    await until(lambda: queue_settled(bots[0]), limit=10, what="the last turn's message deleted")
    for i, bot in enumerate(bots):
        intake: Any = bot.engine.intake
        if i == index:
            intake.start()
        else:
            await intake.aclose()


async def test_variables_reset_is_said_once_when_a_conversation_moves_to_another_replicas_kernel(
        tmp_path: Path) -> None:
    async with teams_replicas(tmp_path, lambda _: [], agent=kernel) as bots:
        h = bots[0]

        async def send(n: int, code: str, shows: str) -> Call:
            await h.post(fixture("personal_message", id=f"17321900{n:05d}", text=code))
            found: list[Call] = await h.until(lambda calls: [c for c in calls if c.body.get("type") == "message"
                                                             and shows in json.dumps(c.body)], within=60)
            return found[-1]

        await run_on(bots, 0)
        await send(1, "x = 41; print('set', x)", "set 41")
        assert not said(h, VARIABLES_RESET[:40])  # not on a conversation's first turn

        await run_on(bots, 1)  # the conversation moves: files follow it, variables do not
        moved = await send(2, "print(x + 1)", "NameError")
        assert said(h, VARIABLES_RESET[:40]) == {moved.returned_id}
        await send(3, "x = 5; print('now', x)", "now 5")
        assert said(h, VARIABLES_RESET[:40]) == {moved.returned_id}  # once per move, not every turn

        await run_on(bots, 0)  # back where an older kernel had x = 41: it must not come back
        back = await send(4, "print('x is', x)", "NameError")
        assert said(h, VARIABLES_RESET[:40]) == {moved.returned_id, back.returned_id}
        assert not said(h, "x is 41")
        assert not said(h, "Interrupted")  # every turn ran once, where it was received
