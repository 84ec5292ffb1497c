"""Bridging boto3's blocking event streams into asyncio, and naming Bedrock service errors.

boto3 reads an event stream by blocking on a socket. Each stream is read by its own daemon thread
(not the shared default executor, which has few workers and would starve other turns) and every
event is handed to the event loop as it arrives. Closing the async iterator (turn cancelled)
closes the HTTP stream, which ends the reader thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = 0, 1, 2


async def aiter_in_thread(open_stream: Callable[[], Iterable[T]]) -> AsyncIterator[T]:
    """Yield the items of ``open_stream()`` (called and iterated in a new thread) as they arrive.

    Exceptions from the call or the iteration are raised here. If the consumer stops early, the
    iterable's ``close()`` (boto3 ``EventStream.close``) is called to release the connection.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    stop = threading.Event()
    opened: list[Iterable[T]] = []

    def put(kind: int, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed under us: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def work() -> None:
        try:
            stream = open_stream()
            opened.append(stream)
            for item in stream:
                if stop.is_set():
                    return
                put(_ITEM, item)
            put(_END, None)
        except BaseException as exc:
            put(_ERROR, exc)

    threading.Thread(target=work, name="aws-event-stream", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        stop.set()
        for stream in opened:
            close = getattr(stream, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()


@dataclass(frozen=True)
class ServiceProblem:
    """A Bedrock error translated for the user. ``retry`` marks throttling-like errors worth a
    bounded retry; ``retryable`` is what ``TurnFailed`` tells the user."""

    code: str
    message: str
    retry: bool = False
    retryable: bool = False


_MESSAGES: dict[str, tuple[str, bool, bool]] = {
    "throttlingexception": ("Bedrock is throttling requests right now. Try again in a minute.", True, True),
    "serviceunavailableexception": ("Bedrock is unavailable right now. Try again in a minute.", True, True),
    "modelnotreadyexception": (
        "The model is not ready yet (it may still be loading). Try again in a minute.", False, True),
    "accessdeniedexception": (
        "Access to the Bedrock model was denied. Check that model access is enabled in the Bedrock "
        "console and that the IAM policy allows bedrock:InvokeModelWithResponseStream.", False, False),
    "validationexception": (
        "Bedrock rejected the request (validation error). Check BEDROCK_MODEL_ID names a model that "
        "supports tool use; an administrator can find details in the log.", False, False),
    "resourcenotfoundexception": (
        "The Bedrock model was not found. Check BEDROCK_MODEL_ID and the AWS region.", False, False),
    "modeltimeoutexception": ("The model took too long to answer. Try again.", False, True),
    "modelerrorexception": ("The model failed to answer. Try again.", False, True),
    "modelstreamerrorexception": ("The model's answer broke off. Try again.", False, True),
    "internalserverexception": ("Bedrock had an internal error. Try again.", False, True),
    "servicequotaexceededexception": ("A Bedrock service quota was exceeded. Try again later.", False, True),
}


def classify(exc: BaseException) -> ServiceProblem | None:
    """The user-facing problem for a botocore error, or ``None`` for anything else (a bug)."""
    from botocore.exceptions import (  # imported here: this module is also used without boto3 calls
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")) or "unknown"
        text, retry, retryable = _MESSAGES.get(
            code.lower(), (f"Bedrock returned an error ({code}). Try again.", False, True)
        )
        return ServiceProblem(code, text, retry, retryable)
    if isinstance(exc, NoCredentialsError):
        return ServiceProblem("NoCredentials", "No AWS credentials were found for Bedrock. Set AWS_PROFILE, or "
                              "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, where datathread runs.", False, False)
    if isinstance(exc, NoRegionError):
        return ServiceProblem("NoRegion", "No AWS region is configured (set AWS_REGION).", False, False)
    if isinstance(exc, ReadTimeoutError):
        return ServiceProblem("ReadTimeout", "Bedrock stopped answering (read timeout). Try again.", False, True)
    if isinstance(exc, (EndpointConnectionError, ConnectionError)):
        return ServiceProblem("Connection", "Could not reach Bedrock. Check the network.", False, True)
    return None
