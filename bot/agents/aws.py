"""What the AWS backends (Bedrock Agents, Converse, AgentCore) share: clients, backoff, one bridge from
boto3's blocking event streams to asyncio, and the translation of AWS failures into words a user can act on.

Region rule (one for all backends): an explicit region, else ``AWS_REGION``, else botocore's own chain
(``AWS_DEFAULT_REGION``, then the profile's config). botocore alone never reads ``AWS_REGION``, which
every other AWS SDK honours. No endpoint is ever passed, so ``AWS_ENDPOINT_URL_<SERVICE>`` keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import boto3
import botocore.config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import ReadTimeoutError as BotoReadTimeout
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

from bot.config import AWS_MAX_CONNECTIONS
from bot.events import TurnFailed

log = logging.getLogger(__name__)

T = TypeVar("T")

ADMIN = "ask an admin to run `datathread doctor`"
MAX_BACKOFF_SECONDS = 8.0

# -- clients and backoff ---------------------------------------------------------------------------


def aws_region(region: str | None = None) -> str | None:
    """The region an explicit ``region`` or ``AWS_REGION`` names, else ``None`` (botocore's chain decides)."""
    return region or os.environ.get("AWS_REGION") or None


def aws_session(region: str | None = None) -> boto3.session.Session:
    """A boto3 session on the default credential chain and the region rule of the module doc."""
    return boto3.session.Session(region_name=aws_region(region))


def aws_client(
    service: str,
    *,
    region: str | None = None,
    read_timeout: float,
    connect_timeout: float,
    attempts: int = 1,
    max_pool_connections: int = AWS_MAX_CONNECTIONS,
) -> Any:
    """A boto3 client for ``service``. Blocking (reads config files): call it off the event loop.

    ``attempts`` counts botocore's own tries; 1 (no SDK retry) for calls that run the user's code or
    stream an answer, where a blind retry could run the code twice or repeat shown text.
    """
    config = botocore.config.Config(
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        max_pool_connections=max_pool_connections,
        retries={"total_max_attempts": attempts, "mode": "standard"},
    )
    return aws_session(region).client(service, config=config)


def backoff_delay(attempt: int, base: float, cap: float = MAX_BACKOFF_SECONDS) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``base * 2**attempt`` up to ``cap``, plus up
    to 25% jitter so turns throttled together do not retry together."""
    return min(base * 2**attempt, cap) * (1 + random.random() / 4)


# -- event streams -----------------------------------------------------------------------------------


class StreamFailed(Exception):
    """What the reader thread raised while opening or reading a stream; the original is ``error``."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


def _abort(stream: Any) -> None:
    """Wake a thread blocked reading ``stream`` (a botocore ``EventStream``) and make the connection close.

    ``EventStream.close`` from another thread does not wake a blocked ``recv``; shutting the socket down
    for reading does (urllib3's ``HTTPResponse.shutdown``), then the reader closes the response.
    """
    raw = getattr(stream, "_raw_stream", None)
    try:
        raw.shutdown()  # type: ignore[union-attr]
    except Exception:
        close = getattr(stream, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


class ThreadedStream(Generic[T]):
    """A blocking boto3 event stream, opened and read in its own daemon thread; items come out in order.

    ``open_stream`` runs in the thread and returns the iterable, e.g.
    ``lambda: client.converse_stream(**request)["stream"]``. ``async for`` yields the items as they
    arrive and raises ``StreamFailed`` when the call or the read fails. ``close()`` — also on leaving
    ``with``, which a cancelled consumer does — stops reading at once: the socket is shut down for
    reading, so a blocked read returns and the thread closes the connection instead of holding both
    until the read timeout. Before the response headers arrived there is no socket to reach yet; the
    thread then stops as soon as they arrive.

    A thread of its own rather than the default executor: a read blocked for minutes must neither
    take one of its few workers from other turns nor hold up interpreter or event-loop shutdown.
    """

    def __init__(self, open_stream: Callable[[], Iterable[T]], *, name: str = "aws-event-stream") -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._stream: Iterable[T] | None = None
        threading.Thread(target=self._pump, args=(open_stream,), name=name, daemon=True).start()

    def _post(self, kind: str, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))

    def _pump(self, open_stream: Callable[[], Iterable[T]]) -> None:
        stream = None
        try:
            stream = open_stream()
            with self._lock:
                self._stream = stream
            if self._closed.is_set():
                return
            for item in stream:
                if self._closed.is_set():
                    return
                self._post("item", item)
            self._post("end", None)
        except BaseException as exc:
            if not self._closed.is_set():
                self._post("error", exc)
            else:
                log.debug("stream read ended after close: %s", type(exc).__name__)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def __aiter__(self) -> ThreadedStream[T]:
        return self

    async def __anext__(self) -> T:
        kind, value = await self._queue.get()
        if kind == "item":
            return value
        if kind == "end":
            raise StopAsyncIteration
        raise StreamFailed(value)

    def close(self) -> None:
        """Stop reading and drop the connection (idempotent; call it from the event loop's thread)."""
        self._closed.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            _abort(stream)

    def __enter__(self) -> ThreadedStream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- errors ------------------------------------------------------------------------------------------

#: Codes AWS answers when the signature or the keys are wrong or expired (any service).
REJECTED_CREDENTIALS = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "ExpiredToken",
    "InvalidClientTokenId", "SignatureDoesNotMatch", "IncompleteSignature", "InvalidAccessKeyId",
})
ACCESS_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})
#: Answers meaning "not now": worth a short automatic retry while nothing was shown yet.
THROTTLING = frozenset({"ThrottlingException", "TooManyRequestsException", "ServiceUnavailableException"})

