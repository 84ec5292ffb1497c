"""``datathread doctor`` checks for the Converse backend: the model answers with tools enabled, and
(with the ``agentcore`` executor) a Code Interpreter session can start and stop.

Credentials, region and endpoints come from boto3's default chain, so the per-service endpoint
variables work here as they do for the agent. Never prints secrets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bot.agents.converse_config import ConverseConfig
from bot.agents.converse_stream import classify
from bot.config import ConfigError
from bot.doctor import DoctorCheck

_PING_TOOL = {"toolSpec": {
    "name": "ping",
    "description": "Answer ping.",
    "inputSchema": {"json": {"type": "object", "properties": {}}},
}}


def _model_check(config: ConverseConfig) -> DoctorCheck:
    from bot.agents.converse import runtime_client

    name = "Bedrock model"
    try:
        client: Any = runtime_client(config, retries=2)
        response = client.converse(
            modelId=config.model_id,
            messages=[{"role": "user", "content": [{"text": "Reply with the word ok."}]}],
            inferenceConfig={"maxTokens": 16},
            toolConfig={"tools": [_PING_TOOL]},
        )
    except Exception as exc:
        problem = classify(exc)
        if problem is None:
            return DoctorCheck(name, False, f"unexpected error ({type(exc).__name__})", "see the log for details.")
        hint = problem.message
        if problem.code.lower() == "validationexception" and "tool" in str(exc).lower():
            hint = "this model does not support tool use in the Converse API; pick one that does."
        return DoctorCheck(name, False, f"{config.model_id}: {problem.code}", hint)
    stop = response.get("stopReason", "?")
    return DoctorCheck(name, True, f"{config.model_id} answers with tool use enabled (stop reason {stop})")


async def _interpreter_check(config: ConverseConfig) -> DoctorCheck:
    from bot.agents.agentcore import AgentCoreExecutor

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
        problem = classify(exc)
        code = problem.code if problem else type(exc).__name__
        hint = (
            "allow bedrock-agentcore:StartCodeInterpreterSession, InvokeCodeInterpreter and "
            "StopCodeInterpreterSession, check AGENTCORE_CODE_INTERPRETER_ID and AWS_REGION, or set "
            "DATATHREAD_EXECUTOR=local."
        )
        return DoctorCheck(name, False, f"{config.interpreter_id}: could not start a session ({code})", hint)
    finally:
        await executor.aclose()
    return DoctorCheck(name, True, f"{config.interpreter_id}: a session started and stopped")


async def diagnose(env: Mapping[str, str]) -> list[DoctorCheck]:
    """Checks of the Converse setup, in the order a fix should follow."""
    try:
        config = ConverseConfig.from_env(env)
    except ConfigError as exc:
        return [DoctorCheck("Converse settings", False, str(exc), "fix the variable named above.")]
    checks = [
        DoctorCheck("Converse settings", True, f"model {config.model_id}, executor {config.executor}"),
        await asyncio.to_thread(_model_check, config),
    ]
    if config.executor == "agentcore":
        checks.append(await _interpreter_check(config))
    else:
        checks.append(DoctorCheck("Code executor", True, "local Jupyter kernel (DATATHREAD_EXECUTOR=local)"))
    return checks
