"""A local Amazon Bedrock Agents service that the real boto3 client talks to.

Runtime: ``POST /agents/{agentId}/agentAliases/{aliasId}/sessions/{sessionId}/text`` records the request
JSON and answers with ``application/vnd.amazon.eventstream`` frames (encoded by ``aws_eventstream``),
sent in HTTP chunks with optional pauses, so slow streams are really slow. Pre-stream errors are AWS
REST-JSON errors (status, ``x-amzn-errortype``, ``{"message": ...}``), the way botocore parses them.
Control plane (for ``doctor``): ``GetAgent``, ``GetAgentAlias``, ``ListAgentActionGroups``,
``GetAgentActionGroup``. Point boto3 here with ``AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME`` and
``AWS_ENDPOINT_URL_BEDROCK_AGENT``.

Each call to the runtime takes the next queued script (``queue``), else ``default``. A script is a
list of steps: ``Frame`` (bytes of one event-stream message), ``Pause``, ``Gate`` (wait for the test),
``Hang`` (keep the response open until the client goes away) or a single ``PreStreamError``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import aws_eventstream as es
from tests.fakes.server import LocalServer, serve


@dataclass(frozen=True)
class Frame:
    data: bytes


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Hang:
    """Keep the stream open (sending nothing) until the client disconnects."""


@dataclass(frozen=True)
class Gate:
    """Send nothing until ``opened`` is set (a test decides when the slow agent goes on)."""

    opened: asyncio.Event


@dataclass(frozen=True)
class PreStreamError:
    status: int
    code: str
    message: str


Step = Frame | Pause | Gate | Hang | PreStreamError


# -- builders for the events a real agent with the code interpreter sends ---------------------------

def _trace(trace: dict[str, Any], **part: Any) -> Frame:
    body = {"agentId": "AB12CD34EF", "agentAliasId": "LIVE123456", "agentVersion": "1", "sessionId": "s",
            "eventTime": "2026-11-22T00:00:00Z", "trace": trace, **part}
    return Frame(es.event("trace", body))


def rationale(trace_id: str, text: str, **part: Any) -> Frame:
    return _trace({"orchestrationTrace": {"rationale": {"traceId": trace_id, "text": text}}}, **part)


def code(trace_id: str, source: str, **part: Any) -> Frame:
    return _trace({"orchestrationTrace": {"invocationInput": {
        "traceId": trace_id, "invocationType": "ACTION_GROUP_CODE_INTERPRETER",
        "codeInterpreterInvocationInput": {"code": source}}}}, **part)


def code_result(trace_id: str, *, output: str | None = None, error: str | None = None,
                timeout: bool = False, files: list[str] | None = None, **part: Any) -> Frame:
    result: dict[str, Any] = {}
    if output is not None:
        result["executionOutput"] = output
    if error is not None:
        result["executionError"] = error
    if timeout:
        result["executionTimeout"] = True
    if files:
        result["files"] = files
    return _trace({"orchestrationTrace": {"observation": {
        "traceId": trace_id, "type": "ACTION_GROUP_CODE_INTERPRETER",
        "codeInterpreterInvocationOutput": result}}}, **part)


def final_response(trace_id: str, text: str) -> Frame:
    return _trace({"orchestrationTrace": {"observation": {
        "traceId": trace_id, "type": "FINISH", "finalResponse": {"text": text}}}})


def model_input(trace_id: str) -> Frame:
    return _trace({"orchestrationTrace": {"modelInvocationInput": {
        "traceId": trace_id, "type": "ORCHESTRATION", "text": "{\"system\": \"...\"}"}}})


def guardrail(trace_id: str, topic: str = "Investment advice") -> Frame:
    return _trace({"guardrailTrace": {"traceId": trace_id, "action": "INTERVENED", "inputAssessments": [
        {"topicPolicy": {"topics": [{"name": topic, "type": "DENY", "action": "BLOCKED"}]}}]}})


def failure(trace_id: str, reason: str) -> Frame:
    return _trace({"failureTrace": {"traceId": trace_id, "failureReason": reason}})


def unknown_trace(kind: str = "quantumTrace") -> Frame:
    return _trace({kind: {"traceId": "zzz-0", "whatever": 1}})


def files(*items: tuple[str, str, bytes]) -> Frame:
    return Frame(es.event("files", {"files": [{"name": n, "type": t, "bytes": b} for n, t, b in items]}))


def chunk(text: str) -> Frame:
    return Frame(es.event("chunk", {"bytes": text.encode()}))


def chunk_bytes(data: bytes) -> Frame:
    return Frame(es.event("chunk", {"bytes": data}))


def stream_exception(code: str, message: str) -> Frame:
    return Frame(es.exception(code, message))


# -- the server ----------------------------------------------------------------------------------------

@dataclass
class Recorded:
    agent_id: str
    alias_id: str
    session_id: str
    body: dict[str, Any]

    def files(self) -> list[tuple[str, str, bytes]]:
        """``sessionState.files`` as (name, media type, bytes)."""
        out = []
        for f in self.body.get("sessionState", {}).get("files", []):
            content = f["source"]["byteContent"]
            out.append((f["name"], content["mediaType"], base64.b64decode(content["data"])))
        return out


@dataclass
class FakeBedrockAgents:
    """The fake service. ``requests`` records runtime calls; ``disconnects`` counts clients that left mid-stream."""

    default: list[Step] = field(default_factory=lambda: [chunk("Hello from the fake agent.")])
    queue: deque[list[Step]] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    disconnects: int = 0
    agent_status: str = "PREPARED"
    alias_version: str = "3"
    action_groups: list[dict[str, Any]] = field(default_factory=lambda: [
        {"actionGroupId": "AG1", "actionGroupName": "CodeInterpreterAction",
         "parentActionSignature": "AMAZON.CodeInterpreter", "actionGroupState": "ENABLED"}])
    known_agents: set[str] = field(default_factory=lambda: {"AB12CD34EF"})
    #: when set, every control-plane call answers this error (e.g. access denied, rejected keys)
    control_error: PreStreamError | None = None
    url: str = ""
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    _server: LocalServer | None = None

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/agents/{agent}/agentAliases/{alias}/sessions/{session}/text", self._invoke)
        app.router.add_get("/agents/{agent}/", self._get_agent)
        app.router.add_get("/agents/{agent}/agentaliases/{alias}/", self._get_alias)
        app.router.add_post("/agents/{agent}/agentversions/{version}/actiongroups/", self._list_groups)
        app.router.add_get("/agents/{agent}/agentversions/{version}/actiongroups/{group}/", self._get_group)
        self._server = await serve(app)
        self.url = self._server.url
        return self.url

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    # runtime

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        info = request.match_info
        self.requests.append(Recorded(info["agent"], info["alias"], info["session"], body))
        script = self.queue.popleft() if self.queue else self.default
        if script and isinstance(script[0], PreStreamError):
            err = script[0]
            return web.json_response({"message": err.message}, status=err.status,
                                     headers={"x-amzn-errortype": err.code})
        response = web.StreamResponse(headers={
            "Content-Type": "application/vnd.amazon.eventstream",
            "x-amzn-bedrock-agent-content-type": "application/json",
            "x-amz-bedrock-agent-session-id": info["session"],
        })
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for step in script:
                match step:
                    case Frame(data):
                        await response.write(data)
                    case Pause(seconds):
                        await asyncio.sleep(seconds)
                    case Gate(opened):
                        await asyncio.wait_for(opened.wait(), 30)
                    case Hang():
                        await self._wait_for_disconnect(request)
                        return response
                    case PreStreamError():
                        raise AssertionError("PreStreamError must be the only step of a script")
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            self._gone()
        return response

    async def _wait_for_disconnect(self, request: web.Request) -> None:
        # aiohttp gives a handler no "client left" event (handler cancellation is off): poll the transport.
        while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        self._gone()

    def _gone(self) -> None:
        self.disconnects += 1
        self.disconnected.set()

    # control plane

    def _missing(self, agent: str) -> web.Response | None:
        if (err := self.control_error) is not None:
            return web.json_response({"message": err.message}, status=err.status,
                                     headers={"x-amzn-errortype": err.code})
        if agent in self.known_agents:
            return None
        return web.json_response({"message": f"Agent {agent} not found"}, status=404,
                                 headers={"x-amzn-errortype": "ResourceNotFoundException"})

    async def _get_agent(self, request: web.Request) -> web.Response:
        agent = request.match_info["agent"]
        if (missing := self._missing(agent)) is not None:
            return missing
        now = time.time()
        return web.json_response({"agent": {
            "agentId": agent, "agentName": "data-analyst", "agentArn": f"arn:aws:bedrock:us-east-1:1:agent/{agent}",
            "agentVersion": "DRAFT", "agentStatus": self.agent_status, "idleSessionTTLInSeconds": 600,
            "agentResourceRoleArn": "arn:aws:iam::1:role/agent", "createdAt": now, "updatedAt": now}})

    async def _get_alias(self, request: web.Request) -> web.Response:
        agent, alias = request.match_info["agent"], request.match_info["alias"]
        if (missing := self._missing(agent)) is not None:
            return missing
        now = time.time()
        return web.json_response({"agentAlias": {
            "agentId": agent, "agentAliasId": alias, "agentAliasName": "live",
            "agentAliasArn": f"arn:aws:bedrock:us-east-1:1:agent-alias/{agent}/{alias}",
            "routingConfiguration": [{"agentVersion": self.alias_version}], "createdAt": now, "updatedAt": now,
            "agentAliasStatus": "PREPARED"}})

    async def _list_groups(self, request: web.Request) -> web.Response:
        now = time.time()
        return web.json_response({"actionGroupSummaries": [
            {"actionGroupId": g["actionGroupId"], "actionGroupName": g["actionGroupName"],
             "actionGroupState": g["actionGroupState"], "updatedAt": now} for g in self.action_groups]})

    async def _get_group(self, request: web.Request) -> web.Response:
        info = request.match_info
        now = time.time()
        group = next(g for g in self.action_groups if g["actionGroupId"] == info["group"])
        return web.json_response({"agentActionGroup": {
            "agentId": info["agent"], "agentVersion": info["version"], "createdAt": now, "updatedAt": now, **group}})


def scenario_json(path: str) -> list[Step]:
    """A script from a JSON fixture: a list of {"event": type, "payload": {...}} / {"pause": s} items.

    Blobs are written as {"$text": "..."} or {"$base64": "..."} so fixtures stay readable.
    """
    with open(path, encoding="utf-8") as f:
        items = json.load(f)

    def blobs(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"$text"}:
                return value["$text"].encode()
            if set(value) == {"$base64"}:
                return base64.b64decode(value["$base64"])
            return {k: blobs(v) for k, v in value.items()}
        if isinstance(value, list):
            return [blobs(v) for v in value]
        return value

    steps: list[Step] = []
    for item in items:
        if "pause" in item:
            steps.append(Pause(float(item["pause"])))
        elif "exception" in item:
            steps.append(stream_exception(item["exception"], item.get("message", "")))
        else:
            steps.append(Frame(es.event(item["event"], blobs(item["payload"]))))
    return steps
