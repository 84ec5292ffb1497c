"""``datathread doctor`` checks for the Converse backend: the model answers with tools enabled, and
(with the ``agentcore`` executor) a Code Interpreter session can start and stop.

Credentials, region and endpoints come from boto3's default chain, so the per-service endpoint
variables work here as they do for the agent. Never prints secrets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bot.agents.aws import aws_client, aws_session
from bot.agents.converse.config import SYSTEM_INTERPRETER, ConverseConfig
from bot.agents.converse.errors import model_problem
from bot.config import ConfigError
from bot.doctor import DoctorCheck

_PING_TOOL = {"toolSpec": {
    "name": "ping",
    "description": "Answer ping.",
    "inputSchema": {"json": {"type": "object", "properties": {}}},
}}


def _service_message(exc: BaseException) -> str:
    """The service's own words for an AWS error (no secrets in them), clipped for one line."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        text = str(exc.response.get("Error", {}).get("Message", "")).strip()
        return text[:200]
    return ""


def _model_check(config: ConverseConfig) -> DoctorCheck:
    """One short ``converse_stream`` call with a tool defined: the same API (and IAM action,
    bedrock:InvokeModelWithResponseStream) the agent uses, so a pass here means chat can work."""
    name = "Bedrock model"
    try:
        client: Any = aws_client("bedrock-runtime", region=config.region, read_timeout=config.read_timeout,
                                 connect_timeout=config.connect_timeout, attempts=2)
        response = client.converse_stream(
            modelId=config.model_id,
            messages=[{"role": "user", "content": [{"text": "Reply with the word ok."}]}],
            inferenceConfig={"maxTokens": 16},
            toolConfig={"tools": [_PING_TOOL]},
        )
        stop = "?"
        for event in response["stream"]:
            if "messageStop" in event:
                stop = str(event["messageStop"].get("stopReason", "?"))
    except Exception as exc:
        problem = model_problem(exc)
        if problem is None:
            return DoctorCheck(name, False, f"unexpected error ({type(exc).__name__})", "see the log for details.")
        said = _service_message(exc)
        detail = f"{config.model_id}: {problem.code}" + (f" ({said})" if said else "")
        hint = problem.message
        lowered = said.lower()
        if problem.code.lower() == "validationexception" and "inference profile" in lowered:
            hint = ("this model is only served through an inference profile: set BEDROCK_MODEL_ID to the "
                    "profile ID (e.g. us." + config.model_id + "), listed in the Bedrock console under "
                    "Cross-region inference.")
        elif problem.code.lower() == "validationexception" and "tool" in lowered:
            hint = "this model does not support tool use in the Converse API; pick one that does."
        return DoctorCheck(name, False, detail, hint)
    return DoctorCheck(name, True, f"{config.model_id} answers with tool use enabled (stop reason {stop})")


def _interpreter_hint(exc: BaseException, config: ConverseConfig, region: str | None) -> str:
    """What to do about a session that would not start, by cause."""
    from botocore.exceptions import ConnectionError, EndpointConnectionError, NoCredentialsError, NoRegionError

    problem = model_problem(exc)
    code = problem.code.lower() if problem else ""
    local = " Or set DATATHREAD_EXECUTOR=local to run code on this machine instead."
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials were found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY." + local
    if isinstance(exc, NoRegionError):
        return "set AWS_REGION to a region where AgentCore is available." + local
    if isinstance(exc, (EndpointConnectionError, ConnectionError)):
        return (f"the AgentCore endpoint for region {region or '(default)'} could not be reached: check "
                "the network, AWS_REGION (AgentCore is not in every region) and "
                "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE if it is set." + local)
    if code == "accessdeniedexception":
        return ("allow bedrock-agentcore:StartCodeInterpreterSession, InvokeCodeInterpreter and "
                "StopCodeInterpreterSession for these credentials." + local)
    if code in ("resourcenotfoundexception", "validationexception"):
        return ("check AGENTCORE_CODE_INTERPRETER_ID (unset means the system interpreter "
                f"{SYSTEM_INTERPRETER}) and AWS_REGION." + local)
    return "try again in a minute; if it persists, see the log." + local


async def _interpreter_check(config: ConverseConfig, region: str | None) -> DoctorCheck:
    from bot.agents.agentcore.executor import AgentCoreExecutor

    name = "AgentCore Code Interpreter"

    class _NoState:
        async def get_value(self, namespace: str, key: str) -> Any:
            return None

        async def put_value(self, namespace: str, key: str, value: Any) -> None:
            return None

    executor = AgentCoreExecutor.from_config(config, _NoState())  # type: ignore[arg-type]
    try:
        session_id = await executor.start_session("datathread-doctor")
        await executor.stop_session(session_id)
    except Exception as exc:
        problem = model_problem(exc)
        code = problem.code if problem else type(exc).__name__
        said = _service_message(exc)
        detail = f"{config.interpreter_id}: could not start a session ({code}{': ' + said if said else ''})"
        return DoctorCheck(name, False, detail, _interpreter_hint(exc, config, region))
    finally:
        await executor.aclose()
    return DoctorCheck(name, True, f"{config.interpreter_id}: a session started and stopped")


async def diagnose(env: Mapping[str, str]) -> list[DoctorCheck]:
    """Checks of the Converse setup, in the order a fix should follow."""
    try:
        config = ConverseConfig.from_env(env)
    except ConfigError as exc:
        return [DoctorCheck("Converse settings", False, str(exc), "fix the variable named above.")]
    region = await asyncio.to_thread(lambda: aws_session(config.region).region_name)
    checks = [
        DoctorCheck("Converse settings", True, f"model {config.model_id}, executor {config.executor}, "
                    f"region {region or '(none configured)'}"),
        await asyncio.to_thread(_model_check, config),
    ]
    if config.executor == "agentcore":
        checks.append(await _interpreter_check(config, region))
    elif config.executor == "gateway":  # the gateway's own line follows (bot.agents.gateway.doctor)
        checks.append(DoctorCheck("Code executor", True, "kernels on a Jupyter Enterprise Gateway "
                                  "(DATATHREAD_EXECUTOR=gateway)"))
    else:
        checks.append(DoctorCheck("Code executor", True, "local Jupyter kernel (DATATHREAD_EXECUTOR=local)"))
    return checks
