"""The gate in front of bolt for ``/slack/events``: size, signature, then shape, in that order.

Bolt parses the body as soon as a request object is built (before it checks the signature), so a
large or malformed unsigned body would cost memory and CPU and end in an HTTP 500 with a
traceback. Here nothing is parsed until the signature over the raw bytes holds, and a signed body
is handed on only if bolt's own parser turns it into an object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier


@dataclass(frozen=True)
class Rejection:
    """Why a request is refused: the HTTP status and a reason for the log (never the body)."""

    status: int
    reason: str


@dataclass(frozen=True)
class Accepted:
    """A signed request whose body bolt can read: the body as text."""

    text: str


def check_request(body: bytes, headers: Mapping[str, str], verifier: SignatureVerifier) -> Accepted | Rejection:
    """Accept a request only if its Slack signature over ``body`` is valid and fresh (else 401) and
    its body parses, the way bolt parses it, into a JSON object (else 400)."""
    timestamp = headers.get("X-Slack-Request-Timestamp")
    signature = headers.get("X-Slack-Signature")
    if not timestamp or not signature:
        return Rejection(401, "no Slack signature")
    try:
        valid = verifier.is_valid(body, timestamp, signature)
    except ValueError:  # a timestamp that is not a number, a body that is not UTF-8
        valid = False
    if not valid:
        return Rejection(401, "bad or stale Slack signature")
    text = body.decode("utf-8")  # the signature check decoded it already
    try:
        parsed: Any = parse_body(text, headers.get("Content-Type", "").split(";")[0].strip() or None)
    except ValueError:  # json.JSONDecodeError is one
        return Rejection(400, "signed body is not valid JSON")
    if not isinstance(parsed, dict):
        return Rejection(400, f"signed body is a JSON {type(parsed).__name__}, not an object")
    return Accepted(text)


