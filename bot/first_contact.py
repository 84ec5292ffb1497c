"""First contact: the prompts a person is offered when they open a new conversation with the bot.

Platforms show them as one-click suggestions (Slack's suggested prompts in a new DM or assistant
thread, Teams' suggested actions). ``DATATHREAD_SUGGESTED_PROMPTS`` replaces the defaults: prompts
separated by ``;;``, each ``Title|Message`` (or just the message, which is then its title too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Slack shows at most four suggested prompts; Teams at most three suggested actions.
MAX_PROMPTS = 4


@dataclass(frozen=True)
class Prompt:
    """One suggestion: ``title`` is what the button says, ``message`` what clicking it sends."""

    title: str
    message: str


DEFAULT_PROMPTS: tuple[Prompt, ...] = (
    Prompt("Explore a CSV", "I'll attach a CSV file: show its columns, types and a summary of each."),
    Prompt("Chart a trend", "Load the attached file and chart the main metric over time."),
    Prompt("Compare groups", "Compare the average of a numeric column across the categories of another."),
    Prompt("What can you do?", "help"),
)


def prompts_from_env(env: Mapping[str, str]) -> tuple[Prompt, ...]:
    """The configured prompts (at most ``MAX_PROMPTS``), or the defaults when none are set."""
    raw = env.get("DATATHREAD_SUGGESTED_PROMPTS", "").strip()
    if not raw:
        return DEFAULT_PROMPTS
    prompts = []
    for item in raw.split(";;"):
        title, sep, message = item.partition("|")
        title, message = title.strip(), message.strip()
        if not sep:
            message = title
        if message:
            prompts.append(Prompt(title or message, message))
    return tuple(prompts[:MAX_PROMPTS]) or DEFAULT_PROMPTS
