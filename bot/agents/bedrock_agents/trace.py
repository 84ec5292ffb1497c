"""Pure translation of ``invoke_agent`` stream events (as boto3 parses them) into agent events.

``parse_event`` turns one stream event into a list of items: agent events that can be shown as they
are, plus a few markers the turn runner must handle with state (answer chunks, the trace's final
response, generated files, failures), because deduplication and "answer once" span the whole turn.
Nothing here does I/O; unknown shapes are logged and skipped, never raised.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.events import AgentEvent, CodeError, CodeOutput, CodeStarted, Notice, Rationale

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerChunk:
    """Raw bytes of the final answer (one ``chunk``; many with ``streamFinalResponse``)."""

    data: bytes


@dataclass(frozen=True)
class TraceAnswer:
    """``observation.finalResponse.text``: the answer as the trace reports it (used only without chunks)."""

    text: str


@dataclass(frozen=True)
class OutputFile:
    name: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class FilesArrived:
    """The ``files`` event: generated files with their bytes."""

    files: tuple[OutputFile, ...]


@dataclass(frozen=True)
class FilesNamed:
    """``codeInterpreterInvocationOutput.files``: names of files a step made (bytes come in ``files``)."""

    names: tuple[str, ...]
    step: str | None


@dataclass(frozen=True)
class Failure:
    """``failureTrace``: the agent reports it could not go on."""

    reason: str
    step: str | None = None


Parsed = AgentEvent | AnswerChunk | TraceAnswer | FilesArrived | FilesNamed | Failure

#: Observation kinds we know about but do not show (the answer itself comes as chunks).
_QUIET_OBSERVATIONS = frozenset(
    {"traceId", "type", "actionGroupInvocationOutput", "knowledgeBaseLookupOutput", "repromptResponse",
     "agentCollaboratorInvocationOutput"}
)
_POLICY_WORDS = {
    "topicPolicy": "a denied topic",
    "contentPolicy": "a content filter",
    "wordPolicy": "a word filter",
    "sensitiveInformationPolicy": "sensitive information",
}


def step_id(trace_id: str | None, collaborator: str | None = None) -> str | None:
    """The step a trace part belongs to: its ``traceId``, verbatim.

    AWS documents ``traceId`` as "the unique identifier of the trace step": every part of one step
    (model input, rationale, invocation input, observation) carries the same id, and the steps of a
    turn differ only by their suffix (``<uuid>-0``, ``<uuid>-1``; pre-processing ``<uuid>-pre-0``).
    So the suffix must stay, or all of a turn's steps would merge into one. Parts of a collaborator
    agent are prefixed with its name so steps of different agents never merge.
    """
    if not trace_id:
        return None
    return f"{collaborator}/{trace_id}" if collaborator else trace_id


def split_error(text: str) -> CodeError:
    """A ``CodeError`` from the code interpreter's error text (a traceback or a single line)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "Error"
    match = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)):\s*(.*)$", last)
    if match:
        return CodeError(ename=match.group(1), evalue=match.group(2), traceback=text.strip())
    return CodeError(ename="ExecutionError", evalue=last, traceback=text.strip())


def _collaborator(part: Mapping[str, Any]) -> str | None:
    """The sub-agent that produced a trace part, if it is not the agent we called."""
    name = part.get("collaboratorName")
    chain = part.get("callerChain") or ()
    if name and len(chain) != 1:
        return str(name)
    return None


def _labelled(text: str, collaborator: str | None) -> str:
    return f"({collaborator}) {text}" if collaborator else text


def _trace_id(container: Mapping[str, Any]) -> str | None:
    """The first ``traceId`` found in a trace part's members (each member may carry one)."""
    for value in container.values():
        if isinstance(value, Mapping):
            found = value.get("traceId")
            if isinstance(found, str):
                return found
    return None


def _reasoning(output: Mapping[str, Any] | None) -> str:
    block = (output or {}).get("reasoningContent") or {}
    return str((block.get("reasoningText") or {}).get("text") or "").strip()


def _orchestration(trace: Mapping[str, Any], step: str | None, who: str | None) -> list[Parsed]:
    out: list[Parsed] = []
    reasoning = _reasoning(trace.get("modelInvocationOutput"))
    if reasoning:
        out.append(Rationale(_labelled(reasoning, who), step))
    rationale = (trace.get("rationale") or {}).get("text")
    if rationale:
        out.append(Rationale(_labelled(str(rationale), who), step))
    invocation = trace.get("invocationInput") or {}
    code = (invocation.get("codeInterpreterInvocationInput") or {}).get("code")
    if code:
        out.append(CodeStarted(str(code), "python", step))
    out.extend(_handover(invocation, step, who))
    out.extend(_observation(trace.get("observation") or {}, step))
    return out


def _handover(invocation: Mapping[str, Any], step: str | None, who: str | None) -> list[Parsed]:
    """A supervisor passing the work to a collaborator agent (orchestration or routing)."""
    name = (invocation.get("agentCollaboratorInvocationInput") or {}).get("agentCollaboratorName")
    return [Rationale(_labelled(f"Asking {name} to help.", who), step)] if name else []


