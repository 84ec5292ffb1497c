"""Sealing intents into signed tokens and opening them again: the one place the wire format lives.

A button token is bound to its thread (the HMAC covers the thread's digest, which is not in the
token), optionally to one user (the HMAC then also covers the user id) and optionally to an expiry
(in the token, under the signature). Opening returns the typed intent, or ``None`` for anything
forged, edited, sealed for another thread or user, expired or malformed.

A file link is opened by an HTTP request that has no thread, so a link token names its thread
itself (under the signature, in a context of its own, so a link never opens as a button and a
button never opens as a link).

Intents are encoded as short positional JSON arrays (column indices, not names), so every button
token fits Slack's 150-character limit on select option values (``BUTTON_TOKEN_LIMIT``).
"""

from __future__ import annotations

import time
from typing import Any

from bot.datasets.model import CHART_KINDS
from bot.intents import (
    ColumnOrder,
    Download,
    DrawChart,
    Feedback,
    FileLink,
    Intent,
    ListFiles,
    OpenWorkspace,
    PassUse,
    PostFile,
    RevokeWorkspace,
    ShowPage,
    Stop,
    WebPass,
)
from bot.messages import ThreadKey
from bot.tokens import TokenSigner

#: Slack's limit on a select option's value: every button token must fit it.
BUTTON_TOKEN_LIMIT = 150
_LINK_CONTEXT = "file-link"
#: Workspace links and browser sessions: contexts of their own, so one never opens as the other.
_PASS_CONTEXTS: dict[PassUse, str] = {"link": "web-link", "session": "web-session"}


def _encode(intent: Intent) -> list[Any]:
    match intent:
        case ShowPage(dataset=d, page=p, sort=None, columns=1):
            return ["p", d, p]
        case ShowPage(dataset=d, page=p, sort=ColumnOrder(column=c, descending=r), columns=1):
            return ["p", d, p, c, int(r)]
        case ShowPage(dataset=d, page=p, sort=None, columns=k):
            return ["p", d, p, k]
        case ShowPage(dataset=d, page=p, sort=ColumnOrder(column=c, descending=r), columns=k):
            return ["p", d, p, c, int(r), k]
        case DrawChart(dataset=d, kind=k, x=x, y=y):
            return ["c", d, k, x, y]
        case Download(dataset=d, format=f):
            return ["d", d, f]
        case ListFiles():
            return ["l"]
        case PostFile(key=k):
            return ["f", k]
        case FileLink(conversation=c, path=p, purpose=purpose):
            return ["o", c, p, purpose]
        case Stop():
            return ["s"]
        case Feedback(positive=positive, turn=""):
            return ["b", int(positive)]
        case Feedback(positive=positive, turn=turn):
            return ["b", int(positive), turn]
        case OpenWorkspace():
            return ["w"]
        case RevokeWorkspace():
            return ["r"]
    raise TypeError(f"not an intent: {intent!r}")


def _int(value: object, low: int = 0) -> int:
    if type(value) is not int or value < low:
        raise ValueError(value)
    return value


