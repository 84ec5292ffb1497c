"""``datathread serve``: one aiohttp server for every enabled surface, plus ``/healthz``.

Each surface package exposes ``mount(app, engine, settings, env) -> bool``: it adds its routes
(and background clients such as Socket Mode) when its configuration is present and returns
whether it is enabled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from bot.config import Settings
from bot.engine import Engine

log = logging.getLogger(__name__)

READY_KEY = web.AppKey("ready", dict)


async def healthz(request: web.Request) -> web.Response:
    if not request.app[READY_KEY].get("ready"):
        return web.json_response({"status": "starting"}, status=503)
    return web.json_response({"status": "ok", "surfaces": request.app[READY_KEY]["surfaces"]})


async def build_app(engine: Engine, settings: Settings, env: Mapping[str, str]) -> web.Application:
    """The server application with every configured surface mounted."""
    from adapters.slack.wiring import mount as mount_slack
    from adapters.teams.wiring import mount as mount_teams

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[READY_KEY] = {"ready": False, "surfaces": []}
    app.router.add_get("/healthz", healthz)
    surfaces = []
    for name, mount in (("slack", mount_slack), ("teams", mount_teams)):
        if await mount(app, engine, settings, env):
            surfaces.append(name)
    if not surfaces:
        log.warning("no surface is configured: set SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET and/or MICROSOFT_APP_ID")

    async def on_startup(app: web.Application) -> None:
        engine.start()
        app[READY_KEY].update(ready=True, surfaces=surfaces)

    async def on_cleanup(app: web.Application) -> None:
        await engine.aclose()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
