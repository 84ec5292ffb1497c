"""Opaque, signed tokens for button values and file links.

A token is ``base64url(json) . base64url(hmac)``, where the HMAC also covers a ``context`` that is
not in the token (the thread it was issued for): replayed in another thread, it simply fails to
verify. Signing does not replace the access checks (the engine still checks thread, user and expiry
on every use); it makes forged or edited values fail early. Payloads stay small (column indices,
not names) so every token fits Slack's 150-character limit on select option values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

_SIG_BYTES = 12  # 96 bits: forging needs ~2^96 tries against a server that rate-limits clicks


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

    def _sign(self, body: bytes, context: str) -> bytes:
        return hmac.new(self._secret, context.encode() + b"\0" + body, hashlib.sha256).digest()[:_SIG_BYTES]

    def seal(self, payload: dict[str, Any], context: str = "") -> str:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self._sign(body, context))}"

    def open(self, token: str, context: str = "") -> dict[str, Any] | None:
        """The payload, or ``None`` for anything malformed, edited, or sealed for another context."""
        try:
            body_text, sig_text = token.split(".", 1)
            body = _unb64(body_text)
            if not hmac.compare_digest(self._sign(body, context), _unb64(sig_text)):
                return None
            payload = json.loads(body)
        except (ValueError, TypeError, json.JSONDecodeError):
            return None
        return payload if isinstance(payload, dict) else None
