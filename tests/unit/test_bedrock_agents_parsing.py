"""Bedrock Agents without the service: the ``invoke_agent`` stream parsed into events, error
messages, attachment planning and configuration."""

from __future__ import annotations

import hashlib

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from bot.agents.bedrock_agents.agent import BedrockAgent, BedrockAgentConfig
from bot.agents.bedrock_agents.errors import turn_failed
from bot.agents.bedrock_agents.files import plan_attachments
from bot.agents.bedrock_agents.trace import (
    AnswerChunk,
    Failure,
    FilesArrived,
    FilesNamed,
    OutputFile,
    TraceAnswer,
    dedupe_key,
    parse_event,
    split_error,
    step_id,
)
from bot.config import ConfigError, Settings
from bot.conversation import Attachment
from bot.events import CodeError, CodeOutput, CodeStarted, Notice, Rationale


def test_config_from_env_and_from_settings():
    env = {"BEDROCK_AGENT_ID": "AB12CD34EF", "BEDROCK_AGENT_ALIAS_ID": "TSTALIASID", "BEDROCK_AGENT_MEMORY": "1",
           "BEDROCK_STREAM_FINAL_RESPONSE": "true"}
    config = BedrockAgentConfig.from_env(env)
    assert (config.memory, config.stream_final_response, config.read_timeout) == (True, True, 300.0)
    backend = BedrockAgent.from_env(Settings.from_env({}), env)
    assert backend.config == config and backend.name == "bedrock-agents"
    with pytest.raises(ConfigError, match="BEDROCK_AGENT_ALIAS_ID"):
        BedrockAgentConfig.from_env({"BEDROCK_AGENT_ID": "AB12CD34EF"})
    with pytest.raises(ConfigError, match="BEDROCK_AGENT_READ_TIMEOUT_SECONDS"):
        BedrockAgentConfig.from_env({**env, "BEDROCK_AGENT_READ_TIMEOUT_SECONDS": "soon"})


# -- pure mapping tables ---------------------------------------------------------------------------------

def _trace(trace: dict, **part: object) -> dict:
    return {"trace": {"trace": trace, **part}}


PARSE_CASES = [
    ("rationale", _trace({"orchestrationTrace": {"rationale": {"traceId": "a-0", "text": "why"}}}),
     [Rationale("why", "a-0")]),
    ("code", _trace({"orchestrationTrace": {"invocationInput": {
        "traceId": "a-1", "codeInterpreterInvocationInput": {"code": "print(1)"}}}}),
     [CodeStarted("print(1)", "python", "a-1")]),
    ("output", _trace({"orchestrationTrace": {"observation": {
        "traceId": "a-0", "codeInterpreterInvocationOutput": {"executionOutput": "1\n", "files": ["x.png"]}}}}),
     [CodeOutput("1\n", "stdout", "a-0"), FilesNamed(("x.png",), "a-0")]),
    ("error without traceback", _trace({"orchestrationTrace": {"observation": {
        "traceId": "a-0", "codeInterpreterInvocationOutput": {"executionError": "kernel died"}}}}),
     [CodeError("ExecutionError", "kernel died", "kernel died", "a-0")]),
    ("timeout", _trace({"orchestrationTrace": {"observation": {
        "traceId": "a-0", "codeInterpreterInvocationOutput": {"executionTimeout": True}}}}),
     [Notice("The code ran too long and the code interpreter stopped it.", "warning", "a-0")]),
    ("final response", _trace({"orchestrationTrace": {"observation": {"finalResponse": {"text": "42"}}}}),
     [TraceAnswer("42")]),
    ("pre-processing", _trace({"preProcessingTrace": {"modelInvocationOutput": {
        "traceId": "p-pre-0", "parsedResponse": {"isValid": True, "rationale": "a data question"}}}}),
     [Rationale("a data question", "p-pre-0")]),
    ("post-processing reasoning", _trace({"postProcessingTrace": {"modelInvocationOutput": {
        "traceId": "p-post-0", "reasoningContent": {"reasoningText": {"text": "tidy the answer"}}}}}),
     [Rationale("tidy the answer", "p-post-0")]),
    ("collaborator", _trace({"orchestrationTrace": {"rationale": {"traceId": "b-2", "text": "plotting"}}},
                            collaboratorName="charts", callerChain=[{"agentAliasArn": "sup"}, {"agentAliasArn": "c"}]),
     [Rationale("(charts) plotting", "charts/b-2")]),
    ("supervisor itself", _trace({"orchestrationTrace": {"rationale": {"traceId": "b-2", "text": "plan"}}},
                                 collaboratorName="boss", callerChain=[{"agentAliasArn": "sup"}]),
     [Rationale("plan", "b-2")]),
    ("supervisor hands over", _trace({"orchestrationTrace": {"invocationInput": {
        "traceId": "s-0", "invocationType": "AGENT_COLLABORATOR", "agentCollaboratorInvocationInput": {
            "agentCollaboratorName": "charts", "input": {"text": "plot it"}}}}},
        callerChain=[{"agentAliasArn": "sup"}]),
     [Rationale("Asking charts to help.", "s-0")]),
    ("router hands over", _trace({"routingClassifierTrace": {"invocationInput": {
        "traceId": "r-0", "agentCollaboratorInvocationInput": {"agentCollaboratorName": "sql"}}}}),
     [Rationale("Asking sql to help.", "r-0")]),
    ("router internals are not shown", _trace({"routingClassifierTrace": {"modelInvocationInput": {
        "traceId": "r-0", "text": "..."}}}), []),
    ("failure", _trace({"failureTrace": {"traceId": "f-0", "failureReason": "boom"}}), [Failure("boom", "f-0")]),
    ("guardrail none", _trace({"guardrailTrace": {"traceId": "g-0", "action": "NONE"}}), []),
    ("unknown member", _trace({"SDK_UNKNOWN_MEMBER": {"name": "newTrace"}}), []),
    ("model input is not shown", _trace({"orchestrationTrace": {"modelInvocationInput": {"traceId": "m-0"}}}), []),
    ("chunk", {"chunk": {"bytes": b"hi"}}, [AnswerChunk(b"hi")]),
    ("files", {"files": {"files": [{"name": "a.csv", "type": "text/csv", "bytes": b"x\n1\n"}]}},
     [FilesArrived((OutputFile("a.csv", "text/csv", b"x\n1\n"),))]),
    ("unknown event", {"somethingNew": {}}, []),
]


