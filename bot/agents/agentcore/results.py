"""What AgentCore Code Interpreter answers mean, for ``bot.agents.agentcore.executor``: errors in words a user can
act on (the shared rules are in ``bot.agents.aws``), code errors read from stderr, and small file helpers.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from bot.agents.aws import classify, error_code
from bot.events import CodeError, TurnFailed
from bot.workspace import UnsafePath, Workspace

log = logging.getLogger(__name__)

ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)):\s?(.*)$")

SERVICE = "the AgentCore Code Interpreter"
#: This service's own messages (the shared ones are in ``bot.agents.aws``).
MESSAGES: dict[str, tuple[str, bool]] = {
    "AccessDeniedException": (
        "The AgentCore Code Interpreter denied access. Allow bedrock-agentcore:StartCodeInterpreterSession "
        "and InvokeCodeInterpreter for these credentials, or set DATATHREAD_EXECUTOR=local.", False),
    "ServiceQuotaExceededException": (
        "The AgentCore Code Interpreter is busy (at its quota). Try again soon.", True),
    "ResourceNotFoundException": (
        "The Code Interpreter was not found. Check AGENTCORE_CODE_INTERPRETER_ID and AWS_REGION.", False),
}


def is_expired(exc: BaseException) -> bool:
    code = error_code(exc)
    if code == "ResourceNotFoundException":
        return True
    text = str(exc).lower()
    return code == "ValidationException" and "session" in text and any(
        word in text for word in ("expired", "terminated", "not found", "does not exist")
    )


def environment_failure(exc: BaseException) -> TurnFailed:
    problem = classify(exc, SERVICE, MESSAGES)
    if problem is not None:
        return problem.turn_failed()
    return TurnFailed(f"The AgentCore Code Interpreter could not run the code ({type(exc).__name__}). "
                      "Try again.", retryable=True)


def save_into(workspace: Workspace, name: str, data: bytes) -> bool:
    """Write a session file into the workspace (blocking); ``False`` if ``name`` would escape it."""
    try:
        path = workspace.ensure().resolve(name)
    except UnsafePath:
        log.warning("session file %r resolves outside the workspace; skipped", name)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def code_error(stderr: str, exit_code: int | None, text: str, language: str) -> CodeError:
    """``ename``/``evalue`` from the last ``SomeError: message`` line, the tail as traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        match = ERROR_LINE.match(line.strip())
        if match:
            return CodeError(match.group(1), match.group(2), "\n".join(lines[-30:]))
    evalue = lines[-1].strip() if lines else (text.strip() or "the code failed")
    ename = "ExitCode" if language == "shell" else "Error"
    if exit_code not in (None, 0):
        evalue = f"exit code {exit_code}: {evalue}" if lines or text.strip() else f"exit code {exit_code}"
    return CodeError(ename, evalue[:500], "\n".join(lines[-30:]))


def text_blocks(result: dict[str, Any]) -> str:
    return "".join(b.get("text") or "" for b in result.get("content", []) if b.get("type") == "text")


def sizes(value: object) -> dict[str, int]:
    """A stored ``{name: size}`` map, or an empty one when the stored value is not that."""
    return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}