Category = Literal["credentials", "access", "throttled", "region", "timeout", "unreachable", "service"]


@dataclass(frozen=True)
class AwsProblem:
    """An AWS failure translated for the user.

    ``message`` says what happened and what to do; ``retry`` marks throttling worth a bounded automatic
    retry (only while nothing was shown); ``retryable`` is what ``TurnFailed`` tells the user;
    ``detail`` is AWS's own message, for the log (never shown whole).
    """

    code: str
    category: Category
    message: str
    retryable: bool
    retry: bool = False
    detail: str = ""

    def turn_failed(self) -> TurnFailed:
        return TurnFailed(self.message, self.retryable)


def error_code(exc: BaseException) -> str | None:
    """The modelled error code of a service error, normalised (in-stream codes come as ``throttlingException``)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "")
        return code[:1].upper() + code[1:] if code else None
    return None


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def classify(
    exc: BaseException,
    service: str,
    messages: Mapping[str, tuple[str, bool]] | None = None,
    *,
    read_timeout: float | None = None,
) -> AwsProblem | None:
    """The user-facing problem for a boto3/botocore/urllib3 failure, or ``None`` for anything else (a bug).

    ``service`` names what was being called, as a user would ("Amazon Bedrock", "the AgentCore Code
    Interpreter"). ``messages`` maps error codes to this service's own ``(message, retryable)``; a
    ``{detail}`` in one becomes `` (AWS's message)``. Rejected and missing credentials, no region,
    throttling, timeouts and an unreachable endpoint read the same for every service; an access denial
    does too unless ``messages`` says which permission to grant.
    """
    code = error_code(exc)
    if code is not None:
        detail = str(exc.response.get("Error", {}).get("Message") or "") if isinstance(exc, ClientError) else ""
        if code in REJECTED_CREDENTIALS:
            return AwsProblem(code, "credentials", f"AWS rejected this bot's credentials (invalid or expired): "
                              f"{ADMIN}.", False, detail=detail)
        category: Category = ("access" if code in ACCESS_DENIED else
                              "throttled" if code in THROTTLING else "service")
        own = (messages or {}).get(code)
        if own is not None:
            short = detail.strip().rstrip(".")[:200]
            text = own[0].replace("{detail}", f" ({short})" if short else "")
            return AwsProblem(code, category, text, own[1], category == "throttled", detail)
        if category == "access":
            text, retryable = f"This bot is not allowed to use {service} (access denied): {ADMIN}.", False
        elif code == "ServiceUnavailableException":
            text, retryable = f"{_sentence(service)} is unavailable right now. Try again in a minute.", True
        elif category == "throttled":
            text, retryable = (f"{_sentence(service)} is busy right now (too many requests). Wait a minute "
                               "and try again.", True)
        elif code == "InternalServerException":
            text, retryable = f"{_sentence(service)} had an internal error. Try again in a moment.", True
        else:
            text, retryable = (f"{_sentence(service)} returned an error ({code}). Try again; if it keeps "
                               f"happening, {ADMIN}.", True)
        return AwsProblem(code, category, text, retryable, category == "throttled", detail)
    match exc:
        case NoCredentialsError():
            return AwsProblem("NoCredentials", "credentials", f"No AWS credentials were found for {service}: "
                              f"{ADMIN}.", False)
        case NoRegionError():
            return AwsProblem("NoRegion", "region", f"No AWS region is configured (set AWS_REGION): {ADMIN}.",
                              False)
        # Reading an event stream goes straight to urllib3, so its errors arrive unwrapped.
        case BotoReadTimeout() | Urllib3ReadTimeout():
            waited = f"sent nothing for {read_timeout:.0f} seconds" if read_timeout else "stopped answering"
            return AwsProblem("ReadTimeout", "timeout", f"{_sentence(service)} {waited}, so the request was stopped. "
                              "Try again, perhaps with a smaller request.", True)
        case EndpointConnectionError() | ConnectTimeoutError() | ConnectionClosedError() | BotoConnectionError():
            return AwsProblem("Connection", "unreachable", f"Could not reach {service}. Check the network and "
                              "try again.", True)
        case Urllib3Error():
            return AwsProblem("Connection", "unreachable", f"The connection to {service} broke off. Try again.",
                              True)
        case BotoCoreError():
            return AwsProblem(type(exc).__name__, "service", f"Talking to {service} failed "
                              f"({type(exc).__name__}). Try again.", True)
    return None
