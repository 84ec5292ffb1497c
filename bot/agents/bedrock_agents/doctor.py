"""``datathread doctor`` checks for the Bedrock Agents backend.

Credentials and region come from boto3's default chain (the process environment, profiles, roles) with
the region rule of ``bot.agents.aws``;
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

from bot.agents.aws import ACCESS_DENIED, REJECTED_CREDENTIALS, aws_session, error_code
from bot.agents.bedrock_agents.config import BedrockAgentConfig
from bot.config import ConfigError
from bot.doctor import DoctorCheck

CODE_INTERPRETER = "AMAZON.CodeInterpreter"
_QUICK = botocore.config.Config(connect_timeout=5, read_timeout=20, retries={"total_max_attempts": 2})


#: botocore's name for where credentials came from -> plain words.
_CREDENTIAL_SOURCES = {
    "env": "the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables",
    "shared-credentials-file": "the AWS credentials file (~/.aws/credentials)",
    "config-file": "the AWS config file (~/.aws/config)",
    "assume-role": "a role assumed through the AWS profile",
    "assume-role-with-web-identity": "a web identity role (e.g. EKS service account)",
    "sso": "AWS SSO (IAM Identity Center) login",
    "container-role": "the container's IAM role",
    "iam-role": "this machine's IAM role",
    "process": "a credential_process command in the AWS profile",
}


def _failure(name: str, exc: Exception, permission: str, missing: str = "") -> DoctorCheck:
    """The failed check for ``exc``; ``missing`` says what was looked for, for "not found"."""
    if isinstance(exc, ClientError):
        code = error_code(exc) or "error"
        if code in ACCESS_DENIED:
            return DoctorCheck(name, False, f"access denied: these credentials may not call {permission}",
                               f"allow {permission} for them, or run the check with credentials that may read "
                               "the agent (chatting itself only needs bedrock:InvokeAgent).")
        if code in REJECTED_CREDENTIALS:
            return DoctorCheck(name, False, "AWS rejected the credentials (invalid or expired)",
                               "check the access key, or refresh the session (for example `aws sso login`).")
        if code == "ResourceNotFoundException":
            return DoctorCheck(name, False, f"{missing or name} was not found",
                               "check BEDROCK_AGENT_ID / BEDROCK_AGENT_ALIAS_ID and that AWS_REGION is the "
                               "agent's region.")
        return DoctorCheck(name, False, f"Bedrock answered {code}", "try again; if it persists, check the agent.")
    if isinstance(exc, ParamValidationError):
        return DoctorCheck(name, False, "the id is not valid for Bedrock",
                           "agent ids and alias ids are 10 letters and digits (or TSTALIASID): check "
                           "BEDROCK_AGENT_ID / BEDROCK_AGENT_ALIAS_ID.")
    return DoctorCheck(name, False, f"could not connect to Amazon Bedrock ({type(exc).__name__})",
                       "check the network, the region and any proxy settings, then run the check again.")


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
    source = _CREDENTIAL_SOURCES.get(credentials.method, credentials.method)
    checks.append(DoctorCheck("credentials", True, f"found, from {source}"))
    if not session.region_name:
        checks.append(DoctorCheck("region", False, "no region configured",
                                  "set AWS_REGION to the region of the agent, e.g. us-east-1."))
        return checks
    checks.append(DoctorCheck("region", True, session.region_name))
    client = session.client("bedrock-agent", config=_QUICK)
    try:
        agent = client.get_agent(agentId=config.agent_id)["agent"]
    except (ClientError, BotoCoreError) as exc:
        checks.append(_failure("agent", exc, "bedrock:GetAgent",
                               f"agent {config.agent_id} in region {session.region_name}"))
        return checks
    status = agent.get("agentStatus")
    if status == "PREPARED":
        checks.append(DoctorCheck("agent", True, f"{agent.get('agentName')} found and prepared"))
    else:
        checks.append(DoctorCheck("agent", False, f"{agent.get('agentName')} is not ready (status {status})",
                                  "prepare the agent in the Bedrock console (Prepare button), or wait if it is "
                                  "being prepared or updated."))
    try:
        alias = client.get_agent_alias(agentId=config.agent_id, agentAliasId=config.alias_id)["agentAlias"]
    except (ClientError, BotoCoreError) as exc:
        checks.append(_failure("alias", exc, "bedrock:GetAgentAlias",
                               f"alias {config.alias_id} of agent {config.agent_id}"))
        return checks
    routes = alias.get("routingConfiguration") or [{}]
    version = str(routes[0].get("agentVersion") or "DRAFT")
    alias_status = alias.get("agentAliasStatus")
    name = alias.get("agentAliasName")
    if alias_status == "PREPARED":
        checks.append(DoctorCheck("alias", True, f"{name} is ready and uses agent version {version}"))
    else:
        checks.append(DoctorCheck("alias", False, f"{name} is not ready (status {alias_status})",
                                  "wait for the alias to finish updating, or point it at a prepared version."))
    try:
        checks.append(_code_interpreter(client, config.agent_id, version))
    except (ClientError, BotoCoreError) as exc:
        checks.append(_failure("code interpreter", exc, "bedrock:ListAgentActionGroups and GetAgentActionGroup"))
    return checks


async def diagnose(env: Mapping[str, str]) -> list[DoctorCheck]:
    """Checks in order; stops after the first failure that makes the next checks meaningless."""
    return await asyncio.to_thread(_diagnose, env)
