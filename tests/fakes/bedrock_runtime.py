"""A local Bedrock Runtime that plays a scripted model over the real wire protocol.

``POST /model/{modelId}/converse-stream`` answers with an AWS event stream (messageStart,
contentBlockStart/Delta/Stop, messageStop, metadata) and ``POST /model/{modelId}/converse`` with
JSON, so the real boto3 client parses both. Each request takes the next item of the script; an
item is a ``Reply``, a ``Fail`` (an HTTP error before the stream), or a callable receiving the
request body and returning one of those. Every request body is recorded in ``requests``.

Point boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME=<url>``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import aws_eventstream as es
from tests.fakes.server import LocalServer, serve


@dataclass(frozen=True)
class Say:
    """Text, streamed as several deltas of ``chunk`` characters."""

    text: str
    chunk: int = 12


@dataclass(frozen=True)
class Think:
    """Reasoning content (with a signature, as Claude sends it), in deltas of ``chunk`` characters
    (0: one delta)."""

    text: str
    signature: str = "sig-1"
    chunk: int = 0


@dataclass(frozen=True)
class Call:
    """A tool call; its input JSON is streamed in two fragments."""

    name: str
    input: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class StreamFault:
    """An in-stream exception event (e.g. ``throttlingException``) after the parts before it."""

    exception_type: str
    message: str = "fault"


@dataclass(frozen=True)
class Hang:
    """Keep the stream open, sending nothing more, until the client disconnects (counted in ``disconnects``)."""


Part = Say | Think | Call | StreamFault | Hang


@dataclass(frozen=True)
class Reply:
    parts: tuple[Part, ...]
    stop: str | None = None  # default: tool_use if there is a Call, else end_turn
    delay: float = 0.0  # seconds between events, to make streaming observable


@dataclass(frozen=True)
class Fail:
    """An HTTP error response, e.g. ``Fail(429, "ThrottlingException")``."""

    status: int
    code: str
    message: str = "scripted failure"


Item = Reply | Fail | Callable[[dict[str, Any]], "Reply | Fail"]


def reply(*parts: Part, stop: str | None = None, delay: float = 0.0) -> Reply:
    return Reply(tuple(parts), stop, delay)


@dataclass
class FakeBedrockRuntime:
    script: list[Item]
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    disconnects: int = 0
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    _server: LocalServer | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> FakeBedrockRuntime:
        app = web.Application()
        app.router.add_post("/model/{model}/converse-stream", self._converse_stream)
        app.router.add_post("/model/{model}/converse", self._converse)
        self._server = await serve(app)
        self.url = self._server.url
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()

    def _next(self, body: dict[str, Any]) -> Reply | Fail:
        if not self.script:
            return Fail(400, "ValidationException", "the scripted model has no more replies")
        item = self.script.pop(0)
        return item(body) if callable(item) else item

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append(body)
        self.paths.append(request.path)
        return dict(body)

    @staticmethod
    def _error(fail: Fail) -> web.Response:
        return web.json_response(
            {"message": fail.message}, status=fail.status, headers={"x-amzn-ErrorType": fail.code}
        )

    async def _converse(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        item = self._next(body)
        if isinstance(item, Fail):
            return self._error(item)
        content: list[dict[str, Any]] = []
        for part in item.parts:
            if isinstance(part, Say):
                content.append({"text": part.text})
            elif isinstance(part, Call):
                content.append({"toolUse": {"toolUseId": part.id or f"tool-{next(self._ids)}",
                                            "name": part.name, "input": part.input}})
        stop = item.stop or ("tool_use" if any(isinstance(p, Call) for p in item.parts) else "end_turn")
        return web.json_response({
            "output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
            "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}, "metrics": {"latencyMs": 5},
        })

    async def _converse_stream(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        item = self._next(body)
        if isinstance(item, Fail):
            return self._error(item)
        response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
        await response.prepare(request)

        async def send(frame: bytes) -> None:
            await response.write(frame)
            if item.delay:
                await asyncio.sleep(item.delay)

        await send(es.event("messageStart", {"role": "assistant"}))
        for index, part in enumerate(item.parts):
            if isinstance(part, Hang):
                # aiohttp gives a handler no "client left" event: poll the transport.
                while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                self.disconnects += 1
                self.disconnected.set()
                return response
            if isinstance(part, StreamFault):
                await send(es.exception(part.exception_type, part.message))
                await response.write_eof()
                return response
            if isinstance(part, Say):
                for i in range(0, len(part.text), part.chunk):
                    delta = {"text": part.text[i : i + part.chunk]}
                    await send(es.event("contentBlockDelta", {"delta": delta, "contentBlockIndex": index}))
            elif isinstance(part, Think):
                size = part.chunk or len(part.text) or 1
                pieces = [{"text": part.text[i : i + size]} for i in range(0, len(part.text), size)]
                for delta in (*pieces, {"signature": part.signature}):
                    await send(es.event("contentBlockDelta",
                                        {"delta": {"reasoningContent": delta}, "contentBlockIndex": index}))
            else:
                tool_id = part.id or f"tool-{next(self._ids)}"
                start = {"toolUse": {"toolUseId": tool_id, "name": part.name}}
                await send(es.event("contentBlockStart", {"start": start, "contentBlockIndex": index}))
                raw = json.dumps(part.input)
                for fragment in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
                    await send(es.event("contentBlockDelta",
                                        {"delta": {"toolUse": {"input": fragment}}, "contentBlockIndex": index}))
            await send(es.event("contentBlockStop", {"contentBlockIndex": index}))
        stop = item.stop or ("tool_use" if any(isinstance(p, Call) for p in item.parts) else "end_turn")
        await send(es.event("messageStop", {"stopReason": stop}))
        await send(es.event("metadata", {"usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
                                         "metrics": {"latencyMs": 5}}))
        await response.write_eof()
        return response
