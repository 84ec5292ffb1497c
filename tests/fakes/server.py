"""Where the tests have always imported ``serve`` from; it lives in ``adapters/local_server.py`` (the fake
Slack Web API next to the adapter uses it too)."""

from adapters.local_server import LocalServer, serve

__all__ = ["LocalServer", "serve"]
