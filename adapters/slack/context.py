"""``SlackContext``: what every surface of one Slack app shares (client, budgets, switches)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.http import host_in
from adapters.slack.budget import RateBudget
from adapters.slack.clicks import ClickBudgets
from renderers.slack import TableStyle

#: chat.update errors meaning the message is no longer there to update: post it again instead.
MESSAGE_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
#: Errors that mean streaming cannot work in this workspace / channel: stop trying it.
STREAMING_UNAVAILABLE = frozenset({
    "method_not_supported_for_channel_type", "not_allowed_token_type", "feature_not_enabled",
    "unknown_method", "not_allowed", "missing_scope", "channel_type_not_supported",
    "team_not_allowed", "invalid_arguments",
})
#: Errors a stream carrying task chunks (or ``task_display_mode``) gets where the workspace does not
#: know them: steps are streamed as text from then on.
STEP_CHUNKS_UNAVAILABLE = frozenset({"invalid_arguments", "invalid_chunks", "unknown_chunk_type"})


#: Every Web API method the Slack adapter calls, with the bot scope it needs (``None``: none). A test
#: finds every call in ``adapters/slack`` and proves it is listed here and its scope is in both manifests.
METHOD_SCOPES: dict[str, str | None] = {
    "auth.test": None,
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.startStream": "chat:write",
    "chat.appendStream": "chat:write",
    "chat.stopStream": "chat:write",
    "reactions.add": "reactions:write",
    "reactions.remove": "reactions:write",
    "assistant.threads.setStatus": "assistant:write",
    "assistant.threads.setTitle": "assistant:write",
    "assistant.threads.setSuggestedPrompts": "assistant:write",
    "agents.sessions.setStatus": "assistant:write",
    # Uploads: files_upload_v2's three steps, done by hand so the file streams from disk.
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "files.list": "files:read",
    "files.info": "files:read",  # shared-channel files that arrive without URLs
    "chat.getPermalink": None,  # the Workflow Builder step's thread link
}

#: Errors of ``agents.sessions.setStatus`` meaning this app has no agent sessions here (not declared
#: as an agent, an older workspace): use ``assistant.threads.setStatus`` and our own Stop button.
NO_AGENT_SESSIONS = frozenset({"not_authorized", "unknown_method", "not_allowed_token_type", "feature_not_enabled",
                               "missing_scope", "invalid_arguments"})
#: Errors meaning Slack does not know a block we sent (``data_table`` in an older workspace).
INVALID_BLOCKS = frozenset({"invalid_blocks", "invalid_blocks_format"})


@dataclass
class SlackContext:
    """The client, the workspace's rate budgets, and a few switches."""

    client: AsyncWebClient
    token: str = field(repr=False)
    api_host: str | None = None
    update_budget: RateBudget = field(default_factory=lambda: RateBudget(45, burst=10))
    stream_budget: RateBudget = field(default_factory=lambda: RateBudget(100, burst=30))
    #: Page clicks: a budget per user and coalesced redraws (``adapters.slack.clicks``).
    clicks: ClickBudgets = field(default_factory=ClickBudgets)
    #: Flipped off for good the first time Slack says streaming is not available here.
    streaming: bool = True
    #: Streams show agent steps as task chunks (``renderers.slack_steps``); flipped off for good the
    #: first time Slack refuses them.
    step_chunks: bool = True
    #: Whether threads are agent sessions (Slack's own Stop button, ``agent_session_stopped``):
    #: ``None`` until the first ``agents.sessions.setStatus`` answers; off for good once refused.
    agent_sessions: bool | None = None
    #: Held by the first session call, so a burst of turns on a cold start asks Slack once.
    session_probe: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: How dataset pages are drawn: ``data_table``, else ``table``, else fixed-width text; each
    #: ``invalid_blocks`` answer moves one step down for the rest of the process.
    table_style: TableStyle = "data_table"
    #: Whether small charts go as ``data_visualization`` blocks; the first ``invalid_blocks`` answer
    #: to one turns them into PNGs for the rest of the process.
    native_charts: bool = True
    _http: aiohttp.ClientSession | None = None

    def allowed_host(self, url: str) -> bool:
        """Whether the bot token may be sent to ``url``: HTTPS to Slack's own hosts, or exactly the
        origin (scheme, host and port) of ``api_host`` (the ``SLACK_API_URL`` origin; a bare host
        name there means HTTPS on 443). Another port or scheme on that host is refused."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if self.api_host:
            api = urlsplit(self.api_host if "://" in self.api_host else f"https://{self.api_host}")
            defaults = {"http": 80, "https": 443}
            try:
                same_port = (parts.port or defaults.get(parts.scheme)) == (api.port or defaults.get(api.scheme))
            except ValueError:  # a port that is not a number
                return False
            if parts.scheme == api.scheme.lower() and host == (api.hostname or "").lower() and same_port:
                return True
        return parts.scheme == "https" and host_in(host, ("slack.com",))

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300, sock_connect=15))
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code for a refused call (``unknown_error`` when the answer names none); never a token."""
    error = exc.response.get("error") if exc.response is not None else None
    return str(error or "unknown_error")
