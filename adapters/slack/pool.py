"""One pooled, keep-alive HTTP session for the Slack Web API.

Without a session, slack-sdk's ``AsyncWebClient`` opens a new ``aiohttp.ClientSession`` (so a new
TCP connection, and against slack.com a new TLS handshake) for every call: ~2,000 connects for
~1,800 calls at 50 threads. With one session the calls reuse a few warm connections.
"""

from __future__ import annotations

import aiohttp

#: Connections kept open to the Web API at most; calls beyond it wait for a free one.
CONNECTIONS = 64
#: Idle connections are kept this long (Slack's edge keeps them about a minute).
KEEPALIVE_SECONDS = 30.0


def web_api_session(timeout: float, connections: int = CONNECTIONS) -> aiohttp.ClientSession:
    """A session for ``AsyncWebClient(session=...)`` whose calls give up after ``timeout`` seconds;
    create it inside the running event loop and close it on shutdown. The timeout must be the
    session's: slack-sdk applies its own ``timeout`` only to the sessions it makes itself."""
    connector = aiohttp.TCPConnector(limit=connections, keepalive_timeout=KEEPALIVE_SECONDS, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))
