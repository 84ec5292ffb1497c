"""What each surface says about itself, for ``/healthz`` and the log.

A surface that cannot reach its platform (Slack down at start-up) reports itself unhealthy and
keeps retrying; the server and the other surfaces keep serving.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from aiohttp import web

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SurfaceStatus:
    """One surface's last report: whether it works, and in plain words why not."""

    healthy: bool
    detail: str = ""


class Health:
    """Surface reports plus the server's own state (draining once shutdown began)."""

    def __init__(self) -> None:
        self._surfaces: dict[str, SurfaceStatus] = {}
        self.draining = False

    def report(self, surface: str, healthy: bool, detail: str = "") -> None:
        """Record a surface's state; a change is logged (a warning when it turns unhealthy)."""
        new = SurfaceStatus(healthy, detail)
        old = self._surfaces.get(surface)
        self._surfaces[surface] = new
        if old == new:
            return
        if healthy or old is None:
            log.info("%s is %s%s", surface, "healthy" if healthy else "not ready", f": {detail}" if detail else "")
        else:
            log.warning("%s is unhealthy: %s", surface, detail)

    def detail(self) -> dict[str, dict[str, object]]:
        """Every reported surface as JSON-ready data."""
        return {name: asdict(status) for name, status in self._surfaces.items()}

    @property
    def healthy(self) -> bool:
        return all(s.healthy for s in self._surfaces.values())


HEALTH_KEY = web.AppKey("health", Health)


def health_of(app: web.Application) -> Health:
    """The app's ``Health``, created on first use (a surface may be mounted on a bare app in tests)."""
    if HEALTH_KEY not in app:
        app[HEALTH_KEY] = Health()
    return app[HEALTH_KEY]
