"""``datathread serve``: one aiohttp server for every enabled surface, plus ``/healthz``.

Each surface package exposes ``mount(app, engine, settings, env) -> bool``: it adds its routes
(and background clients such as Socket Mode) when its configuration is present and returns
whether it is enabled. A surface reports its own state in ``adapters.health.Health``: one that
cannot reach its platform does not stop the server, ``/healthz`` names it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from adapters.health import health_of
from adapters.http import MAX_REQUEST_BYTES
from bot.config import Settings
from bot.engine import Engine
from bot.extras import slack_wanted, teams_wanted

log = logging.getLogger(__name__)

ENGINE_KEY = web.AppKey("engine", Engine)
READY_KEY = web.AppKey("ready", dict)


async def healthz(request: web.Request) -> web.Response:
    """``starting`` and ``draining`` (shutdown began) answer 503 so a load balancer sends nothing
    new; otherwise 200 with ``ok``, or ``degraded`` when a surface cannot reach its platform.
    ``detail`` has each surface's own report."""
    health = health_of(request.app)
    detail = health.detail()
    if not request.app[READY_KEY].get("ready"):
        return web.json_response({"status": "starting", "detail": detail}, status=503)
    if health.draining:
        return web.json_response({"status": "draining", "detail": detail}, status=503)
    return web.json_response({"status": "ok" if health.healthy else "degraded",
                              "surfaces": request.app[READY_KEY]["surfaces"], "detail": detail})


async def build_app(engine: Engine, settings: Settings, env: Mapping[str, str]) -> web.Application:
    """The server application with every configured surface mounted."""
    from adapters.web.wiring import mount as mount_web

    # The surfaces read their bodies under this cap themselves; this is the backstop for any other route.
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[ENGINE_KEY] = engine
    health_of(app)
    app[READY_KEY] = {"ready": False, "surfaces": []}
    app.router.add_get("/healthz", healthz)
    mount_web(app, engine)
    surfaces = []
    # Each surface's SDK is an optional extra: import its wiring only when the environment asks for it.
    if slack_wanted(env):
        from adapters.slack.wiring import mount as mount_slack

        if await mount_slack(app, engine, settings, env):
            surfaces.append("slack")
    if teams_wanted(env):
        from adapters.teams.wiring import mount as mount_teams

        if await mount_teams(app, engine, settings, env):
            surfaces.append("teams")
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


async def drain(app: web.Application, grace: float) -> None:
    """The first step of a clean stop (SIGTERM, Ctrl-C): ``/healthz`` says ``draining`` and the
    surfaces answer new requests with 503 while running turns end (see ``Engine.shutdown``).
    The caller then cleans the app up."""
    health_of(app).draining = True
    await app[ENGINE_KEY].shutdown(grace)
