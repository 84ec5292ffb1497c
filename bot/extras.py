"""Optional platform SDKs (pip extras) and the one message that says which to install.

The console needs none of them; ``serve`` needs the SDK of each configured surface, and the AWS
agents need boto3. A missing one is reported as one line naming the extra, never a traceback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import AgentKind, Settings


@dataclass(frozen=True)
class Extra:
    """One pip extra of the ``datathread`` package: its name, what it is for, the modules it brings."""

    name: str
    purpose: str
    modules: tuple[str, ...]

    @property
    def installed(self) -> bool:
        return all(_importable(m) for m in self.modules)

    @property
    def install_hint(self) -> str:
        return f"pip install 'datathread[{self.name}]'  (in a source checkout: pip install -e '.[{self.name}]')"


SLACK = Extra("slack", "Slack", ("slack_bolt", "slack_sdk"))
TEAMS = Extra("teams", "Microsoft Teams", ("botbuilder.core", "botbuilder.integration.aiohttp"))
AWS = Extra("aws", "the Amazon Bedrock agents", ("boto3", "botocore"))
GATEWAY = Extra("gateway", "a Jupyter Enterprise Gateway", ("jupyter_server", "websocket"))
EXTRAS = (SLACK, TEAMS, AWS, GATEWAY)


class MissingExtra(Exception):
    """A configured feature needs an extra that is not installed; ``str()`` is the user's message."""

    def __init__(self, extra: Extra, reason: str) -> None:
        super().__init__(f"{reason}, but the SDK for {extra.purpose} is not installed: {extra.install_hint}")
        self.extra = extra


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def slack_wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for Slack (its bot token is set)."""
    return bool(env.get("SLACK_BOT_TOKEN"))


def teams_wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for Teams (an app id, or the local unauthenticated opt-in)."""
    flag = env.get("DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED", "").strip().lower()
    return bool(env.get("MICROSOFT_APP_ID", "").strip()) or flag in ("1", "true", "yes", "on")


def agent_extra(settings: Settings) -> Extra | None:
    """The extra the configured agent needs (``None`` for the local kernel)."""
    return AWS if settings.agent in (AgentKind.BEDROCK_AGENTS, AgentKind.CONVERSE) else None


def require_for_agent(settings: Settings) -> None:
    """Raise ``MissingExtra`` when the configured agent's SDK is not installed."""
    extra = agent_extra(settings)
    if extra is not None and not extra.installed:
        raise MissingExtra(extra, f"DATATHREAD_AGENT={settings.agent.value} runs on AWS")
    if settings.gateway is not None and not GATEWAY.installed:
        raise MissingExtra(GATEWAY, "DATATHREAD_EXECUTOR=gateway runs code on a Jupyter Enterprise Gateway")


def require_for_serve(settings: Settings, env: Mapping[str, str]) -> None:
    """Raise ``MissingExtra`` for the first configured surface or agent whose SDK is not installed."""
    if slack_wanted(env) and not SLACK.installed:
        raise MissingExtra(SLACK, "Slack is configured (SLACK_BOT_TOKEN is set)")
    if teams_wanted(env) and not TEAMS.installed:
        raise MissingExtra(TEAMS, "Teams is configured (MICROSOFT_APP_ID is set)")
    require_for_agent(settings)


def extra_for_module(name: str | None) -> Extra | None:
    """The extra that provides the top-level module ``name`` (from a ``ModuleNotFoundError``)."""
    top = (name or "").split(".")[0]
    for extra in EXTRAS:
        if any(m.split(".")[0] == top for m in extra.modules):
            return extra
    return None
