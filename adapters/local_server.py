"""Serve an aiohttp app on 127.0.0.1 with a free port: the one way every local fake listens.

Used by the fake Slack Web API next to the adapter and by the fakes in ``tests/fakes``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class LocalServer:
    """An aiohttp app served on 127.0.0.1 with a free port; ``url`` has no trailing slash."""

    runner: web.AppRunner
    url: str

    async def close(self) -> None:
        """Stop listening and run the app's cleanup hooks (in-flight handlers finish first)."""
        await self.runner.cleanup()


async def serve(app: web.Application, *, access_log: bool = True) -> LocalServer:
    """Start ``app`` on 127.0.0.1, port 0 (the OS picks a free one), and return where it listens.

    ``access_log=False`` silences aiohttp's per-request log for chatty fakes. The caller owns the
    result and must ``await server.close()``.
    """
    runner = web.AppRunner(app) if access_log else web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return LocalServer(runner, f"http://{host}:{port}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server started in another process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
