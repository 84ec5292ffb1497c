"""Pure translation of inbound Bot Framework activities (raw JSON dicts) into the core's model.

Raw dicts, not botbuilder ``Activity`` objects: botbuilder's ``Entity`` drops the fields we need
(``mentioned``), and pure functions over plain data are easy to test from recorded fixtures.
"""

from __future__ import annotations

import html
import re
from typing import Any

from bot.messages import ActionInvoked, ActionKind, IncomingMessage, MessageRef, RemoteFile, ThreadKey
from renderers.teams import ACTION_KEY, CHOICE_INPUT

PLATFORM = "teams"
FILE_DOWNLOAD_INFO = "application/vnd.microsoft.teams.file.download.info"

_MESSAGE_ID = re.compile(r";messageid=(\d+)")
_AT = re.compile(r"<at[^>]*>(.*?)</at>", re.I | re.S)
_BREAKS = re.compile(r"<br\s*/?>|</p>|</div>", re.I)
_TAGS = re.compile(r"</?(p|div|span|br|strong|em|b|i)\b[^>]*>", re.I)
_IMAGE_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def conversation_type(activity: dict[str, Any]) -> str:
    """``personal``, ``channel`` or ``groupChat`` (defaults to personal, as for the emulator)."""
    return str(_dig(activity, "conversation", "conversationType") or "personal")


def base_conversation_id(conversation_id: str) -> str:
    """The conversation id without its ``;messageid=`` reply-chain suffix."""
    return conversation_id.split(";", 1)[0]


def reply_chain_root(activity: dict[str, Any]) -> str:
    """The id of the channel post this activity belongs to (its own id when it starts a post)."""
    match = _MESSAGE_ID.search(str(_dig(activity, "conversation", "id") or ""))
    return match.group(1) if match else str(activity.get("replyToId") or activity.get("id") or "")


def reply_conversation_id(activity: dict[str, Any]) -> str:
    """Where replies go: channel posts answer inside their reply chain (``;messageid=<root>``)."""
    conversation_id = str(_dig(activity, "conversation", "id") or "")
    if conversation_type(activity) == "channel" and not _MESSAGE_ID.search(conversation_id):
        return f"{conversation_id};messageid={reply_chain_root(activity)}"
    return conversation_id


def thread_key(activity: dict[str, Any]) -> ThreadKey:
    """Personal and group chats are one thread each; a channel's reply chain is one thread."""
    conversation_id = str(_dig(activity, "conversation", "id") or "")
    tenant = str(_dig(activity, "channelData", "tenant", "id") or _dig(activity, "conversation", "tenantId") or "")
    channel = base_conversation_id(conversation_id)
    thread = reply_chain_root(activity) if conversation_type(activity) == "channel" else channel
    return ThreadKey(PLATFORM, tenant, channel, thread)


def bot_mentioned(activity: dict[str, Any]) -> bool:
    bot_id = _dig(activity, "recipient", "id")
    return any(
        isinstance(e, dict) and e.get("type") == "mention" and _dig(e, "mentioned", "id") == bot_id
        for e in activity.get("entities") or ()
    )


def clean_text(activity: dict[str, Any]) -> str:
    """The text without the bot's ``<at>`` mention and without Teams' HTML wrapping and entities."""
    text = str(activity.get("text") or "")
    bot_id = _dig(activity, "recipient", "id")
    bot_tags = {
        str(e.get("text") or "")
        for e in activity.get("entities") or ()
        if isinstance(e, dict) and e.get("type") == "mention" and _dig(e, "mentioned", "id") == bot_id
    }
    for tag in bot_tags - {""}:
        text = text.replace(tag, " ")
    text = _AT.sub(lambda m: m.group(1), text)  # other people's mentions keep their names
    text = _BREAKS.sub("\n", text)
    text = _TAGS.sub("", text)
    text = html.unescape(text).replace("\xa0", " ")
    return "\n".join(line.strip() for line in text.strip().splitlines()).strip()


def remote_files(activity: dict[str, Any]) -> tuple[RemoteFile, ...]:
    """Attachments people sent: personal-chat files (download info) and inline images."""
    files: list[RemoteFile] = []
    for index, att in enumerate(activity.get("attachments") or ()):
        if not isinstance(att, dict):
            continue
        kind = str(att.get("contentType") or "")
        if kind == FILE_DOWNLOAD_INFO and _dig(att, "content", "downloadUrl"):
            file_type = _dig(att, "content", "fileType")
            name = str(att.get("name") or f"file-{index + 1}.{file_type or 'bin'}")
            files.append(RemoteFile(name, str(att["content"]["downloadUrl"])))
        elif kind.startswith("image/") and att.get("contentUrl"):
            ext = _IMAGE_EXT.get(kind, "png")
            name = str(att.get("name") or f"image-{index + 1}.{ext}")
            files.append(RemoteFile(name, str(att["contentUrl"]), media_type=kind if kind != "image/*" else None))
    return tuple(files)


def to_incoming(activity: dict[str, Any]) -> IncomingMessage | None:
    """A user message addressed to the bot, or ``None`` (not a message, a card click, the bot itself)."""
    if activity.get("type") != "message" or activity.get("value") is not None:
        return None
    user = str(_dig(activity, "from", "id") or "")
    if not user or user == _dig(activity, "recipient", "id"):
        return None
    personal = conversation_type(activity) == "personal"
    files = remote_files(activity)
    text = clean_text(activity)
    if not text and not files:
        return None
    return IncomingMessage(
        thread=thread_key(activity),
        user=user,
        text=text,
        files=files,
        event_id=str(activity.get("id") or "") or None,
        mentioned=personal or bot_mentioned(activity),
        resettable=personal,
    )


def to_action(activity: dict[str, Any]) -> ActionInvoked | None:
    """An ``Action.Submit`` click (a message with ``value`` and ``replyToId``), or ``None``."""
    value = activity.get("value")
    if activity.get("type") != "message" or not isinstance(value, dict) or not activity.get("replyToId"):
        return None
    try:
        kind = ActionKind(str(value.get(ACTION_KEY)))
    except ValueError:
        return None
    token = value.get("token") or value.get(CHOICE_INPUT) or ""
    return ActionInvoked(
        kind=kind,
        token=str(token),
        user=str(_dig(activity, "from", "id") or ""),
        thread=thread_key(activity),
        message=MessageRef(reply_conversation_id(activity), str(activity["replyToId"])),
    )


def user_name(activity: dict[str, Any]) -> str:
    return str(_dig(activity, "from", "name") or _dig(activity, "from", "id") or "someone")
