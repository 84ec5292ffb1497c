"""Pure translation of inbound Bot Framework activities (raw JSON dicts) into the core's model.

Raw dicts, not botbuilder ``Activity`` objects: botbuilder's ``Entity`` drops the fields we need
(``mentioned``), and pure functions over plain data are easy to test from recorded fixtures.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from bot.intents import CLICK_KINDS
from bot.messages import ActionInvoked, IncomingMessage, MessageRef, RemoteFile, ThreadKey
from renderers.markdown import fence
from renderers.teams import ACTION_KEY, CHOICE_INPUT

PLATFORM = "teams"
FILE_DOWNLOAD_INFO = "application/vnd.microsoft.teams.file.download.info"

_MESSAGE_ID = re.compile(r";messageid=(\d+)")
_AT = re.compile(r"<at[^>]*>(.*?)</at>", re.I | re.S)
_BREAKS = re.compile(r"<br\s*/?>|</p>|</div>", re.I)
_TAGS = re.compile(r"</?(p|div|span|br|strong|em|b|i)\b[^>]*>", re.I)
#: Code as Teams sends it: a code block (``<codeblock>`` from the compose box, ``<pre>`` when pasted)
#: or an inline ``<code>`` span. Syntax colouring arrives as ``<span>``s inside; line breaks as
#: ``<br>`` or newlines; indentation as ``&nbsp;`` runs mixed with spaces.
_CODE = re.compile(
    r"<(codeblock|pre)\b([^>]*)>(.*?)</\1\s*>|<code\b[^>]*>(.*?)</code\s*>", re.I | re.S)
_LANGUAGE = re.compile(r"""class\s*=\s*["'](?:language-)?([A-Za-z0-9_+-]+)""", re.I)
#: Teams' names for "no language": the block is sent as an untagged fence.
_UNTAGGED = frozenset({"plaintext", "text", "plain"})
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")
_ANY_TAG = re.compile(r"<[^>]+>")
_IMAGE_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


#: Conversation ids of channels (``19:…@thread.tacv2``, older ``19:…@thread.skype``) and of group
#: chats (``19:…@thread.v2``); a personal chat's id is ``a:…`` (or anything the emulator makes up).
_CHANNEL_ID = re.compile(r"^19:[^;]*@thread\.(?:tacv2|skype)(?:;|$)", re.I)
_GROUP_ID = re.compile(r"^19:[^;]*@thread\.v2(?:;|$)", re.I)


def conversation_type(activity: dict[str, Any]) -> str:
    """``personal``, ``channel`` or ``groupChat``.

    Teams names it in ``conversation.conversationType``; when that is missing it is read from what
    the activity does carry: a channel in ``channelData``, the conversation id's shape, ``isGroup``.
    Only what has none of those is a personal chat (as for the emulator).
    """
    named = _dig(activity, "conversation", "conversationType")
    if named:
        return str(named)
    conversation_id = str(_dig(activity, "conversation", "id") or "")
    if _dig(activity, "channelData", "channel", "id") or _CHANNEL_ID.match(conversation_id):
        return "channel"
    if _GROUP_ID.match(conversation_id) or _dig(activity, "conversation", "isGroup") is True:
        return "groupChat"
    return "personal"


def base_conversation_id(conversation_id: str) -> str:
    """The conversation id without its ``;messageid=`` reply-chain suffix."""
    return conversation_id.split(";", 1)[0]


def reply_chain_root(activity: dict[str, Any]) -> str:
    """The id of the channel post this activity belongs to (its own id when it starts a post)."""
    match = _MESSAGE_ID.search(str(_dig(activity, "conversation", "id") or ""))
    reply_to = activity.get("replyToId")
    if str(reply_to).strip() in ("", "-1", "None"):
        reply_to = None
    return match.group(1) if match else str(reply_to or activity.get("id") or "")


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


def _code_text(markup: str) -> str:
    """The code inside a Teams code element, byte for byte as typed: breaks, tabs, spaces, blank lines."""
    text = _BREAKS.sub("\n", markup.replace("\r\n", "\n"))
    text = _ANY_TAG.sub("", text)
    return html.unescape(text).replace("\xa0", " ")


