"""What AgentCore Code Interpreter and Bedrock Runtime answers mean for the user: code errors from stderr,
expired sessions, session files kept inside the workspace, and service errors in words a user can act on."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from bot.agents.agentcore.results import code_error, environment_failure, is_expired, save_into, sizes, text_blocks
from bot.agents.converse.errors import model_problem
from bot.events import CodeError
from bot.workspace import Workspace


def client_error(code: str, message: str = "x", operation: str = "InvokeCodeInterpreter") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(("stderr", "exit_code", "text", "language", "expected"), [
    ("Traceback (most recent call last):\n  File \"x\", line 1\nKeyError: 'region'\n", 1, "", "python",
     CodeError("KeyError", "'region'", "Traceback (most recent call last):\n  File \"x\", line 1\nKeyError: 'region'")),
    ("", 3, "partial", "shell", CodeError("ExitCode", "exit code 3: partial", "")),
    ("", 3, "", "shell", CodeError("ExitCode", "exit code 3", "")),
    ("ls: cannot access 'x'\n", 2, "", "shell", CodeError("ExitCode", "exit code 2: ls: cannot access 'x'",
                                                           "ls: cannot access 'x'")),
    ("", None, "", "python", CodeError("Error", "the code failed", "")),
])
def test_code_errors_are_read_from_the_last_error_line(stderr: str, exit_code: int | None, text: str,
                                                        language: str, expected: CodeError) -> None:
    assert code_error(stderr, exit_code, text, language) == expected


def test_long_stderr_keeps_its_last_thirty_lines_and_a_short_value() -> None:
    error = code_error("\n".join(f"noise {i}" for i in range(100)) + "\n" + "y" * 900, 1, "", "python")
    assert error.traceback.splitlines()[0] == "noise 71" and len(error.evalue) <= 500


@pytest.mark.parametrize(("error", "expired"), [
    (client_error("ResourceNotFoundException"), True),
    (client_error("ValidationException", "Session abc has expired"), True),
    (client_error("ValidationException", "The session was terminated"), True),
    (client_error("ValidationException", "Invalid code"), False),
    (client_error("ThrottlingException", "session expired"), False),
    (RuntimeError("session expired"), False),
])
def test_a_session_is_expired_only_when_the_service_says_so(error: BaseException, expired: bool) -> None:
    assert is_expired(error) is expired


def test_environment_failures_are_short_and_say_what_to_do() -> None:
    denied = environment_failure(client_error("AccessDeniedException"))
    assert "DATATHREAD_EXECUTOR=local" in denied.message and not denied.retryable
    busy = environment_failure(client_error("ServiceQuotaExceededException"))
    assert busy.retryable and "busy" in busy.message
    bug = environment_failure(KeyError("x"))
    assert bug.retryable and "KeyError" in bug.message and "Traceback" not in bug.message


def test_session_files_are_kept_inside_the_workspace(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    assert save_into(ws, "out/summary.csv", b"a\n1\n")
    assert (ws.root / "out" / "summary.csv").read_bytes() == b"a\n1\n"
    assert not save_into(ws, "../../escape.txt", b"x")
    assert not (tmp_path / "escape.txt").exists()


def test_tool_results_and_stored_sizes_are_read_defensively() -> None:
    assert text_blocks({"content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text"}]}) == "a"
    assert text_blocks({}) == ""
    assert sizes({"a.csv": 3, "b": "4"}) == {"a.csv": 3, "b": 4}
    assert sizes(["not", "a", "map"]) == {} and sizes(None) == {}


@pytest.mark.parametrize(("code", "words", "retryable"), [
    ("AccessDeniedException", "model access", False),
    ("ModelNotReadyException", "not ready", True),
    ("ValidationException", "BEDROCK_MODEL_ID", False),
    ("ResourceNotFoundException", "BEDROCK_MODEL_ID", False),
    ("ModelStreamErrorException", "broke off", True),
])
def test_model_errors_say_what_to_do(code: str, words: str, retryable: bool) -> None:
    problem = model_problem(client_error(code, operation="ConverseStream"))
    assert problem is not None
    failed = problem.turn_failed()
    assert words in failed.message and failed.retryable is retryable


def test_an_error_that_is_not_from_aws_is_a_bug_not_a_problem() -> None:
    assert model_problem(ZeroDivisionError()) is None
