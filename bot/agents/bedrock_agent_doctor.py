"""``datathread doctor`` checks for the Bedrock Agents backend.

Credentials and region come from boto3's default chain (the process environment, profiles, roles);
``env`` supplies our own ``BEDROCK_AGENT_*`` variables. The agent checks use the ``bedrock-agent``
control plane (``bedrock:GetAgent``, ``GetAgentAlias``, ``ListAgentActionGroups``,
``GetAgentActionGroup``), which honours ``AWS_ENDPOINT_URL_BEDROCK_AGENT``. Never prints secrets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import botocore.config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from bot.agents.bedrock_agent_config import BedrockAgentConfig, aws_session
from bot.config import ConfigError
from bot.doctor import DoctorCheck

CODE_INTERPRETER = "AMAZON.CodeInterpreter"
_QUICK = botocore.config.Config(connect_timeout=5, read_timeout=20, retries={"total_max_attempts": 2})


def _failure(name: str, exc: Exception, permission: str) -> DoctorCheck:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "error")
        if code == "AccessDeniedException":
            return DoctorCheck(name, False, "access denied",
                               f"allow {permission} for these credentials (the check needs it).")
        if code == "ResourceNotFoundException":
            return DoctorCheck(name, False, "not found",
                               "check BEDROCK_AGENT_ID / BEDROCK_AGENT_ALIAS_ID and that AWS_REGION is the "
                               "agent's region.")
        return DoctorCheck(name, False, f"Bedrock answered {code}", "try again; if it persists, check the agent.")
    if isinstance(exc, ParamValidationError):
        return DoctorCheck(name, False, "the id is not valid for Bedrock",
                           "agent ids and alias ids are 10 letters and digits (or TSTALIASID): check "
                           "BEDROCK_AGENT_ID / BEDROCK_AGENT_ALIAS_ID.")
    return DoctorCheck(name, False, f"could not reach Bedrock ({type(exc).__name__})",
                       "check the network, the region and any proxy settings.")


def _code_interpreter(client: Any, agent_id: str, version: str) -> DoctorCheck:
    name = "code interpreter"
    groups: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"agentId": agent_id, "agentVersion": version, "maxResults": 100}
        if token:
            kwargs["nextToken"] = token
        page = client.list_agent_action_groups(**kwargs)
        groups.extend(page.get("actionGroupSummaries", []))
        token = page.get("nextToken")
        if not token:
            break
    for summary in groups:
        # The summary does not carry the signature; the full action group does.
        group = client.get_agent_action_group(
            agentId=agent_id, agentVersion=version, actionGroupId=summary["actionGroupId"]
        )["agentActionGroup"]
        if group.get("parentActionSignature") == CODE_INTERPRETER:
            if group.get("actionGroupState") == "ENABLED":
                return DoctorCheck(name, True, f"enabled (action group {group.get('actionGroupName')})")
            return DoctorCheck(name, False, f"action group {group.get('actionGroupName')} is disabled",
                               "enable it in the agent's settings, prepare the agent and update the alias.")
    return DoctorCheck(name, False, f"not enabled on agent version {version}",
                       "turn on 'Code Interpreter' under Additional settings of the agent, prepare it, "
                       "and point the alias at the new version.")


def _diagnose(env: Mapping[str, str]) -> list[DoctorCheck]:
    checks: list[DoctorCheck] = []
    try:
        config = BedrockAgentConfig.from_env(env)
    except ConfigError as exc:
        return [DoctorCheck("configuration", False, str(exc), "set the variable and run the check again.")]
    checks.append(DoctorCheck("configuration", True, f"agent {config.agent_id}, alias {config.alias_id}"))
    session = aws_session()
    credentials = session.get_credentials()
    if credentials is None:
        checks.append(DoctorCheck("credentials", False, "no AWS credentials found",
                                  "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run "
                                  "on a host with an IAM role."))
        return checks
    checks.append(DoctorCheck("credentials", True, f"found (from {credentials.method})"))
    if not session.region_name:
        checks.append(DoctorCheck("region", False, "no region configured",
                                  "set AWS_REGION to the region of the agent, e.g. us-east-1."))
        return checks
    checks.append(DoctorCheck("region", True, session.region_name))
    client = session.client("bedrock-agent", config=_QUICK)
    try:
        agent = client.get_agent(agentId=config.agent_id)["agent"]
    except (ClientError, BotoCoreError) as exc:
        checks.append(_failure("agent", exc, "bedrock:GetAgent"))
        return checks
    status = agent.get("agentStatus")
    checks.append(DoctorCheck("agent", status == "PREPARED", f"{agent.get('agentName')} is {status}",
                              "prepare the agent in the Bedrock console (Prepare button)."))
    try:
        alias = client.get_agent_alias(agentId=config.agent_id, agentAliasId=config.alias_id)["agentAlias"]
    except (ClientError, BotoCoreError) as exc:
        checks.append(_failure("alias", exc, "bedrock:GetAgentAlias"))
        return checks
    routes = alias.get("routingConfiguration") or [{}]
    version = str(routes[0].get("agentVersion") or "DRAFT")
    alias_status = alias.get("agentAliasStatus")
    checks.append(DoctorCheck("alias", alias_status == "PREPARED",
                              f"{alias.get('agentAliasName')} is {alias_status}, version {version}",
                              "wait for the alias to finish updating, or recreate it."))
    try:
        checks.append(_code_interpreter(client, config.agent_id, version))
    except (ClientError, BotoCoreError) as exc:
        checks.append(_failure("code interpreter", exc, "bedrock:ListAgentActionGroups and GetAgentActionGroup"))
    return checks


async def diagnose(env: Mapping[str, str]) -> list[DoctorCheck]:
    """Checks in order; stops after the first failure that makes the next checks meaningless."""
    return await asyncio.to_thread(_diagnose, env)
