"""The short welcome a person gets the first time they open the bot's direct messages.

Pure: the text from the configured suggested prompts (``bot.first_contact``). Surfaces show it
once per person (Slack's Messages tab) with their own one-click form of the prompts where they
have one (Teams' suggested actions).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.first_contact import Prompt

GREETING = ("Hi! I analyse data by running code: attach a CSV or Excel file, or ask a question, "
            "and I show each step, tables you can page and sort, and charts.")


def welcome_text(prompts: Sequence[Prompt]) -> str:
    """The greeting, then each prompt as something to send (Markdown)."""
    lines = [GREETING]
    if prompts:
        lines += ["", "Try one of these:"]
        lines += [f"• *{p.title}*: {p.message}" if p.title != p.message else f"• {p.message}" for p in prompts]
    return "\n".join(lines)