@pytest.mark.parametrize(("case", "event", "expected"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_event(case, event, expected):
    assert parse_event(event) == expected


@pytest.mark.parametrize(("trace_id", "who", "step"), [
    ("abc-0", None, "abc-0"), ("abc-12", None, "abc-12"), ("abc", None, "abc"), (None, None, None),
    ("9f1e-pre-0", None, "9f1e-pre-0"), ("abc-3", "charts", "charts/abc-3"),
])
def test_step_id(trace_id, who, step):
    assert step_id(trace_id, who) == step


@pytest.mark.parametrize(("code", "words", "retryable"), [
    ("ServiceQuotaExceededException", "quota", True),
    ("ConflictException", "still working", True),
    ("BadGatewayException", "did not answer", True),
    ("internalServerException", "internal error", True),
    ("ResourceNotFoundException", "BEDROCK_AGENT_ID", False),
    ("UnrecognizedClientException", "credentials", False),
    ("ExpiredTokenException", "expired", False),
    ("SomethingNewException", "SomethingNewException", True),
])
def test_error_messages(code, words, retryable):
    failed = turn_failed(ClientError({"Error": {"Code": code, "Message": "x"}}, "InvokeAgent"), read_timeout=300)
    assert words in failed.message and failed.retryable is retryable


def test_read_timeout_message_names_the_wait():
    failed = turn_failed(ReadTimeoutError(endpoint_url="http://x"), read_timeout=300)
    assert "300 seconds" in failed.message and failed.retryable


def test_plan_keeps_order_and_total_limit(tmp_path):
    def att(name: str, size: int) -> Attachment:
        return Attachment(name, tmp_path / name, size, "text/csv")

    plan = plan_attachments([att("a.csv", 6_000_000), att("b.csv", 6_000_000), att("c.json", 10), att("e.csv", 0)])
    assert [p.name for p in plan.accepted] == ["a.csv", "c.json"]
    assert plan.rejected[0].startswith("b.csv") and "in total" in plan.rejected[0]
    assert "empty" in plan.rejected[1]
    same = plan_attachments([att("données.csv", 5), att("donnees.csv", 5)])
    assert [p.name for p in same.accepted] == ["donnees.csv", "donnees-2.csv"]


@pytest.mark.parametrize(("text", "ename", "evalue"), [
    ("Traceback (most recent call last):\n  File \"<stdin>\", line 1\nZeroDivisionError: division by zero\n",
     "ZeroDivisionError", "division by zero"),
    ("pandas.errors.ParserError: Error tokenizing data", "pandas.errors.ParserError", "Error tokenizing data"),
    ("KeyboardInterrupt: ", "KeyboardInterrupt", ""),
    ("kernel died\n\n", "ExecutionError", "kernel died"),
    ("", "ExecutionError", "Error"),
])
def test_interpreter_errors_are_headed_by_the_exception_they_name(text: str, ename: str, evalue: str) -> None:
    error = split_error(text)
    assert (error.ename, error.evalue, error.traceback) == (ename, evalue, text.strip())


def test_a_traceback_in_an_observation_becomes_one_code_error_of_that_step() -> None:
    event = _trace({"orchestrationTrace": {"observation": {"traceId": "e-1", "codeInterpreterInvocationOutput": {
        "executionOutput": "partial\n", "executionError": "Traceback ...\nValueError: bad value"}}}})
    assert parse_event(event) == [CodeOutput("partial\n", "stdout", "e-1"),
                                  CodeError("ValueError", "bad value", "Traceback ...\nValueError: bad value", "e-1")]


def test_a_guardrail_that_intervened_says_what_it_blocked_and_why() -> None:
    event = _trace({"guardrailTrace": {"traceId": "g-1", "action": "INTERVENED",
                                       "inputAssessments": [{"topicPolicy": {"topics": []}}],
                                       "outputAssessments": [{"contentPolicy": {"filters": []}}]}})
    [notice] = parse_event(event)
    assert isinstance(notice, Notice) and notice.level == "warning" and notice.step == "g-1"
    assert "your message and the agent's answer" in notice.text and "Rephrase" in notice.text


def test_a_return_control_request_is_explained_not_run() -> None:
    [notice] = parse_event({"returnControl": {"invocationId": "i-1"}})
    assert isinstance(notice, Notice) and "action groups" in notice.text


def test_empty_chunks_and_nameless_files_are_handled() -> None:
    assert parse_event({"chunk": {"bytes": b""}}) == []
    assert parse_event({"files": {"files": [{"bytes": "text"}]}}) == [FilesArrived((OutputFile("file", "", b"text"),))]


def test_the_same_file_is_recognised_by_name_and_bytes() -> None:
    a, same, other = OutputFile("a.csv", "text/csv", b"1"), OutputFile("a.csv", "", b"1"), OutputFile("a.csv", "", b"2")
    assert dedupe_key(a) == dedupe_key(same) == ("a.csv", hashlib.sha256(b"1").hexdigest())
    assert dedupe_key(a) != dedupe_key(other)