def _prose_text(markup: str) -> str:
    """Prose with Teams' HTML wrapping, entities and the indentation of its HTML source removed."""
    text = _AT.sub(lambda m: m.group(1), markup)  # other people's mentions keep their names
    text = _BREAKS.sub("\n", text)
    text = _TAGS.sub("", text)
    text = html.unescape(text).replace("\xa0", " ")
    return "\n".join(line.strip() for line in text.splitlines())


def _message_markup(activity: dict[str, Any]) -> str:
    """The richest form of the message: its ``text/html`` copy when that holds code, else ``text``.

    Teams puts the message's HTML in a ``text/html`` attachment beside ``text``; when ``text`` has
    been flattened, only the HTML copy still has the code's line breaks and indentation.
    """
    text = str(activity.get("text") or "")
    if _CODE.search(text):
        return text
    for att in activity.get("attachments") or ():
        if isinstance(att, dict) and att.get("contentType") == "text/html" and isinstance(att.get("content"), str) \
                and _CODE.search(att["content"]):
            return str(att["content"])
    return text


def _mentions(activity: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in activity.get("entities") or () if isinstance(e, dict) and e.get("type") == "mention"]


#: A mention as the text has it (``<at>``) or as its text/html copy has it (a Mention ``<span>``).
_MENTION_TAG = re.compile(r"<at[^>]*>(.*?)</at>|<span\b[^>]*schema\.skype\.com/Mention[^>]*>(.*?)</span>",
                          re.I | re.S)


def _norm(name: str) -> str:
    return " ".join(html.unescape(_ANY_TAG.sub("", name)).replace("\xa0", " ").split()).casefold()


def _strip_bot_at(text: str, activity: dict[str, Any]) -> str:
    """The bot's ``<at>…</at>`` tags removed when its mention entity has no ``text`` (or one that
    is not in the message): Teams writes one ``<at>`` per mention entity, in order, so the tags are
    paired with the entities by position; failing that, a tag naming the bot (the entity's or the
    recipient's name) is the bot's; failing that, a leading tag when the bot is mentioned."""
    tags = list(_MENTION_TAG.finditer(text))
    if not tags or not bot_mentioned(activity):
        return text
    bot_id = _dig(activity, "recipient", "id")
    mentions = _mentions(activity)
    ours: list[re.Match[str]] = []
    if len(mentions) == len(tags):
        ours = [t for t, e in zip(tags, mentions, strict=True) if _dig(e, "mentioned", "id") == bot_id]
    if not ours:
        names = {_norm(str(_dig(e, "mentioned", "name") or "")) for e in mentions
                 if _dig(e, "mentioned", "id") == bot_id}
        names |= {_norm(str(_dig(activity, "recipient", "name") or ""))}
        ours = [t for t in tags if _norm(t.group(1) or t.group(2) or "") in names - {""}]
    if not ours and not text[: tags[0].start()].strip():
        ours = [tags[0]]
    for tag in reversed(ours):
        text = text[: tag.start()].rstrip(" ") + " " + text[tag.end():].lstrip(" ")
    return text


