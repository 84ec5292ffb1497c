"""``datathread doctor``: checks of a configuration, reported in plain words.

Each backend contributes an ``async def diagnose(env) -> list[DoctorCheck]``; this module only holds
the result type and the report format, so it imports no SDK.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DoctorCheck:
    """One check: what was checked, whether it passed, what was found, and what to do if it failed."""

    name: str
    ok: bool
    detail: str
    hint: str = ""
    #: Not set up, and not needed for what works without it (a surface the console does not use).
    skipped: bool = False


def format_checks(checks: Sequence[DoctorCheck]) -> str:
    """A plain-text report: one line per check, the fix under each failure, a verdict at the end."""
    lines: list[str] = []
    for check in checks:
        mark = "--" if check.skipped else "ok" if check.ok else "FAIL"
        lines.append(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok and check.hint:
            lines.append(f"       what to do: {check.hint}")
    failed = sum(not c.ok for c in checks)
    if not checks:
        lines.append("Nothing was checked.")
    elif failed:
        lines.append(f"{failed} of {len(checks)} checks failed: fix them from the top, "
                     "the first failure often causes the rest.")
    else:
        skipped = [c.name for c in checks if c.skipped]
        lines.append("Everything looks good" + (f"; not configured: {', '.join(skipped)}." if skipped else "."))
    return "\n".join(lines)
