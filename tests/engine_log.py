"""What the engine's log proves: tests wait for these records instead of sleeping.

Set the level first: ``caplog.set_level(logging.INFO, logger="bot.engine")``.
"""

from __future__ import annotations

import pytest


def dropped_duplicates(caplog: pytest.LogCaptureFixture) -> int:
    """How many deliveries the engine dropped as duplicates (it logs each one, then does nothing)."""
    return sum(r.name == "bot.engine" and r.msg == "dropping duplicate delivery %s" for r in caplog.records)
