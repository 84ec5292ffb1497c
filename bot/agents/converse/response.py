"""One model response of the Converse loop, assembled from ``converse_stream`` events, and what of it is
shown when (held-back text, rationale, streamed answer: see ``bot.agents.converse.agent``). Pure: no I/O.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.agents.aws import AwsProblem
from bot.agents.converse.history import Message
from bot.events import AgentEvent, FinalText, Rationale

log = logging.getLogger(__name__)

NO_ANSWER = "(The model finished without an answer.)"


@dataclass(frozen=True)
class More:
    """A continuation of the ``Rationale`` paragraph just shown (a reasoning delta)."""

    text: str


Shown = AgentEvent | More


@dataclass
class Response:
    """One model response: content blocks by index, the stop reason, and the text not shown yet.

    ``answered`` is shared by the turn's responses: whether any ``FinalText`` was shown this turn (a
    second answer part then needs a blank line before it). ``feed`` takes each stream event and
    returns what to show now; ``end`` what to show once the stream ended normally.
    """

    holdback: int
    answered: list[bool]
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    stop_reason: str | None = None
    problem: AwsProblem | None = None
    _held: str = ""  # text not shown yet (rationale or answer: not known yet)
    _live: bool = False  # this response's text is taken as the answer and streams as it comes
    _started: bool = False  # this response already showed answer text

    def reset(self) -> None:
        """Forget a response that failed before anything was shown (a retry starts afresh)."""
        self.blocks.clear()
        self.stop_reason, self._held, self._live, self._started = None, "", False, False

    def tool_uses(self) -> list[dict[str, Any]]:
        return [b["toolUse"] for _, b in sorted(self.blocks.items()) if "toolUse" in b]

    def text(self) -> str:
        return "".join(b["text"] for _, b in sorted(self.blocks.items()) if "text" in b)

    def message(self, with_tools: bool) -> Message:
        """The assistant message for history: empty text dropped, tool inputs parsed to objects."""
        content: list[dict[str, Any]] = []
        for _, block in sorted(self.blocks.items()):
            if "text" in block and block["text"].strip():
                content.append({"text": block["text"]})
            elif "reasoning" in block and block["reasoning"].get("signature"):
                content.append({"reasoningContent": {"reasoningText": dict(block["reasoning"])}})
            elif "toolUse" in block and with_tools:
                tool = block["toolUse"]
                content.append({"toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"],
                                            "input": tool["parsed"]}})
        return {"role": "assistant", "content": content or [{"text": NO_ANSWER}]}

    def _answer(self, text: str) -> FinalText:
        # A second answer part in one turn (rare: a long preamble before a tool) needs a gap.
        gap = "\n\n" if self.answered[0] and not self._started else ""
        self._started = self.answered[0] = True
        return FinalText(gap + text)

    def feed(self, raw: Mapping[str, Any]) -> Iterator[Shown]:
        """Take one ``converse_stream`` event; yield what is shown now."""
        if "contentBlockStart" in raw:
            start = raw["contentBlockStart"]
            tool = start.get("start", {}).get("toolUse")
            if tool is not None:
                if self._held.strip():
                    yield Rationale(self._held.strip())
                self._held = ""
                self.blocks[start["contentBlockIndex"]] = {
                    "toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"], "raw": ""}
                }
        elif "contentBlockDelta" in raw:
            block = self.blocks.setdefault(raw["contentBlockDelta"]["contentBlockIndex"], {})
            yield from self._delta(block, raw["contentBlockDelta"]["delta"])
        elif "contentBlockStop" in raw:
            block = self.blocks.get(raw["contentBlockStop"]["contentBlockIndex"], {})
            if "toolUse" in block:
                block["toolUse"]["parsed"] = parse_input(block["toolUse"]["raw"])
        elif "messageStop" in raw:
            self.stop_reason = raw["messageStop"].get("stopReason")
        elif "metadata" in raw:
            log.debug("bedrock usage %s", raw["metadata"].get("usage"))

    def _delta(self, block: dict[str, Any], delta: Mapping[str, Any]) -> Iterator[Shown]:
        if "text" in delta:
            block["text"] = block.get("text", "") + delta["text"]
            if self._live:
                yield self._answer(delta["text"])
                return
            self._held += delta["text"]
            if len(self._held) >= self.holdback:
                self._live = True
                yield self._answer(self._held)
                self._held = ""
        elif "toolUse" in delta and "toolUse" in block:
            block["toolUse"]["raw"] += delta["toolUse"].get("input", "")
        elif "reasoningContent" in delta:
            # Reasoning is never the answer: it streams as it comes, one paragraph per block.
            reasoning = block.setdefault("reasoning", {"text": ""})
            part = delta["reasoningContent"]
            text = str(part.get("text") or "")
            if text:
                continued = bool(reasoning["text"].strip())
                reasoning["text"] += text
                if continued:
                    yield More(text)
                elif text.strip():
                    yield Rationale(text.lstrip())
            if part.get("signature"):
                reasoning["signature"] = part["signature"]

    def end(self) -> Iterator[Shown]:
        """The stream ended normally: held text is rationale before tool calls, else the answer."""
        for tool in self.tool_uses():
            tool.setdefault("parsed", parse_input(tool["raw"]))
        if self._held.strip():
            if self.stop_reason == "tool_use" and self.tool_uses():
                yield Rationale(self._held.strip())
            else:
                yield self._answer(self._held)
            self._held = ""


def parse_input(raw: str) -> dict[str, Any] | None:
    """The tool input object; ``{}`` for no input, ``None`` when it is not a JSON object."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
