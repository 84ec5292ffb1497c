"""Bedrock Agents errors, before or inside the stream, turned into a ``TurnFailed`` a user can act on.

The shared rules (credentials, access, throttling, timeouts, reachability) are in ``bot.agents.aws``;
here are the messages only ``invoke_agent`` needs. The error code and AWS's message go to the log.
"""

from __future__ import annotations

import logging

from bot.agents.aws import ADMIN, classify
from bot.events import TurnFailed

log = logging.getLogger(__name__)

SERVICE = "Amazon Bedrock"

#: Error code (as in the service model) -> (message for the user, worth retrying).
MESSAGES: dict[str, tuple[str, bool]] = {
    "AccessDeniedException": (
        f"This bot is not allowed to use the Bedrock agent (access denied): {ADMIN} and grant "
        "bedrock:InvokeAgent on the agent alias.", False),
    "ResourceNotFoundException": (
        "The Bedrock agent or its alias was not found: check BEDROCK_AGENT_ID, BEDROCK_AGENT_ALIAS_ID and "
        f"the region ({ADMIN}).", False),
    "ValidationException": (
        "Bedrock rejected the request{detail}. If you attached files, try fewer or smaller ones; "
        "otherwise rephrase and try again.", False),
    "ServiceQuotaExceededException": (
        "The Bedrock agent has reached a usage quota. Wait a few minutes and try again; if it keeps "
        "happening, ask an admin to raise the quota.", True),
    "DependencyFailedException": (
        "A service the agent depends on (its model or a function it calls) failed. Try again; if it "
        f"keeps failing, {ADMIN}.", True),
    "BadGatewayException": (
        "A service the agent depends on did not answer properly. Try again in a moment.", True),
    "ConflictException": (
        "The agent is still working on an earlier message of this conversation. Wait for it to finish, "
        "then try again.", True),
    "ModelNotReadyException": ("The agent's model is not ready yet. Try again in a minute.", True),
}


def turn_failed(exc: BaseException, *, read_timeout: float) -> TurnFailed:
    """The ``TurnFailed`` for an exception raised while calling or reading ``invoke_agent``."""
    problem = classify(exc, SERVICE, MESSAGES, read_timeout=read_timeout)
    if problem is None:
        log.warning("bedrock agent call failed: %s", type(exc).__name__, exc_info=exc)
        return TurnFailed(f"The Bedrock agent failed unexpectedly ({type(exc).__name__}). Try again.", True)
    log.warning("bedrock agent error %s: %s", problem.code, problem.detail[:500] or type(exc).__name__)
    return problem.turn_failed()
