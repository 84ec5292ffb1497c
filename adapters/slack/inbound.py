"""Pure translation of Slack payloads into the core's inbound model (no I/O, no SDK).

``to_incoming`` takes an Events API ``event`` (``app_mention`` or ``message``), ``to_action`` a
``block_actions`` payload. Both return ``None`` for anything the bot should ignore.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.intents import CLICK_KINDS
from bot.messages import ActionInvoked, IncomingMessage, MessageRef, RemoteFile, ThreadKey
from renderers.slack import ACTION_PREFIX

PLATFORM = "slack"
#: Message subtypes that still carry a user's message to the bot; every other subtype is ignored
#: (edits, deletions, joins, bot messages, channel topic changes, ...).
ACCEPTED_SUBTYPES = frozenset({"file_share", "thread_broadcast"})

_ANGLE = re.compile(r"<([^<>]*)>")
#: Code as Slack sends it: fenced blocks first (they may hold single backticks), then inline spans.
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_SPACES = re.compile(r"[ \t]{2,}")


def _unescape(text: str) -> str:
    # &amp; last, so "&amp;lt;" stays the literal text "&lt;".
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _collapse_prose(text: str) -> str:
    """Runs of spaces collapsed outside code; fenced blocks and inline code are kept byte for byte."""
    out, last = [], 0
    for match in _CODE.finditer(text):
        out.append(_SPACES.sub(" ", text[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_SPACES.sub(" ", text[last:]))
    return "".join(out)


def clean_text(text: str, bot_user_id: str | None) -> str:
    """Slack message text as a person typed it: our mention removed, markup and escapes undone.

    Code (fenced blocks and inline spans) keeps every space, tab, blank line and trailing space:
    only Slack's own markup and escapes are undone inside it. Outside code, the spaces left where
    the mention was are folded.

    ``<@BOT>`` → removed; ``<@U123>``/``<@U123|name>`` → ``@U123``; ``<#C1|name>`` → ``#name``;
    ``<!here>`` → ``@here``; ``<!subteam^S1|@team>`` → ``@team``; ``<http://x|label>`` → ``label``;
    ``<http://x>`` → ``http://x``; ``<mailto:a@b|a@b>`` → ``a@b``; then ``&lt; &gt; &amp;`` undone.
    """

    def repl(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            user = target[1:]
            return "" if bot_user_id and user == bot_user_id else f"@{user}"
        if target.startswith("#"):
            return f"#{label}" if label else f"#{target[1:]}"
        if target.startswith("!"):
            if label:
                return label
            special = target[1:].split("^", 1)[0]
            return f"@{special}"
        if label:
            return label
        return target[len("mailto:"):] if target.startswith("mailto:") else target

    text = _collapse_prose(_ANGLE.sub(repl, text))
    return _unescape(text).strip(" \t\n")


#: Why a file cannot be read, by the ``mode`` or ``file_access`` Slack gives it.
UNREADABLE = {
    "tombstone": "it was deleted.",
    "hidden_by_limit": "it is hidden by the workspace's plan limits.",
    "access_denied": "Slack did not give me access to it.",
    "file_not_found": "Slack could not find it.",
}
#: ``file_access`` values that mean: ask ``files.info`` for the real file object (Slack Connect).
CHECK_FILE_INFO = "check_file_info"


def remote_file(f: Mapping[str, Any]) -> RemoteFile:
    """One entry of an event's ``files`` (or a ``files.info`` answer's ``file``) as a ``RemoteFile``.

    A file with ``"file_access": "check_file_info"`` carries only its id: it keeps ``file_id`` for the
    surface to look up. A file the bot cannot read keeps its name and says why in ``unreadable``.
    """
    name = f.get("name") or f.get("title") or f.get("id") or "file"
    url = f.get("url_private_download") or f.get("url_private") or ""
    access = f.get("file_access")
    reason = UNREADABLE.get(f.get("mode") or "") or UNREADABLE.get(access or "")
    if reason is None and not url and access != CHECK_FILE_INFO:
        reason = "Slack sent no link to download it."
    if reason is None and access not in (None, "visible", CHECK_FILE_INFO):
        reason = "Slack did not give me access to it."
    return RemoteFile(name=name, url=url, size=f.get("size"), media_type=f.get("mimetype"),
                      file_id=f.get("id") if access == CHECK_FILE_INFO or not url else None,
                      unreadable=reason)


def _files(event: Mapping[str, Any]) -> tuple[RemoteFile, ...]:
    return tuple(remote_file(f) for f in event.get("files") or () if isinstance(f, Mapping))


def receiving_team(body: Mapping[str, Any], installed_team: str | None) -> str:
    """The workspace a Slack request is for, the same for every event and click of one thread.

    In a Slack Connect channel an event's ``team_id`` (and a click's ``team``/``user.team_id``) can be
    the other workspace's. Like bolt, prefer the app's own installation: ``installed_team`` (our
    ``auth.test``), then ``authorizations[0].team_id``, then the payload's own team fields.
    """
    if installed_team:
        return installed_team
    auths = body.get("authorizations") or ()
    if auths and isinstance(auths[0], Mapping) and auths[0].get("team_id"):
        return str(auths[0]["team_id"])
    team = body.get("team")
    team_id = team.get("id") if isinstance(team, Mapping) else team
    event, user = body.get("event"), body.get("user")
    return str(body.get("team_id") or team_id or (user.get("team_id") if isinstance(user, Mapping) else None)
               or (event.get("team") if isinstance(event, Mapping) else None) or "")


def to_incoming(event: Mapping[str, Any], bot_user_id: str | None, team: str,
                bot_id: str | None = None) -> IncomingMessage | None:
    """An ``IncomingMessage`` for a user's ``app_mention`` / ``message`` event, else ``None``.

    Thread key: (team, channel, ``thread_ts`` or ``ts``), so a top-level message (channel or DM)
    starts a thread keyed by its own ts and replies continue it. ``event_id`` is
    ``channel:ts``: the same for an ``app_mention`` and its ``message`` twin and for every retry.
    """
    kind = event.get("type")
    if kind not in ("app_mention", "message"):
        return None
    subtype = event.get("subtype")
    if subtype and subtype not in ACCEPTED_SUBTYPES:
        return None
    user = event.get("user")
    if not user or event.get("bot_id") or event.get("bot_profile") or (bot_user_id and user == bot_user_id):
        return None
    if bot_id and event.get("bot_id") == bot_id:
        return None
    channel, ts = event.get("channel"), event.get("ts")
    if not channel or not ts:
        return None
    raw = event.get("text") or ""
    mentioned = (
        kind == "app_mention"
        or event.get("channel_type") == "im"
        or (bot_user_id is not None and f"<@{bot_user_id}" in raw)
    )
    return IncomingMessage(
        thread=ThreadKey(PLATFORM, team, channel, event.get("thread_ts") or ts),
        user=user,
        text=clean_text(raw, bot_user_id),
        files=_files(event),
        event_id=f"{channel}:{ts}",
        mentioned=mentioned,
    )


def action_kind(action_id: str) -> str | None:
    """The intent kind encoded in one of our action ids (``datathread:<kind>:<n>``), else ``None``."""
    if not action_id.startswith(ACTION_PREFIX):
        return None
    kind = action_id[len(ACTION_PREFIX):].split(":", 1)[0]
    return kind if kind in CLICK_KINDS else None


def to_action(body: Mapping[str, Any], team: str | None = None) -> ActionInvoked | None:
    """An ``ActionInvoked`` for the first of our actions in a ``block_actions`` payload, else ``None``.

    The value is the button's ``value`` or the select's ``selected_option.value``. The thread comes
    from the container (the message's ``thread_ts``, or its own ts for a top-level message); the
    message ref is channel + message ts. ``team`` is the receiving workspace (``receiving_team``);
    without it, the payload's own.
    """
    if body.get("type") != "block_actions":
        return None
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    message_ts = container.get("message_ts") or message.get("ts")
    team = team or receiving_team(body, None)
    user = (body.get("user") or {}).get("id")
    if not (channel and message_ts and team and user):
        return None
    thread = container.get("thread_ts") or message.get("thread_ts") or message_ts
    for action in body.get("actions") or ():
        kind = action_kind(str(action.get("action_id", "")))
        if kind is None:
            continue
        value = action.get("value")
        if value is None:
            value = (action.get("selected_option") or {}).get("value")
        if not isinstance(value, str):
            return None
        return ActionInvoked(
            kind=kind,
            token=value,
            user=user,
            thread=ThreadKey(PLATFORM, team, channel, thread),
            message=MessageRef(channel, message_ts),
        )
    return None


def session_stopped(event: Mapping[str, Any], team: str) -> tuple[ThreadKey, str] | None:
    """The thread and user of an ``agent_session_stopped`` event (Slack's own Stop button of an
    agent session), else ``None``.

    Documented shape (docs.slack.dev/reference/events/agent_session_stopped, and @slack/types
    ``AgentSessionStoppedEvent``): ``channel``, ``thread_ts``, ``user``, ``event_ts`` and
    ``streaming_message_ts`` — a *list* of the streams Slack stopped, empty when none was open; the
    team is on the envelope. We stop the thread's turn whatever it was streaming, so that list is
    not read. ``channel_id`` / ``user_id`` are accepted too, as other agent payloads spell them."""
    channel = event.get("channel_id") or event.get("channel")
    thread = event.get("thread_ts")
    user = event.get("user_id") or event.get("user")
    if isinstance(user, Mapping):
        user = user.get("id")
    if not (isinstance(channel, str) and channel and isinstance(thread, str) and thread and isinstance(user, str)
            and user):
        return None
    return ThreadKey(PLATFORM, event.get("team") or team, channel, thread), user