def _str(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(value)
    return value


def _flag(value: object) -> bool:
    if value not in (0, 1) or type(value) is not int:
        raise ValueError(value)
    return bool(value)


def _decode(data: list[Any], expires: int | None) -> Intent:
    """The intent an encoded array describes; ``ValueError`` for any shape we never seal."""
    match data:
        case ["p", d, p]:
            return ShowPage(_str(d), _int(p, 1))
        case ["p", d, p, c, r]:
            return ShowPage(_str(d), _int(p, 1), ColumnOrder(_int(c), _flag(r)))
        case ["p", d, p, k]:
            return ShowPage(_str(d), _int(p, 1), None, _int(k, 1))
        case ["p", d, p, c, r, k]:
            return ShowPage(_str(d), _int(p, 1), ColumnOrder(_int(c), _flag(r)), _int(k, 1))
        case ["c", d, k, x, y]:
            kind = next((known for known in CHART_KINDS if known == k), None)
            if kind is None:
                raise ValueError(k)
            return DrawChart(_str(d), kind, _int(x), None if y is None else _int(y))
        case ["d", d, "csv" | "parquet" as f]:
            return Download(_str(d), f)
        case ["l"]:
            return ListFiles()
        case ["f", k]:
            return PostFile(_str(k))
        case ["o", c, p, "download" | "consent" as purpose] if expires is not None:
            return FileLink(_str(c), _str(p), expires, purpose)
        case ["s"]:
            return Stop()
        case ["b", positive]:
            return Feedback(_flag(positive))
        case ["b", positive, turn]:
            return Feedback(_flag(positive), _str(turn))
        case ["w"]:
            return OpenWorkspace()
        case ["r"]:
            return RevokeWorkspace()
    raise ValueError(data)


def _thread_context(thread: ThreadKey, user: str | None) -> str:
    # Distinct at the 25th character ("/" after the 24-hex digest), so the two never collide.
    return thread.digest if user is None else f"{thread.digest}/u:{user}"


class IntentSealer:
    """Seals intents for a thread and opens them again, under one ``TokenSigner``."""

    def __init__(self, signer: TokenSigner) -> None:
        self._signer = signer

    def seal(self, thread: ThreadKey, intent: Intent, *, user: str | None = None,
             expires: int | None = None) -> str:
        """A token for ``intent`` that opens only in ``thread`` (for ``user`` only, if given; until
        ``expires``, a Unix time, if given). File links go through ``seal_link``."""
        if isinstance(intent, FileLink):
            raise TypeError("file links are sealed with seal_link")
        payload: dict[str, Any] = {"i": _encode(intent)}
        if expires is not None:
            payload["x"] = expires
        return self._signer.seal(payload, context=_thread_context(thread, user))

    def open(self, token: str, thread: ThreadKey, user: str, *, now: float | None = None) -> Intent | None:
        """The intent in ``token`` if it was sealed for ``thread`` (and, if bound, for ``user``) and has
        not expired; else ``None``."""
        payload = self._signer.open(token, context=_thread_context(thread, user))
        if payload is None:
            payload = self._signer.open(token, context=_thread_context(thread, None))
        intent = self._unpack(payload, now)
        return None if isinstance(intent, FileLink) else intent

    def seal_link(self, thread: ThreadKey, link: FileLink) -> str:
        """A token naming ``link`` and its thread, valid until ``link.expires``."""
        payload = {"i": _encode(link), "x": link.expires,
                   "t": [thread.platform, thread.team, thread.channel, thread.thread]}
        return self._signer.seal(payload, context=_LINK_CONTEXT)

    def open_link(self, token: str, *, now: float | None = None) -> tuple[ThreadKey, FileLink] | None:
        """The thread and file link in ``token``, or ``None`` if forged, edited, expired or malformed."""
        payload = self._signer.open(token, context=_LINK_CONTEXT)
        link = self._unpack(payload, now)
        if not isinstance(link, FileLink) or payload is None:
            return None
        match payload.get("t"):
            case [str(platform), str(team), str(channel), str(root)]:
                return ThreadKey(platform, team, channel, root), link
        return None

    def seal_pass(self, grant: WebPass, use: PassUse) -> str:
        """A token carrying ``grant``, as a workspace link or a session cookie (``use``)."""
        t = grant.thread
        payload = {"t": [t.platform, t.team, t.channel, t.thread], "c": grant.conversation, "u": grant.owner,
                   "g": grant.generation, "x": grant.expires}
        return self._signer.seal(payload, context=_PASS_CONTEXTS[use])

    def open_pass(self, token: str, use: PassUse, *, now: float | None = None) -> WebPass | None:
        """The grant in ``token`` if it was sealed for ``use`` and has not expired; else ``None``.

        Whether the grant still holds (same conversation, generation not moved on) is the caller's
        check: it needs the state store."""
        payload = self._signer.open(token, context=_PASS_CONTEXTS[use])
        if payload is None:
            return None
        match payload:
            case {"t": [str(platform), str(team), str(channel), str(root)], "c": str(conversation),
                  "u": str(owner), "g": int(generation), "x": int(expires)}:
                if expires < (time.time() if now is None else now):
                    return None
                return WebPass(ThreadKey(platform, team, channel, root), conversation, owner, generation, expires)
        return None

    @staticmethod
    def _unpack(payload: dict[str, Any] | None, now: float | None) -> Intent | None:
        if payload is None or not isinstance(payload.get("i"), list):
            return None
        expires = payload.get("x")
        if expires is not None and (type(expires) is not int or expires < (time.time() if now is None else now)):
            return None
        try:
            return _decode(payload["i"], expires)
        except ValueError:
            return None
