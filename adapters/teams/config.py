"""Teams settings from the environment: Bot Framework credentials or the local no-auth mode."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.config import ConfigError, env_flag, env_number
from bot.first_contact import DEFAULT_FOLLOW_UPS, DEFAULT_PROMPTS, Prompt, follow_ups_from_env, prompts_from_env

APP_TYPES = ("SingleTenant", "UserAssignedMSI")


@dataclass(frozen=True)
class TeamsSettings:
    """``app_id`` empty means the local unauthenticated mode (only with the explicit opt-in).

    ``public_url`` is where people's browsers reach ``datathread serve`` (file download links).
    """

    app_id: str
    app_password: str = field(repr=False)
    tenant_id: str
    app_type: str
    allow_unauthenticated: bool
    public_url: str
    #: Seconds a channel file link stays valid.
    link_ttl: float = 7 * 24 * 3600.0
    #: Offered as suggested actions when the bot is added to a personal chat (``bot.first_contact``).
    prompts: tuple[Prompt, ...] = DEFAULT_PROMPTS
    #: Offered as suggested actions under a personal chat's first answer.
    follow_ups: tuple[Prompt, ...] = DEFAULT_FOLLOW_UPS

    @property
    def authenticated(self) -> bool:
        return bool(self.app_id)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TeamsSettings | None:
        """The settings, or ``None`` when Teams is not configured (neither credentials nor opt-in)."""
        app_id = env.get("MICROSOFT_APP_ID", "").strip()
        unauthenticated = env_flag(env, "DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED")
        if not app_id and not unauthenticated:
            return None
        app_type = env.get("MICROSOFT_APP_TYPE", "").strip() or "SingleTenant"
        matched = [t for t in APP_TYPES if t.lower() == app_type.lower()]
        if app_id and not matched:
            raise ConfigError(
                f"MICROSOFT_APP_TYPE must be SingleTenant or UserAssignedMSI, got {app_type!r} "
                "(Azure no longer creates multi-tenant bots)"
            )
        tenant = env.get("MICROSOFT_APP_TENANT_ID", "").strip()
        password = env.get("MICROSOFT_APP_PASSWORD", "")
        if app_id and not tenant:
            raise ConfigError("MICROSOFT_APP_TENANT_ID is required with MICROSOFT_APP_ID")
        if app_id and matched[0] == "SingleTenant" and not password:
            raise ConfigError("MICROSOFT_APP_PASSWORD is required for a SingleTenant bot")
        link_ttl = env_number(env, "DATATHREAD_FILE_LINK_HOURS", 7 * 24) * 3600
        return cls(
            app_id=app_id,
            app_password=password,
            tenant_id=tenant,
            app_type=matched[0] if matched else "SingleTenant",
            allow_unauthenticated=unauthenticated and not app_id,
            public_url=(env.get("DATATHREAD_PUBLIC_URL", "").strip() or "http://localhost:3978").rstrip("/"),
            link_ttl=link_ttl,
            prompts=prompts_from_env(env),
            follow_ups=follow_ups_from_env(env),
        )