def clean_text(activity: dict[str, Any]) -> str:
    """The text without the bot's ``<at>`` mention and without Teams' HTML wrapping and entities.

    Code reaches the agent intact: a code block becomes a Markdown fence (with its language) whose
    body keeps every space, tab and blank line; inline code becomes a backtick span. Only prose has
    its lines trimmed.
    """
    # Private-use placeholders mark code set aside below; a message cannot bring its own.
    text = _message_markup(activity).replace("\ue000", "").replace("\ue001", "")
    bot_id = _dig(activity, "recipient", "id")
    bot_tags = {
        str(e.get("text") or "")
        for e in activity.get("entities") or ()
        if isinstance(e, dict) and e.get("type") == "mention" and _dig(e, "mentioned", "id") == bot_id
    }
    found = False
    for tag in bot_tags - {""}:
        found = found or tag in text
        text = text.replace(tag, " ")
        # The text/html copy marks mentions with a span instead of <at>.
        name = re.escape(_AT.sub(lambda m: m.group(1), tag))
        text = re.sub(rf"<span\b[^>]*schema\.skype\.com/Mention[^>]*>{name}</span>", " ", text, flags=re.I)
    if not found:  # the entity has no text, or text the message does not hold
        text = _strip_bot_at(text, activity)
    # Code is set aside behind placeholders so the prose clean-up cannot touch it.
    codes: list[str] = []

    def set_aside(match: re.Match[str]) -> str:
        if match.group(1):
            found = _LANGUAGE.search(match.group(2))
            language = found.group(1).lower() if found else ""
            code = _code_text(match.group(3)).strip("\n")
            codes.append(f"\n{fence(code, '' if language in _UNTAGGED else language)}\n")
        else:
            codes.append(f"`{_code_text(match.group(4))}`")
        return f"\ue000{len(codes) - 1}\ue001"

    prose = _prose_text(_CODE.sub(set_aside, text))
    return _PLACEHOLDER.sub(lambda m: codes[int(m.group(1))], prose).strip(" \t\n")


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
        elif kind.startswith("image/") and (url := att.get("contentUrl") or _dig(att, "content", "downloadUrl")):
            # Inline images come with ``contentUrl``; some clients send only ``content.downloadUrl``.
            ext = _IMAGE_EXT.get(kind, "png")
            name = str(att.get("name") or f"image-{index + 1}.{ext}")
            files.append(RemoteFile(name, str(url), media_type=kind if kind != "image/*" else None))
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


def clicked_card_id(activity: dict[str, Any]) -> str | None:
    """The id of the card a click came from: ``replyToId``, else ``channelData.legacy.replyToId``
    (all some channel clicks carry); ``None`` when neither names one (missing, empty or ``-1``)."""
    for candidate in (activity.get("replyToId"), _dig(activity, "channelData", "legacy", "replyToId")):
        if isinstance(candidate, str | int) and str(candidate).strip() not in ("", "-1"):
            return str(candidate).strip()
    return None


def to_action(activity: dict[str, Any]) -> ActionInvoked | None:
    """An ``Action.Submit`` click (a message with our ``value``), or ``None``.

    ``message`` is the clicked card when the activity names it (``clicked_card_id``), else ``None``:
    the adapter may still know the card by its token, and otherwise the result is posted anew.
    """
    value = activity.get("value")
    if activity.get("type") != "message" or not isinstance(value, dict):
        return None
    kind = str(value.get(ACTION_KEY))
    if kind not in CLICK_KINDS:
        return None
    token = value.get("token") or value.get(CHOICE_INPUT) or ""
    card_id = clicked_card_id(activity)
    return ActionInvoked(
        kind=kind,
        token=str(token),
        user=str(_dig(activity, "from", "id") or ""),
        thread=thread_key(activity),
        message=MessageRef(reply_conversation_id(activity), card_id) if card_id else None,
    )


def user_name(activity: dict[str, Any]) -> str:
    return str(_dig(activity, "from", "name") or _dig(activity, "from", "id") or "someone")


def to_feedback(activity: dict[str, Any]) -> tuple[bool, str, str] | None:
    """A 👍 / 👎 of Teams' feedback loop (a ``message/submitAction`` invoke): whether it is
    positive, the comment the person typed (may be empty) and the rated message's id; else ``None``."""
    if activity.get("type") != "invoke" or activity.get("name") != "message/submitAction":
        return None
    value = activity.get("value")
    if not isinstance(value, dict) or value.get("actionName") != "feedback":
        return None
    action = value.get("actionValue") or {}
    reaction = action.get("reaction") if isinstance(action, dict) else None
    if reaction not in ("like", "dislike"):
        return None
    comment = ""
    raw = action.get("feedback")
    try:  # Teams sends the form as a JSON string: {"feedbackText": "..."}
        form = json.loads(raw) if isinstance(raw, str) else raw
        if isinstance(form, dict):
            comment = str(form.get("feedbackText") or "").strip()
    except ValueError:
        comment = ""
    return reaction == "like", comment, str(activity.get("replyToId") or "")
