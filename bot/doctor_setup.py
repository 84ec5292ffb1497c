"""Doctor checks of the setup itself: which surfaces and agents are configured (and installed), and
whether a local kernel really starts and runs code."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from bot.config import AgentKind, Settings
from bot.doctor import DoctorCheck
from bot.durations import human_duration
from bot.extras import AWS, SLACK, TEAMS, slack_wanted, teams_wanted

#: A kernel that has not answered in this long is reported as not starting.
KERNEL_TIMEOUT = 60.0


def surface_checks(env: Mapping[str, str]) -> list[DoctorCheck]:
    """One check per surface: configured and installed, configured but incomplete or not installed
    (failures), or not configured (``skipped``: the console works without it)."""
    checks: list[DoctorCheck] = []
    if not slack_wanted(env):
        checks.append(DoctorCheck("slack", True, "not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET "
                                  "to serve Slack)", skipped=True))
    elif not SLACK.installed:
        checks.append(DoctorCheck("slack", False, "configured, but the Slack SDK is not installed", SLACK.install_hint))
    elif not env.get("SLACK_SIGNING_SECRET"):
        checks.append(DoctorCheck("slack", False, "SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not",
                                  "copy the Signing Secret from the Slack app's Basic Information page"))
    else:
        mode = "Socket Mode" if env.get("SLACK_APP_TOKEN") else "HTTP events at /slack/events"
        checks.append(DoctorCheck("slack", True, f"configured ({mode})"))
    if not teams_wanted(env):
        checks.append(DoctorCheck("teams", True, "not configured (set MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD "
                                  "and MICROSOFT_APP_TENANT_ID to serve Teams)", skipped=True))
    elif not TEAMS.installed:
        checks.append(DoctorCheck("teams", False, "configured, but the Teams SDK is not installed", TEAMS.install_hint))
    else:
        checks.append(DoctorCheck("teams", True, "configured (Bot Framework messages at /api/messages)"))
    return checks


def agent_sdk_check(settings: Settings) -> DoctorCheck | None:
    """A failure when the configured AWS agent's SDK is missing (the agent's own checks need it)."""
    if settings.agent in (AgentKind.BEDROCK_AGENTS, AgentKind.CONVERSE) and not AWS.installed:
        return DoctorCheck("agent", False, f"DATATHREAD_AGENT={settings.agent.value} needs the AWS SDK, "
                           "which is not installed", AWS.install_hint)
    return None


async def kernel_check(settings: Settings) -> DoctorCheck:
    """Start a local kernel (as ``chat`` does), run ``6 * 7`` in it, and say how long it took."""
    from bot.agents.kernel.session import KernelSession, KernelStartError

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="datathread-doctor-") as folder:
        session: KernelSession | None = None
        try:
            async with asyncio.timeout(KERNEL_TIMEOUT):
                session = await KernelSession.start(Path(folder), settings.kernel_memory_bytes)
                reply = await session.request("", {"answer": "6 * 7"})
        except (KernelStartError, TimeoutError, OSError) as exc:
            return DoctorCheck("kernel", False, f"a local Python kernel did not start: {exc}",
                               "see datathread.log in DATATHREAD_HOME; reinstall with pip install -e .")
        finally:
            if session is not None:
                await session.shutdown()
    answer = reply.get("user_expressions", {}).get("answer", {}).get("data", {}).get("text/plain")
    if answer != "42":
        return DoctorCheck("kernel", False, f"a local kernel started but did not compute 6 * 7 (got {answer!r})",
                           "see datathread.log in DATATHREAD_HOME")
    return DoctorCheck("kernel", True, f"a local Python kernel started and ran code in "
                       f"{human_duration(time.monotonic() - began)}")
