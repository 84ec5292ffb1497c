"""Activity entities botbuilder does not model. Its ``Entity`` keeps only ``type`` when serialised,
so each entity we send is an msrest ``Model`` subclass whose ``_attribute_map`` names its fields."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from botbuilder.schema import Entity

StreamType = Literal["informative", "streaming", "final"]


class StreamInfo(Entity):
    """Teams streaming: ``streamId`` (the first update's activity id), ``streamType`` and
    ``streamSequence`` (1, 2, … for typing updates; omitted on the final message)."""

    _attribute_map: ClassVar[dict[str, dict[str, str]]] = {
        "type": {"key": "type", "type": "str"},
        "stream_id": {"key": "streamId", "type": "str"},
        "stream_type": {"key": "streamType", "type": "str"},
        "stream_sequence": {"key": "streamSequence", "type": "int"},
    }

    def __init__(
        self,
        *,
        stream_type: StreamType,
        stream_sequence: int | None = None,
        stream_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(type="streaminfo", **kwargs)
        self.stream_id = stream_id
        self.stream_type = stream_type
        self.stream_sequence = stream_sequence


class MentionEntity(Entity):
    """An ``<at>name</at>`` mention of ``user_id`` in the activity text."""

    _attribute_map: ClassVar[dict[str, dict[str, str]]] = {
        "type": {"key": "type", "type": "str"},
        "mentioned": {"key": "mentioned", "type": "{str}"},
        "text": {"key": "text", "type": "str"},
    }

    def __init__(self, *, user_id: str, name: str, **kwargs: Any) -> None:
        super().__init__(type="mention", **kwargs)
        self.mentioned = {"id": user_id, "name": name}
        self.text = f"<at>{name}</at>"


class AIGeneratedLabel(Entity):
    """The "AI generated" label Teams shows on a bot message: a schema.org ``Message`` entity
    whose ``additionalType`` is ``AIGeneratedContent``."""

    _attribute_map: ClassVar[dict[str, dict[str, str]]] = {
        "type": {"key": "type", "type": "str"},
        "at_type": {"key": "@type", "type": "str"},
        "at_context": {"key": "@context", "type": "str"},
        "at_id": {"key": "@id", "type": "str"},
        "additional_type": {"key": "additionalType", "type": "[str]"},
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(type="https://schema.org/Message", **kwargs)
        self.at_type = "Message"
        self.at_context = "https://schema.org"
        self.at_id = ""
        self.additional_type = ["AIGeneratedContent"]
