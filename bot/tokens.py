"""Opaque, signed tokens for button values and file links.

A token is ``base64url(json) . base64url(hmac)``. Signing does not replace the access checks (the
engine still checks thread, user and expiry on every use); it makes forged or edited values fail
early and cheaply, and keeps the payload small enough for Slack's 2,000-character button values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

_SIG_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Seals JSON payloads with HMAC-SHA256 under one secret and opens them again."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("token secret must be at least 16 bytes")
        self._secret = secret

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:_SIG_BYTES]

    def seal(self, payload: dict[str, Any]) -> str:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self._sign(body))}"

    def open(self, token: str) -> dict[str, Any] | None:
        """The payload, or ``None`` for anything malformed or not signed by us."""
        try:
            body_text, sig_text = token.split(".", 1)
            body = _unb64(body_text)
            if not hmac.compare_digest(self._sign(body), _unb64(sig_text)):
                return None
            payload = json.loads(body)
        except (ValueError, TypeError, json.JSONDecodeError):
            return None
        return payload if isinstance(payload, dict) else None
