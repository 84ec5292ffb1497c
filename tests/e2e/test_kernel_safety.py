"""``serve`` only runs users' code in a working sandbox; ``doctor`` says which protections are active.

The real command line in a subprocess; "bubblewrap is missing" is a PATH without ``bwrap``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap sandboxes are Linux only")]

ROOT = Path(__file__).resolve().parents[2]


async def cli(home: Path, *args: str, **env: str) -> tuple[int, str]:
    full = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "DATATHREAD_HOME": str(home), **env}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", *args, env=full, cwd=home,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_serve_refuses_to_run_code_without_a_sandbox_and_says_how_to_fix_it(tmp_path: Path) -> None:
    code, out = await cli(tmp_path, "serve", "--port", "0", PATH=str(tmp_path))
    assert code == 2
    assert "cannot be sandboxed" in out and "apt-get install -y bubblewrap" in out
    assert "DATATHREAD_UNSAFE_KERNEL=1" in out
    assert "Traceback" not in out


async def test_doctor_lists_the_sandboxs_protections(tmp_path: Path) -> None:
    code, out = await cli(tmp_path, "doctor")
    assert code == 0, out
    [line] = [line for line in out.splitlines() if "sandbox:" in line]
    assert line.startswith("[ok]")
    for protection in ("uid 1000", "network off", "processes", "memory", "workspace disk"):
        assert protection in line


async def test_doctor_shows_network_on_and_unsafe_mode_loudly(tmp_path: Path) -> None:
    _, out = await cli(tmp_path, "doctor", DATATHREAD_KERNEL_NETWORK="1")
    assert "network shared with the host" in out
    _, out = await cli(tmp_path, "doctor", DATATHREAD_UNSAFE_KERNEL="1", PATH=str(tmp_path))
    assert "UNSAFE" in out and "unsandboxed" in out


async def test_doctor_fails_when_serve_could_not_sandbox(tmp_path: Path) -> None:
    code, out = await cli(tmp_path, "doctor", PATH=str(tmp_path))
    assert code == 1
    assert "[FAIL] sandbox" in out and "apt-get install -y bubblewrap" in out
