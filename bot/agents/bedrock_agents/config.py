"""Settings of the Bedrock Agents backend, read from the environment.

Region and credentials are not here: ``bot.agents.aws`` finds them (``AWS_REGION``, profiles, roles),
and boto3's own ``AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME`` override keeps working because we never pass
an endpoint.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import AWS_MAX_CONNECTIONS, ConfigError, env_flag, env_int, env_number

_ID = re.compile(r"^[0-9a-zA-Z]{1,10}$")


@dataclass(frozen=True)
class BedrockAgentConfig:
    """What the backend needs besides region and credentials.

    A throttled call that showed nothing yet is retried up to ``throttle_retries`` times, after
    ``backoff_seconds`` doubling each time (``bot.agents.aws.backoff_delay``).
    """

    agent_id: str
    alias_id: str
    memory: bool = False
    stream_final_response: bool = False
    read_timeout: float = 300.0
    connect_timeout: float = 10.0
    max_pool_connections: int = AWS_MAX_CONNECTIONS
    throttle_retries: int = 3
    backoff_seconds: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BedrockAgentConfig:
        """Read ``BEDROCK_AGENT_*`` variables; raises ``ConfigError`` naming the bad variable."""
        agent_id = env.get("BEDROCK_AGENT_ID", "").strip()
        alias_id = env.get("BEDROCK_AGENT_ALIAS_ID", "").strip()
        for name, value in (("BEDROCK_AGENT_ID", agent_id), ("BEDROCK_AGENT_ALIAS_ID", alias_id)):
            if not value:
                raise ConfigError(f"{name} is not set: copy it from the agent's page in the Bedrock console")
            if not _ID.match(value):
                raise ConfigError(f"{name} must be up to 10 letters and digits, got {value!r}")
        return cls(
            agent_id=agent_id,
            alias_id=alias_id,
            memory=env_flag(env, "BEDROCK_AGENT_MEMORY"),
            stream_final_response=env_flag(env, "BEDROCK_STREAM_FINAL_RESPONSE"),
            read_timeout=env_number(env, "BEDROCK_AGENT_READ_TIMEOUT_SECONDS", 300.0),
            connect_timeout=env_number(env, "BEDROCK_AGENT_CONNECT_TIMEOUT_SECONDS", 10.0),
            max_pool_connections=env_int(env, "BEDROCK_AGENT_MAX_CONNECTIONS", AWS_MAX_CONNECTIONS),
        )


def memory_id(owner: str) -> str:
    """A stable ``memoryId`` for a user (valid for ``^[0-9a-zA-Z._:-]{2,100}$``; the raw id never leaves)."""
    return "m-" + hashlib.sha256(owner.encode()).hexdigest()[:40]

