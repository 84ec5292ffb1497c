"""Without a cgroup a fork bomb still ends in an error in its own kernel: ``RLIMIT_NPROC`` in the sandbox's
user namespace (counted per namespace since Linux 5.14), proven from inside real sandboxed kernels with
the cgroup path turned off (``DATATHREAD_KERNEL_NO_CGROUP=1``); ``doctor`` says which limit holds.

The rlimit does not bind the host's root user, so when the tests run as root the bot runs as ``nobody``
(``setpriv``), in a private mount namespace where the folders this Python and checkout live in are
reachable by other users (a Python under ``/root`` is not, otherwise). Nothing of the host is changed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap sandboxes are Linux only")]

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534

BOT = """
import asyncio, dataclasses, json, subprocess, sys
from datetime import UTC, datetime
from pathlib import Path
from bot.agents.kernel.agent import LocalKernelAgent, LocalKernelExecutor
from bot.agents.kernel.sandbox import policy_for, probe
from bot.config import Settings
from bot.conversation import Conversation, Turn
from bot.datasets.local import LocalDatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.events import CodeError, CodeOutput
from bot.messages import ThreadKey
from bot.workspace import Workspace

BOMB = '''
import subprocess
children = []
try:
    for _ in range(300):  # bounded: the limit is far below
        children.append(subprocess.Popen(['sleep', '120']))
    print('NOT STOPPED')
except OSError as exc:
    print('stopped at', len(children), type(exc).__name__)
'''
NEIGHBOUR = '''
import subprocess
kids = [subprocess.Popen(['sleep', '120']) for _ in range(15)]
print('neighbour started', len(kids))
for k in kids:
    k.kill()
    k.wait()
'''
CLEANUP = "for child in children:\\n    child.kill()\\n    child.wait()\\nprint('still here')"

async def main():
    root = Path(sys.argv[1])
    env = {"DATATHREAD_HOME": str(root), "DATATHREAD_KERNEL_NO_CGROUP": "1"}
    settings = dataclasses.replace(Settings.from_env(env), kernel_sandbox=True, warm_kernels=0,
                                   kernel_max_processes=40, run_timeout=60.0)
    store = LocalDatasetStore(root / "datasets")
    agent = LocalKernelAgent(LocalKernelExecutor(settings))
    now = datetime.now(UTC)
    found = {"limit": probe(policy_for(settings)).process_limit}

    async def run(name, code):
        conv = Conversation(name, ThreadKey("console", "local", "t", name), "s-" + name, "u",
                            root / "workspaces" / name, now, now)
        turn = Turn(conv, "```python\\n" + code + "\\n```", (), Workspace(conv.workspace).ensure(),
                    ThreadDatasets(store, conv))
        out = []
        async for event in agent.run(turn):
            if isinstance(event, CodeOutput):
                out.append(event.text)
            elif isinstance(event, CodeError):
                out.append(f"ERROR {event.ename}")
        return "".join(out)

    try:
        found["bomb"] = await run("bomber", BOMB)
        # While the bomber's kernel holds every process it may have: another kernel, and the host.
        found["neighbour"] = await run("neighbour", NEIGHBOUR)
        found["host"] = subprocess.run(["echo", "host ok"], capture_output=True, text=True).stdout.strip()
        found["after"] = await run("bomber", CLEANUP)
    finally:
        await agent.aclose()
        await store.aclose()
    print(json.dumps(found), flush=True)

asyncio.run(main())
"""


def _blocked(path: Path) -> Path | None:
    """The outermost folder on the way to ``path`` that other users may not pass through."""
    for folder in [*reversed(path.parents), path]:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None


def _unprivileged(argv: list[str], needed: list[Path]) -> list[str]:
    """``argv`` as ``nobody`` in a private mount namespace where every folder in ``needed`` is reachable:
    each blocking folder is covered by an open tmpfs into which only the needed entries are bound back."""
    script = ["set -e", 'scratch=$(mktemp -d)']
    for n, blocked in enumerate(sorted({b for p in needed if (b := _blocked(p)) is not None})):
        entries = sorted({p.relative_to(blocked).parts[0] for p in needed if p != blocked and blocked in p.parents}
                         | ({e.name for e in blocked.iterdir()} if blocked in needed else set()))
        script += [f'mkdir "$scratch/{n}"', f'mount --bind "{blocked}" "$scratch/{n}"',
                   f'mount -t tmpfs -o mode=755 tmpfs "{blocked}"']
        for entry in entries:
            kind = "mkdir" if (blocked / entry).is_dir() else "touch"
            script += [f'{kind} "{blocked}/{entry}"', f'mount --bind "$scratch/{n}/{entry}" "{blocked}/{entry}"']
    script.append(f'exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script), "sh", *argv]


def as_bot_user(argv: list[str]) -> list[str]:
    """``argv`` as an unprivileged user: as is when the tests are not root, else as ``nobody``."""
    if os.geteuid() != 0:
        return argv
    if not (shutil.which("unshare") and shutil.which("setpriv")):
        pytest.skip("running the bot as an unprivileged user from root needs unshare and setpriv (util-linux)")
    needed = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), ROOT]
    return _unprivileged(argv, needed)


@pytest.fixture
def home() -> Iterator[Path]:
    """A bot home the unprivileged user owns (pytest's own temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="dt-nproc-"))
    folder.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(folder, NOBODY, NOBODY)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def _run(argv: list[str], home: Path, **env: str) -> tuple[int, str]:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "HOME": str(home),
            "DATATHREAD_HOME": str(home), **env}
    proc = await asyncio.create_subprocess_exec(*argv, env=full, cwd=home, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    return proc.returncode or 0, out.decode()


async def test_without_a_cgroup_a_fork_bomb_ends_in_an_error_in_that_kernel_only(home: Path) -> None:
    code, out = await _run(as_bot_user([sys.executable, "-c", BOT, str(home)]), home)
    assert code == 0, out
    found = json.loads(out.strip().splitlines()[-1])
    assert found["limit"] == "rlimit", "probe: the rlimit holds a fork loop here"
    assert "NOT STOPPED" not in found["bomb"] and "stopped at" in found["bomb"], found
    held = int(found["bomb"].split("stopped at")[1].split()[0])
    # Shared with the neighbour, the bomber's children plus the neighbour's 15 would be far over 40.
    assert 20 < held < 40, found
    assert found["neighbour"] == "neighbour started 15\n", "another kernel is not counted against the bomber's limit"
    assert found["host"] == "host ok"
    assert found["after"] == "still here\n", "the bomber's kernel works after its bomb"


async def test_doctor_says_which_process_limit_holds(home: Path) -> None:
    doctor = [sys.executable, "-m", "bot.cli", "doctor"]
    _, out = await _run(as_bot_user(doctor), home, DATATHREAD_KERNEL_NO_CGROUP="1")
    [line] = [line for line in out.splitlines() if "process limit:" in line]
    assert "rlimit: RLIMIT_NPROC in each kernel's own user namespace" in line, out
    if os.geteuid() == 0:  # the same without a cgroup, as root: nothing holds, and doctor says what to do
        _, out = await _run(doctor, home, DATATHREAD_KERNEL_NO_CGROUP="1")
        [line] = [line for line in out.splitlines() if "process limit:" in line]
        assert "none: processes of a kernel are NOT limited" in line and "unprivileged user" in line, out
