"""Whether local kernels run sandboxed: the one policy ``serve``, ``chat`` and ``doctor`` share.

``serve`` needs a working sandbox unless the operator set ``DATATHREAD_UNSAFE_KERNEL=1``; ``chat``
runs unsandboxed unless asked (``--sandbox``). ``decide`` returns the settings to run with, or the
short message that tells the operator what to fix.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from bot.agents.kernel.sandbox import INSTALL_HINT, PROCESS_LIMITS, SandboxReport, policy_for, probe
from bot.config import Settings
from bot.doctor import DoctorCheck

UNSAFE_WARNING = (
    "DATATHREAD_UNSAFE_KERNEL=1: users' code runs UNSANDBOXED as this OS user. Anyone who can message the bot can "
    "read %s (the secret that signs links, the state database, every conversation's files) and the network."
)


@dataclass(frozen=True)
class Decision:
    """``settings`` to run with, or ``refusal``: why code cannot run safely and how to fix it."""

    settings: Settings
    refusal: str | None = None
    report: SandboxReport | None = None


async def decide(settings: Settings, *, required: bool) -> Decision:
    """Sandbox the kernels when one works. ``required`` (``serve``, ``chat --sandbox``): refuse without one,
    unless ``settings.unsafe_kernel``. Not required: run unsandboxed as before."""
    if not required:
        return Decision(settings)
    if settings.unsafe_kernel:
        return Decision(dataclasses.replace(settings, kernel_sandbox=False))
    report = await asyncio.to_thread(probe, policy_for(settings))
    if not report.works:
        return Decision(settings, f"users' code cannot be sandboxed here: {report.detail}. To fix it, {INSTALL_HINT}.",
                        report)
    return Decision(dataclasses.replace(settings, kernel_sandbox=True), None, report)


async def diagnose(settings: Settings) -> list[DoctorCheck]:
    """``doctor``'s sandbox line: does the sandbox work, and which protections are active under ``serve``."""
    report = await asyncio.to_thread(probe, policy_for(settings))
    pool = DoctorCheck("kernels", True, f"at most {settings.max_kernels} at once (DATATHREAD_MAX_KERNELS), "
                       f"{settings.warm_kernels} sandboxed started ahead of need (DATATHREAD_WARM_KERNELS)")
    return [*_sandbox_checks(settings, report), pool]


def _sandbox_checks(settings: Settings, report: SandboxReport) -> list[DoctorCheck]:
    if settings.unsafe_kernel:
        return [DoctorCheck("sandbox", True,
                            "UNSAFE: DATATHREAD_UNSAFE_KERNEL=1, `serve` runs users' code unsandboxed as this OS user "
                            f"(a sandbox {'would work' if report.works else 'is not available: ' + report.detail})")]
    if not report.works:
        return [DoctorCheck("sandbox", False, f"`serve` will refuse to run code: {report.detail}", INSTALL_HINT)]
    # Its own line, named by its kind: where no cgroup can be made the fork-bomb limit is the rlimit, or nothing.
    kind = report.process_limit
    size = "" if kind == "none" else f", {settings.kernel_max_processes} per kernel (DATATHREAD_KERNEL_MAX_PROCESSES)"
    limit = DoctorCheck("process limit", True, f"{kind}: {PROCESS_LIMITS[kind]}{size}")
    return [DoctorCheck("sandbox", True, f"{report.detail}: " + "; ".join(report.protections)), limit]
