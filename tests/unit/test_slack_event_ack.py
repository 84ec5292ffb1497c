"""Which Slack requests are acknowledged before bolt sees them: Events API deliveries only (a URL
check must echo its challenge, and interactions and slash commands may answer with content)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from adapters.slack.wiring import is_event_callback


def test_an_events_api_delivery_is_answered_at_once() -> None:
    body = json.dumps({"type": "event_callback", "event": {"type": "app_mention", "text": "hi"}})
    assert is_event_callback(body, "application/json")


def test_a_url_check_an_interaction_or_a_malformed_body_goes_through_bolt() -> None:
    challenge = json.dumps({"type": "url_verification", "challenge": "abc"})
    assert not is_event_callback(challenge, "application/json")
    click = urlencode({"payload": json.dumps({"type": "block_actions", "note": "event_callback"})})
    assert not is_event_callback(click, "application/x-www-form-urlencoded")
    assert not is_event_callback('["event_callback"]', "application/json")
    assert not is_event_callback('{"type": "event_callback"', "application/json")
