"""Signed, thread-bound tokens for button values and file links."""

from __future__ import annotations

import pytest

from bot.tokens import TokenSigner

SIGNER = TokenSigner(b"s" * 32)


def test_a_payload_round_trips_and_is_bound_to_its_context() -> None:
    token = SIGNER.seal({"d": "abc", "p": 2, "c": [1, None]}, context="thread-a")
    assert SIGNER.open(token, context="thread-a") == {"d": "abc", "p": 2, "c": [1, None]}
    assert SIGNER.open(token, context="thread-b") is None
    assert SIGNER.open(token) is None


def test_sealing_is_deterministic_and_independent_of_key_order() -> None:
    assert SIGNER.seal({"a": 1, "b": 2}) == SIGNER.seal({"b": 2, "a": 1})


def test_tokens_are_url_safe_and_compact() -> None:
    token = SIGNER.seal({"d": "Xq3vW0rT9yZa8bC7dE6fGh", "k": "page", "p": 123456})
    assert all(c.isalnum() or c in "-_." for c in token) and token.count(".") == 1
    assert len(token) < 100


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        TokenSigner(b"short")
