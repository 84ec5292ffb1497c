"""The real Slack adapter (bolt app on a real aiohttp server) wired to the fake Web API.

Shared with ``benchmarks/slack_turns.py``, so it lives in ``adapters/slack/harness.py``.
"""

from adapters.slack.harness import SIGNING_SECRET, SlackBot, mention, message, until

__all__ = ["SIGNING_SECRET", "SlackBot", "mention", "message", "until"]
