"""Sending through the Bot Connector with Teams' rate limits and retries.

Every call goes through ``CloudAdapter.continue_conversation`` with the stored conversation
reference, so it works the same during and long after the inbound HTTP request, and in the local
unauthenticated mode (empty app id: botbuilder then uses empty credentials and sends no token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ConversationReference
from botframework.connector.models import ErrorResponseException
from msrest.exceptions import ClientRequestError

from adapters.teams.inbound import base_conversation_id
from bot.surface import SurfaceError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Statuses Teams documents as transient. 429 and 412 mean the request was not applied, so a
#: retry cannot duplicate a message; 502 / 504 on a POST are ambiguous (see ``Sender``).
RETRYABLE = frozenset({429, 412, 502, 504})
#: Teams' per-bot, per-conversation limits: (window seconds, messages).
TEAMS_WINDOWS = ((1.0, 7), (30.0, 60))


class TeamsRefused(SurfaceError):
    """Teams answered an error that retrying does not fix; ``status`` and Teams' ``code``
    (e.g. ``ContentStreamNotAllowed``) let callers choose a fallback."""

    def __init__(self, status: int | None, code: str, detail: str) -> None:
        super().__init__(f"Teams refused the message (HTTP {status}).")
        self.status = status
        self.code = code
        self.detail = detail


def _error_code(exc: ErrorResponseException) -> tuple[str, str]:
    """Teams' ``error.code`` and ``error.message`` from an error response, when it sent them."""
    error = getattr(getattr(exc, "error", None), "error", None)
    return str(getattr(error, "code", "") or ""), str(getattr(error, "message", "") or "")


class RateLimiter:
    """A sliding-window limiter per key (conversation) that also sends one call at a time per key.

    ``slot`` waits until one more call fits every window, holds the key while the call runs and
    records the time the call *finished*: Teams received it no later than that, so spacing calls
    from finish times keeps Teams' own count (taken on arrival) under its limits however long the
    network takes. Holding the key keeps a conversation's messages in order, too.
    """

    def __init__(self, windows: tuple[tuple[float, int], ...] = TEAMS_WINDOWS) -> None:
        self._windows = windows
        self._sent: dict[str, deque[float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._horizon = max(w for w, _ in windows)

    @contextlib.asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            sent = self._sent.setdefault(key, deque())
            while True:
                now = time.monotonic()
                while sent and sent[0] <= now - self._horizon:
                    sent.popleft()
                wait = 0.0
                for window, limit in self._windows:
                    recent = [t for t in sent if t > now - window]
                    if len(recent) >= limit:
                        wait = max(wait, recent[-limit] + window - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                sent.append(time.monotonic())


class Sender:
    """Runs connector operations for one bot with rate limiting and retries.

    Retries 429 / 412 / 502 / 504 with exponential backoff and full jitter (``Retry-After`` wins
    when Teams sends one). Each operation is one HTTP call, retried alone, so a retry never repeats
    earlier messages of a turn. A 502 / 504 on a POST may in rare cases have been applied by Teams
    before the gateway failed; there is no idempotency key in the Bot Connector API to prevent that.
    """

    def __init__(
        self,
        adapter: CloudAdapter,
        app_id: str,
        limiter: RateLimiter | None = None,
        *,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 20.0,
    ) -> None:
        self.adapter = adapter
        self.app_id = app_id
        self.limiter = limiter or RateLimiter()
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    async def run(self, reference: ConversationReference, op: Callable[[TurnContext], Awaitable[T]]) -> T:
        key = base_conversation_id(reference.conversation.id)
        for attempt in range(1, self.attempts + 1):
            results: list[T] = []

            async def callback(context: TurnContext, results: list[T] = results) -> None:
                # Replies answer the user's message (not botbuilder's random continuation id).
                context.activity.id = reference.activity_id
                results.append(await op(context))

            try:
                async with self.limiter.slot(key):
                    await self.adapter.continue_conversation(reference, callback, self.app_id)
                return results[0]
            except ErrorResponseException as exc:
                status = getattr(exc.response, "status_code", None)
                if status not in RETRYABLE or attempt == self.attempts:
                    code, detail = _error_code(exc)
                    log.warning("Teams call failed with HTTP %s %s: %s", status, code, detail or exc)
                    raise TeamsRefused(status, code, detail) from exc
                delay = self._delay(attempt, exc)
                log.info("Teams answered HTTP %s; retrying in %.2f s", status, delay)
                await asyncio.sleep(delay)
            except (OSError, ClientRequestError) as exc:
                # Connection failures (msrest wraps them): the request never reached Teams.
                if attempt == self.attempts:
                    raise SurfaceError("Teams could not be reached.") from exc
                await asyncio.sleep(self._delay(attempt, None))
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, exc: ErrorResponseException | None) -> float:
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        retry_after = headers.get("Retry-After")
        if retry_after:
            try:
                return min(float(retry_after), self.max_delay) + random.uniform(0, 0.1)
            except ValueError:
                pass
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    async def send(self, reference: ConversationReference, activity: Activity) -> str:
        """Post ``activity`` into the reference's conversation; its new id."""

        async def op(context: TurnContext) -> str:
            response = await context.send_activity(activity)
            return str(getattr(response, "id", "") or "")

        return await self.run(reference, op)

    async def update(self, reference: ConversationReference, activity_id: str, activity: Activity) -> None:
        """Replace the bot's message ``activity_id`` (PUT, idempotent, so every status is retried)."""
        activity.id = activity_id

        async def op(context: TurnContext) -> None:
            await context.update_activity(activity)

        await self.run(reference, op)
