"""Durations as people say them: "5 s", "90 ms", "2 min 30 s", "1 h 5 min"."""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """``seconds`` in the largest fitting units, at most two of them, rounded to what a reader needs
    ("after 5 s", never "after 0.0833333 minutes")."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))} ms"
    if seconds < 10:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min" + (f" {secs} s" if secs else "")
