"""Settings of the Converse agent loop and its AgentCore executor, read from the environment.

Only this backend reads these variables; ``bot.config.Settings`` keeps the core knobs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.config import ConfigError, env_int

ExecutorKind = Literal["agentcore", "local", "gateway"]

#: The system Code Interpreter every AWS account has.
SYSTEM_INTERPRETER = "aws.codeinterpreter.v1"

#: Variables that mean "this process can find AWS credentials without asking anyone".
_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def aws_credentials_present(env: Mapping[str, str]) -> bool:
    """A cheap guess that AWS credentials are configured (variables or a shared credentials file).

    It never calls the instance metadata service, which can stall for seconds off AWS.
    """
    if any(env.get(name) for name in _CREDENTIAL_VARIABLES):
        return True
    home = env.get("HOME") or os.path.expanduser("~")
    shared = env.get("AWS_SHARED_CREDENTIALS_FILE") or str(Path(home) / ".aws" / "credentials")
    return Path(shared).is_file()


@dataclass(frozen=True)
class ConverseConfig:
    """How the Converse loop talks to Bedrock and where its code runs.

    ``history_tokens`` is the budget for the stored conversation sent with each request (estimated
    at ~4 characters a token). ``rationale_holdback_chars`` is how much model text is held back
    before it is known to be the final answer (see ``bot.agents.converse.agent``). ``region`` overrides the
    region rule of ``bot.agents.aws`` (``None``: ``AWS_REGION``, then botocore's chain).
    """

    model_id: str
    executor: ExecutorKind = "local"
    interpreter_id: str = SYSTEM_INTERPRETER
    region: str | None = None
    session_timeout: int = 3600
    max_tool_rounds: int = 8
    max_tokens: int = 4096
    history_tokens: int = 60_000
    read_timeout: float = 300.0
    connect_timeout: float = 10.0
    throttle_retries: int = 3
    backoff_seconds: float = 1.0
    rationale_holdback_chars: int = 240
    tool_result_chars: int = 8000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConverseConfig:
        """Read ``BEDROCK_MODEL_ID``, ``DATATHREAD_EXECUTOR``, ``AGENTCORE_CODE_INTERPRETER_ID``,
        ``AGENTCORE_SESSION_TIMEOUT_SECONDS``, ``DATATHREAD_MAX_TOOL_ROUNDS``, ``BEDROCK_MAX_TOKENS``,
        ``DATATHREAD_HISTORY_TOKENS`` and ``BEDROCK_READ_TIMEOUT_SECONDS``; raise ``ConfigError``.

        The executor defaults to ``agentcore`` when AWS credentials are present, else ``local``.
        """
        env = os.environ if env is None else env
        model_id = env.get("BEDROCK_MODEL_ID", "").strip()
        if not model_id:
            raise ConfigError("BEDROCK_MODEL_ID must name a Bedrock model with tool use (Converse API)")
        executor = env.get("DATATHREAD_EXECUTOR", "").strip().lower()
        if not executor:
            executor = "agentcore" if aws_credentials_present(env) else "local"
        if executor not in ("agentcore", "local", "gateway"):
            raise ConfigError(f"DATATHREAD_EXECUTOR must be agentcore, local or gateway, got {executor!r}")
        read_timeout = env_int(env, "BEDROCK_READ_TIMEOUT_SECONDS", 300)
        return cls(
            model_id=model_id,
            executor="agentcore" if executor == "agentcore" else "gateway" if executor == "gateway" else "local",
            interpreter_id=env.get("AGENTCORE_CODE_INTERPRETER_ID", "").strip() or SYSTEM_INTERPRETER,
            session_timeout=env_int(env, "AGENTCORE_SESSION_TIMEOUT_SECONDS", 3600, 60, 28_800),
            max_tool_rounds=env_int(env, "DATATHREAD_MAX_TOOL_ROUNDS", 8, 1, 100),
            max_tokens=env_int(env, "BEDROCK_MAX_TOKENS", 4096, 64),
            history_tokens=env_int(env, "DATATHREAD_HISTORY_TOKENS", 60_000, 1000),
            read_timeout=float(read_timeout),
        )
