"""The one rule for how a finished turn ends, and how durations read."""

from __future__ import annotations

import pytest

from bot import events as ev
from bot.durations import human_duration
from bot.turn_outcome import outcome


def test_a_turn_whose_last_run_raised_ends_failed() -> None:
    assert outcome([ev.CodeStarted("1/0"), ev.CodeError("ZeroDivisionError", "division by zero")]) == "failed"


def test_an_agent_that_recovered_from_an_error_ends_done() -> None:
    events = [ev.CodeStarted("1/0"), ev.CodeError("ZeroDivisionError", ""), ev.CodeStarted("1"), ev.CodeOutput("1")]
    assert outcome(events) == "done"
    assert outcome([ev.CodeStarted("1/0"), ev.CodeError("E", ""), ev.FinalText("that failed because…")]) == "done"


def test_turn_failed_always_ends_failed() -> None:
    assert outcome([ev.FinalText("hi"), ev.TurnFailed("no")]) == "failed"
    assert outcome([]) == "done"


@pytest.mark.parametrize(("seconds", "shown"), [
    (5.0, "5 s"), (0.25, "250 ms"), (2.5, "2.5 s"), (59.6, "1 min"), (300, "5 min"), (150, "2 min 30 s"),
    (3600, "1 h"), (3900, "1 h 5 min"), (4.99999, "5 s"),
])
def test_durations_read_as_people_say_them(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown
