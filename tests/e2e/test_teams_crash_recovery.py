"""Item 3b of issue 17 on Teams: a turn journalled by a process that died is ended at start-up with
the "interrupted" note, in the very activity that showed it, through the real connector client."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from adapters.teams.wiring import BOT_KEY
from bot import events as ev
from bot.conversation import Turn
from bot.journal import INTERRUPTED
from tests.fakes.scripted_agent import Sleep
from tests.teams_harness import fixture, teams

pytestmark = pytest.mark.e2e  # starts servers

CHANNEL_CHAIN = "19:4c1d3a2f9b8e4d7c@thread.tacv2;messageid=1732180811554"


def slow(turn: Turn) -> list[Any]:
    return [ev.Rationale("Thinking hard. "), Sleep(30), ev.FinalText("never")]


async def test_a_teams_turn_left_in_the_journal_is_ended_in_its_own_activity_at_restart(tmp_path: Path) -> None:
    async with teams(tmp_path, slow) as h:
        await h.post(fixture("channel_new_post_mention"))
        await h.until(lambda calls: any("Thinking hard" in (c.body.get("text") or "") for c in calls))
        (journalled,) = await h.engine.state.turns_in_flight("teams")  # what a crash now would leave
        live = next(c for c in h.to(CHANNEL_CHAIN) if c.method == "POST").returned_id
        assert journalled.messages == (live,)
    # The process "died" with that record in its journal (a clean stop removed it: put it back).
    async with teams(tmp_path, slow) as h:
        reference = {**journalled.address["reference"], "serviceUrl": h.connector.url}  # same service, new port
        await h.engine.state.journal_turn(dataclasses.replace(
            journalled, address={**journalled.address, "reference": reference}))
        bot = h.client.server.app[BOT_KEY]
        assert await h.engine.end_interrupted("teams", bot.resume) == 1
        edits = [c for c in h.to(CHANNEL_CHAIN) if c.method == "PUT"]
        assert edits and edits[-1].activity_id == live and INTERRUPTED in edits[-1].body["text"]
        assert await h.engine.state.turns_in_flight("teams") == []