def _observation(observation: Mapping[str, Any], step: str | None) -> list[Parsed]:
    out: list[Parsed] = []
    run = observation.get("codeInterpreterInvocationOutput")
    if run is not None:
        if run.get("executionOutput"):
            out.append(CodeOutput(str(run["executionOutput"]), "stdout", step))
        if run.get("executionError"):
            error = split_error(str(run["executionError"]))
            out.append(CodeError(error.ename, error.evalue, error.traceback, step))
        if run.get("executionTimeout"):
            out.append(Notice("The code ran too long and the code interpreter stopped it.", "warning", step))
        # run["files"] only names the files; their bytes come in a separate ``files`` event, which
        # carries no traceId: the names tie those files to this step.
        if run.get("files"):
            out.append(FilesNamed(tuple(str(name) for name in run["files"]), step))
    final = (observation.get("finalResponse") or {}).get("text")
    if final:
        out.append(TraceAnswer(str(final)))
    unknown = set(observation) - _QUIET_OBSERVATIONS - {"codeInterpreterInvocationOutput", "finalResponse"}
    if unknown:
        log.info("skipping observation kinds %s", sorted(unknown))
    return out


def _guardrail(trace: Mapping[str, Any], step: str | None) -> list[Parsed]:
    if trace.get("action") != "INTERVENED":
        return []
    where = []
    if trace.get("inputAssessments"):
        where.append("your message")
    if trace.get("outputAssessments"):
        where.append("the agent's answer")
    policies: list[str] = []
    for assessment in [*(trace.get("inputAssessments") or ()), *(trace.get("outputAssessments") or ())]:
        for key, words in _POLICY_WORDS.items():
            if assessment.get(key) and words not in policies:
                policies.append(words)
    subject = " and ".join(where) or "this conversation"
    because = f" because of {', '.join(policies)}" if policies else ""
    return [Notice(
        f"A content guardrail blocked {subject}{because}. Rephrase your request and try again.", "warning", step
    )]


def _processing(trace: Mapping[str, Any], step: str | None, who: str | None) -> list[Parsed]:
    output = trace.get("modelInvocationOutput") or {}
    out: list[Parsed] = []
    reasoning = _reasoning(output)
    if reasoning:
        out.append(Rationale(_labelled(reasoning, who), step))
    rationale = (output.get("parsedResponse") or {}).get("rationale")
    if rationale:
        out.append(Rationale(_labelled(str(rationale), who), step))
    return out


def parse_trace(part: Mapping[str, Any]) -> list[Parsed]:
    """Items for one ``trace`` event (a ``TracePart``)."""
    trace = part.get("trace") or {}
    who = _collaborator(part)
    out: list[Parsed] = []
    for kind, body in trace.items():
        if not isinstance(body, Mapping):
            continue
        step = step_id(body.get("traceId") or _trace_id(body), who)
        match kind:
            case "orchestrationTrace":
                out.extend(_orchestration(body, step, who))
            case "preProcessingTrace" | "postProcessingTrace":
                out.extend(_processing(body, step, who))
            case "guardrailTrace":
                out.extend(_guardrail(body, step))
            case "failureTrace":
                reason = str(body.get("failureReason") or "the agent could not complete the request")
                out.append(Failure(_labelled(reason, who), step))
            case "routingClassifierTrace":
                # The router's model input/output are internals; who it hands the request to is not.
                out.extend(_handover(body.get("invocationInput") or {}, step, who))
            case "customOrchestrationTrace":
                log.debug("trace kind %s not shown", kind)
            case "SDK_UNKNOWN_MEMBER":
                log.warning("skipping unknown trace kind %s", body.get("name"))
            case _:
                log.warning("skipping unknown trace kind %s", kind)
    return out


def _files(part: Mapping[str, Any]) -> FilesArrived:
    files: list[OutputFile] = []
    for item in part.get("files") or ():
        data = item.get("bytes") or b""
        if isinstance(data, str):  # defensive: a blob should already be bytes
            data = data.encode()
        files.append(OutputFile(str(item.get("name") or "file"), str(item.get("type") or ""), bytes(data)))
    return FilesArrived(tuple(files))


def parse_event(event: Mapping[str, Any]) -> list[Parsed]:
    """Items for one event of ``invoke_agent``'s ``completion`` stream, in the order they should appear."""
    out: list[Parsed] = []
    for kind, body in event.items():
        match kind:
            case "chunk":
                data = (body or {}).get("bytes") or b""
                if data:
                    out.append(AnswerChunk(bytes(data)))
            case "trace":
                out.extend(parse_trace(body or {}))
            case "files":
                out.append(_files(body or {}))
            case "returnControl":
                out.append(Notice(
                    "The agent asked this bot to run an action on its behalf, which it does not support. "
                    "Ask an admin to check the agent's action groups.", "warning"))
            case _:
                log.warning("skipping unknown stream event %s", kind)
    return out


def dedupe_key(file: OutputFile) -> tuple[str, str]:
    """Identity of a generated file within a turn: same name and same bytes means the same file."""
    return file.name, hashlib.sha256(file.data).hexdigest()

