"""A conversation's Converse messages: validity, trimming to a token budget, repair after a failure.

Messages are Bedrock Converse ``Message`` dicts (``{"role": ..., "content": [...]}``) that are also
plain JSON, so they are stored as they are sent. An *exchange* starts at a user message carrying
text (not tool results) and runs to the next one; trimming drops whole exchanges from the oldest
end, so a ``toolResult`` never loses its ``toolUse`` and the first message is always user text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Message = dict[str, Any]

#: Characters per token for budget estimates (English text and code average about four).
CHARS_PER_TOKEN = 4


def estimate_tokens(messages: Sequence[Message]) -> int:
    return sum(len(json.dumps(m, ensure_ascii=False)) for m in messages) // CHARS_PER_TOKEN


def _blocks(message: Message) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def starts_exchange(message: Message) -> bool:
    """A user message with text and no tool results: where a new exchange begins."""
    blocks = _blocks(message)
    return (
        message.get("role") == "user"
        and any("text" in b for b in blocks)
        and not any("toolResult" in b for b in blocks)
    )


def tool_use_ids(message: Message) -> list[str]:
    return [b["toolUse"]["toolUseId"] for b in _blocks(message) if "toolUse" in b]


def tool_result_ids(message: Message) -> list[str]:
    return [b["toolResult"]["toolUseId"] for b in _blocks(message) if "toolResult" in b]


def is_valid(messages: Sequence[Message]) -> bool:
    """Roles alternate from a user text message, no block list is empty, every ``toolUse`` is
    answered by the next message's ``toolResult`` (and only then), and it ends with the assistant
    asking for no tool (a call left unanswered at the end would make the next user message invalid)."""
    if not messages or not starts_exchange(messages[0]) or messages[-1].get("role") != "assistant":
        return False
    if tool_use_ids(messages[-1]):
        return False
    for i, message in enumerate(messages):
        if message.get("role") != ("user" if i % 2 == 0 else "assistant") or not _blocks(message):
            return False
        if any("text" in b and not str(b["text"]).strip() for b in _blocks(message)):
            return False
        results = tool_result_ids(message)
        expected = tool_use_ids(messages[i - 1]) if i > 0 else []
        if message.get("role") == "user" and sorted(results) != sorted(expected):
            return False
    return True


def exchanges(messages: Sequence[Message]) -> list[list[Message]]:
    """Split into exchanges; messages before the first user text are dropped."""
    out: list[list[Message]] = []
    for message in messages:
        if starts_exchange(message):
            out.append([message])
        elif out:
            out[-1].append(message)
    return out


def trim(messages: Sequence[Message], budget_tokens: int) -> list[Message]:
    """The newest whole exchanges that fit ``budget_tokens``; the newest one is always kept."""
    parts = exchanges(messages)
    kept: list[list[Message]] = []
    used = 0
    for part in reversed(parts):
        cost = estimate_tokens(part)
        if kept and used + cost > budget_tokens:
            break
        kept.append(part)
        used += cost
    return [m for part in reversed(kept) for m in part]


def sanitize(messages: Any) -> list[Message]:
    """Stored history made safe to send: invalid exchanges (a crash mid-write, an old format) are
    dropped together with everything older, so what remains is valid or empty."""
    if not isinstance(messages, list):
        return []
    parts = exchanges([m for m in messages if isinstance(m, dict)])
    kept: list[list[Message]] = []
    for part in reversed(parts):
        if not is_valid(part):
            break
        kept.append(part)
    return [m for part in reversed(kept) for m in part]


def close_turn(turn_messages: Sequence[Message], reason: str) -> list[Message]:
    """A failed or cancelled turn's messages, completed so the stored history stays valid.

    Unanswered tool calls get an error result, and the turn ends with an assistant note saying
    why it stopped, so the model knows on the next turn that the request was not finished.
    """
    out = [dict(m) for m in turn_messages]
    if not out:
        return out
    last = out[-1]
    pending = tool_use_ids(last) if last.get("role") == "assistant" else []
    if pending:
        out.append({
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": tid, "status": "error", "content": [{"text": f"Not run: {reason}"}]}}
                for tid in pending
            ],
        })
    note = {"text": f"(This turn stopped before an answer: {reason})"}
    if out[-1].get("role") == "assistant":
        out[-1] = {"role": "assistant", "content": [*_blocks(out[-1]), note]}
    else:
        out.append({"role": "assistant", "content": [note]})
    return out
