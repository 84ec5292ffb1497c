"""Mount the web view (``/w/...``) on the ``datathread serve`` application.

``mount(app, engine)`` adds a sub-application with its own hardening middleware, so its headers
and rules apply to the web view only, never to the platform webhooks beside it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from adapters.web import grid_routes as grid
from adapters.web import workspace_routes as ws
from adapters.web.guard import ENGINE
from adapters.web.security import hardening
from bot.engine import Engine

PREFIX = "/w"
#: The pages, scripts and style sheet, installed as package data (no CDN, no build step).
STATIC = Path(__file__).parent / "static"


def build_web_app(engine: Engine) -> web.Application:
    """The web view as an aiohttp application, to mount at ``PREFIX``."""
    app = web.Application(middlewares=[hardening])
    app[ENGINE] = engine
    app[ws.CLOSING] = asyncio.Event()
    r = app.router
    r.add_static("/static/", STATIC, follow_symlinks=False)
    r.add_get("/open", ws.open_page)
    r.add_get("/denied", ws.denied_page)
    r.add_post("/session", ws.exchange)
    r.add_get("/{conversation}/", ws.workspace_page)
    r.add_get("/{conversation}/api/files", ws.files_json)
    r.add_get("/{conversation}/api/events", ws.events)
    r.add_get("/{conversation}/files/{path:.+}", ws.download)
    r.add_post("/{conversation}/api/open-table", grid.open_table)
    r.add_get("/{conversation}/d/{dataset}/", grid.grid_page)
    r.add_get("/{conversation}/api/d/{dataset}", grid.meta_json)
    r.add_get("/{conversation}/api/d/{dataset}/rows", grid.rows_json)
    r.add_get("/{conversation}/api/d/{dataset}/chart.png", grid.chart_png)
    r.add_get("/{conversation}/api/d/{dataset}/export.{format}", grid.export)

    async def on_shutdown(app: web.Application) -> None:
        app[ws.CLOSING].set()  # live pages end their event streams so the server can stop promptly

    app.on_shutdown.append(on_shutdown)
    return app


def mount(app: web.Application, engine: Engine) -> None:
    """Serve the web view under ``PREFIX`` of ``app``."""
    app.add_subapp(PREFIX, build_web_app(engine))
