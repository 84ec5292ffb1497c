"""Bedrock errors, before or inside the stream, turned into a ``TurnFailed`` a user can act on.

The user gets what happened and what to do; the error code and AWS's message go to the log.
"""

from __future__ import annotations

import logging

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)
from botocore.exceptions import ReadTimeoutError as BotoReadTimeout
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from bot.events import TurnFailed

log = logging.getLogger(__name__)

_ADMIN = "ask an admin to run `datathread doctor`"

#: Error code (as in the service model) -> (message for the user, worth retrying).
MESSAGES: dict[str, tuple[str, bool]] = {
    "AccessDeniedException": (
        f"This bot is not allowed to use the Bedrock agent (access denied): {_ADMIN} and grant "
        "bedrock:InvokeAgent on the agent alias.", False),
    "ResourceNotFoundException": (
        "The Bedrock agent or its alias was not found: check BEDROCK_AGENT_ID, BEDROCK_AGENT_ALIAS_ID and "
        f"the region ({_ADMIN}).", False),
    "ValidationException": (
        "Bedrock rejected the request{detail}. If you attached files, try fewer or smaller ones; "
        "otherwise rephrase and try again.", False),
    "ThrottlingException": ("Bedrock is busy right now (too many requests). Wait a minute and try again.", True),
    "ServiceQuotaExceededException": (
        "The Bedrock agent has reached a usage quota. Wait a few minutes and try again; if it keeps "
        "happening, ask an admin to raise the quota.", True),
    "DependencyFailedException": (
        "A service the agent depends on (its model or a function it calls) failed. Try again; if it "
        f"keeps failing, {_ADMIN}.", True),
    "BadGatewayException": (
        "A service the agent depends on did not answer properly. Try again in a moment.", True),
    "ConflictException": (
        "The agent is still working on an earlier message of this conversation. Wait for it to finish, "
        "then try again.", True),
    "InternalServerException": ("Bedrock had an internal error. Try again in a moment.", True),
    "ModelNotReadyException": ("The agent's model is not ready yet. Try again in a minute.", True),
}

#: Codes AWS answers when the signature or the keys are wrong or expired (any service).
REJECTED_CREDENTIALS = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "ExpiredToken",
    "InvalidClientTokenId", "SignatureDoesNotMatch", "IncompleteSignature", "InvalidAccessKeyId",
})
MESSAGES.update(dict.fromkeys(
    REJECTED_CREDENTIALS, (f"AWS rejected this bot's credentials (invalid or expired): {_ADMIN}.", False)))

THROTTLING = frozenset({"ThrottlingException"})


def error_code(exc: BaseException) -> str | None:
    """The modelled error code, normalised (in-stream codes come as ``throttlingException``)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "")
        return code[:1].upper() + code[1:] if code else None
    return None


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING


def turn_failed(exc: BaseException, *, read_timeout: float) -> TurnFailed:
    """The ``TurnFailed`` for an exception raised by boto3 while calling or reading ``invoke_agent``."""
    code = error_code(exc)
    if code is not None:
        detail = str(exc.response.get("Error", {}).get("Message") or "") if isinstance(exc, ClientError) else ""
        log.warning("bedrock agent error %s: %s", code, detail[:500])
        message, retryable = MESSAGES.get(code, (
            f"Bedrock returned an error ({code}). Try again; if it keeps happening, {_ADMIN}.", True))
        short = detail.strip().rstrip(".")[:200]
        return TurnFailed(message.replace("{detail}", f" ({short})" if short else ""), retryable)
    log.warning("bedrock agent call failed: %s", type(exc).__name__, exc_info=exc)
    match exc:
        case NoCredentialsError():
            return TurnFailed(f"No AWS credentials were found for the Bedrock agent: {_ADMIN}.", False)
        case NoRegionError():
            return TurnFailed(f"No AWS region is configured (set AWS_REGION): {_ADMIN}.", False)
        # Reading the stream goes straight to urllib3, so its errors arrive unwrapped.
        case BotoReadTimeout() | ReadTimeoutError():
            return TurnFailed(
                f"The agent sent nothing for {read_timeout:.0f} seconds, so the turn was stopped. "
                "Try again, perhaps with a smaller request.", True)
        case EndpointConnectionError() | ConnectTimeoutError() | ConnectionClosedError():
            return TurnFailed("Could not reach Amazon Bedrock. Check the network and try again.", True)
        case Urllib3Error():
            return TurnFailed("The connection to Amazon Bedrock broke off. Try again.", True)
        case BotoCoreError():
            return TurnFailed(f"Talking to Amazon Bedrock failed ({type(exc).__name__}). Try again.", True)
    return TurnFailed(f"The Bedrock agent failed unexpectedly ({type(exc).__name__}). Try again.", True)
