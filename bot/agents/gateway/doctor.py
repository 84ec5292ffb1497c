"""``doctor``'s gateway lines: is the gateway reachable, does it accept our token, has it our kernel spec."""

from __future__ import annotations

from bot.config import GatewaySettings
from bot.doctor import DoctorCheck


async def diagnose(settings: GatewaySettings) -> list[DoctorCheck]:
    """Ask the gateway for its kernel specs: that proves it is reachable and the token (if any) is accepted."""
    from bot.agents.gateway.session import GatewayError, kernel_specs

    try:
        specs = await kernel_specs(settings)
    except GatewayError as exc:
        return [DoctorCheck("gateway", False, f"{settings.url}: {exc.reason}",
                            "check JUPYTER_GATEWAY_URL, that the gateway runs, and JUPYTER_GATEWAY_AUTH_TOKEN")]
    auth = "token accepted" if settings.auth_token else "no token sent"
    ok = settings.kernel_name in specs
    detail = (f"{settings.url} reachable, {auth}, kernel specs: {', '.join(specs) or 'none'}; "
              f"conversations use {settings.kernel_name!r}")
    return [DoctorCheck("gateway", ok, detail,
                        "" if ok else "set JUPYTER_GATEWAY_KERNEL_NAME to one of the gateway's kernel specs")]
