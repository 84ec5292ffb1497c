"""Encoder for the AWS event-stream wire format (application/vnd.amazon.eventstream).

Each message: a 12-byte prelude (total length, headers length, CRC32 of those 8 bytes), headers,
the payload, then a CRC32 of everything before it. Headers here are all strings (type 7), which is
what AWS services send for ``:message-type``, ``:event-type``, ``:content-type`` and
``:exception-type``. Used by the local fakes of Bedrock so the real boto3 parser reads our streams.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with correct lengths and CRCs."""
    head = _headers(headers)
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + head + payload
    return body + struct.pack("!I", zlib.crc32(body) & 0xFFFFFFFF)


def _jsonable(value: Any) -> Any:
    """bytes become base64 strings, as AWS JSON protocols send blobs."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """An ``event`` message (``:event-type`` names the union member, e.g. ``chunk`` or ``trace``)."""
    return encode_message(
        {":message-type": "event", ":event-type": event_type, ":content-type": "application/json"},
        json.dumps(_jsonable(payload)).encode(),
    )


def exception(exception_type: str, message: str) -> bytes:
    """An in-stream modelled error (``:exception-type`` e.g. ``throttlingException``)."""
    return encode_message(
        {":message-type": "exception", ":exception-type": exception_type, ":content-type": "application/json"},
        json.dumps({"message": message}).encode(),
    )


def error(code: str, message: str) -> bytes:
    """An unmodelled in-stream error (``:message-type`` error)."""
    return encode_message({":message-type": "error", ":error-code": code, ":error-message": message}, b"")
