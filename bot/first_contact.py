"""First contact: the prompts a person is offered when they open a new conversation with the bot,
and the follow-ups offered under the conversation's first answer.

Platforms show them as one-click suggestions (Slack's suggested prompts in a new DM or assistant
thread, Teams' suggested actions). ``DATATHREAD_SUGGESTED_PROMPTS`` replaces the default prompts and
``DATATHREAD_FOLLOW_UPS`` the default follow-ups: prompts separated by ``;;``, each
``Title|Message`` (or just the message, which is then its title too).
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


#: Data-work next steps offered under a conversation's first answer (Teams: personal chats only).
DEFAULT_FOLLOW_UPS: tuple[Prompt, ...] = (
    Prompt("Summarize it", "Summarize the result: the columns, their types, missing values and ranges."),
    Prompt("Chart it", "Chart the main metric of the result."),
    Prompt("Find outliers", "Find the unusual rows in the result and say why they stand out."),
)


def prompts_from_env(env: Mapping[str, str]) -> tuple[Prompt, ...]:
    """The configured prompts (at most ``MAX_PROMPTS``), or the defaults when none are set."""
    return _parse(env.get("DATATHREAD_SUGGESTED_PROMPTS", ""), DEFAULT_PROMPTS)


def follow_ups_from_env(env: Mapping[str, str]) -> tuple[Prompt, ...]:
    """The configured follow-ups (at most ``MAX_PROMPTS``), or the defaults when none are set."""
    return _parse(env.get("DATATHREAD_FOLLOW_UPS", ""), DEFAULT_FOLLOW_UPS)


def _parse(raw: str, defaults: tuple[Prompt, ...]) -> tuple[Prompt, ...]:
    raw = raw.strip()
    if not raw:
        return defaults
    prompts = []
    for item in raw.split(";;"):
        title, sep, message = item.partition("|")
        title, message = title.strip(), message.strip()
        if not sep:
            message = title
        if message:
            prompts.append(Prompt(title or message, message))
    return tuple(prompts[:MAX_PROMPTS]) or defaults
