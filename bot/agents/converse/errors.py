"""Bedrock Runtime (``converse_stream``) errors in words a user can act on.

The shared rules (rejected or missing credentials, access, throttling, timeouts, reachability) are in
``bot.agents.aws``; here are the messages only the model call needs.
"""

from __future__ import annotations

from bot.agents.aws import AwsProblem, classify

SERVICE = "Amazon Bedrock"

#: Error code -> (message for the user, worth trying again).
MESSAGES: dict[str, tuple[str, bool]] = {
    "AccessDeniedException": (
        "Access to the Bedrock model was denied. Check that model access is enabled in the Bedrock "
        "console and that the IAM policy allows bedrock:InvokeModelWithResponseStream.", False),
    "ModelNotReadyException": ("The model is not ready yet (it may still be loading). Try again in a minute.", True),
    "ValidationException": (
        "Bedrock rejected the request (validation error). Check BEDROCK_MODEL_ID names a model that "
        "supports tool use; an administrator can find details in the log.", False),
    "ResourceNotFoundException": ("The Bedrock model was not found. Check BEDROCK_MODEL_ID and the AWS region.",
                                  False),
    "ModelTimeoutException": ("The model took too long to answer. Try again.", True),
    "ModelErrorException": ("The model failed to answer. Try again.", True),
    "ModelStreamErrorException": ("The model's answer broke off. Try again.", True),
    "ServiceQuotaExceededException": ("A Bedrock service quota was exceeded. Try again later.", True),
}


def model_problem(exc: BaseException, *, read_timeout: float | None = None) -> AwsProblem | None:
    """The user-facing problem of a failed model call, or ``None`` when ``exc`` is no AWS error (a bug)."""
    return classify(exc, SERVICE, MESSAGES, read_timeout=read_timeout)
