"""How a finished turn ended: the one rule for "done" versus "failed"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from bot import events as ev


def outcome(events: Sequence[ev.AgentEvent]) -> Literal["done", "failed"]:
    """``failed`` when the turn could not go on (``TurnFailed``) or its last code run raised with
    nothing answered after it (a user's own code that raised must not end in a green "done");
    ``done`` otherwise, including when an agent ran code that failed and then answered anyway."""
    if any(isinstance(e, ev.TurnFailed) for e in events):
        return "failed"
    for event in reversed(events):
        if isinstance(event, ev.CodeError):
            return "failed"
        if isinstance(event, ev.CodeStarted | ev.FinalText):
            return "done"
    return "done"
