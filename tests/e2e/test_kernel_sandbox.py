"""The local kernel in its bubblewrap sandbox: every protection proven from inside a real sandboxed kernel.

Each test runs the code a hostile user could send and asserts what that user would see. The
kernels are real (bwrap + ipykernel); the bot's home holds a real secret, state database and
another conversation's workspace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.agents.kernel.agent import LocalKernelAgent, LocalKernelExecutor
from bot.agents.kernel.sandbox import SandboxPolicy, bwrap_path, descendants, probe
from bot.config import Settings
from bot.datasets.local import LocalDatasetStore
from bot.events import CodeError, DatasetProduced, FileProduced, Notice
from tests.e2e.test_local_kernel import World, of, run, stdout

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap sandboxes are Linux only"),
]

TOKEN = "xoxb-sandbox-test-token-7f3a"
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    assert bwrap_path() is not None, "bubblewrap must be installed for these tests (apt-get install -y bubblewrap)"
    root = tmp_path_factory.mktemp("home")
    (root / "secret").write_text("host-hmac-secret")
    (root / "state.sqlite3").write_text("state database")
    other = root / "workspaces" / "victim"
    other.mkdir(parents=True)
    (other / "private.csv").write_text("salary\n100\n")
    settings = Settings.from_env({"DATATHREAD_HOME": str(root)})
    settings = dataclasses.replace(settings, run_timeout=30.0, output_cap_chars=4000, kernel_sandbox=True)
    store = LocalDatasetStore(root / "datasets")
    os.environ["DATATHREAD_TEST_BOT_TOKEN"] = TOKEN  # what the bot's environment would hold
    yield World(root, store, settings)
    os.environ.pop("DATATHREAD_TEST_BOT_TOKEN", None)
    await store.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(world: World) -> AsyncIterator[LocalKernelAgent]:
    agent = LocalKernelAgent(world.executor())
    yield agent
    await agent.aclose()


async def test_the_sandbox_works_here_and_reports_its_protections(world: World) -> None:
    report = probe(SandboxPolicy(hidden=(world.root,)))
    assert report.works, report.detail
    assert "network off" in report.protections


async def test_the_kernel_runs_as_an_unprivileged_user_in_workspace(agent: LocalKernelAgent, world: World) -> None:
    events = await run(agent, world, world.conversation("who"),
                       fenced("import os\nprint(os.getuid(), os.getcwd(), os.getpid())"))
    uid, cwd, pid = stdout(events).split()
    assert (uid, cwd) == ("1000", "/workspace")
    assert int(pid) < 10, "own PID namespace"


async def test_bot_home_secret_state_and_other_workspaces_are_unreadable(agent: LocalKernelAgent, world: World) -> None:
    victim = world.root / "workspaces" / "victim" / "private.csv"
    targets = [world.root / "secret", world.root / "state.sqlite3", victim,
               Path("/workspace/../workspaces/victim/private.csv")]
    code = f"""
import os
for path in {[str(t) for t in targets]!r}:
    try:
        print('READ', open(path).read())
    except OSError as exc:
        print('denied', type(exc).__name__)
print('listing', os.path.exists({str(world.root)!r}), sorted(os.listdir('/')))
for folder in ({str(victim.parent)!r}, '/workspace/../workspaces/victim'):
    try:
        open(folder + '/planted.txt', 'w').write('from the attacker')
        print('PLANTED')
    except OSError as exc:
        print('plant refused', type(exc).__name__)
"""
    out = stdout(await run(agent, world, world.conversation("thief"), fenced(code)))
    assert "READ" not in out
    assert out.count("denied") == len(targets)
    assert "PLANTED" not in out and out.count("plant refused") == 2
    assert "listing False" in out
    assert not (world.root / "workspaces" / "victim" / "planted.txt").exists()


async def test_the_bots_environment_and_proc_environ_are_out_of_reach(agent: LocalKernelAgent, world: World) -> None:
    code = f"""
import os, glob
print('env', {TOKEN!r} in str(os.environ))
found = []
for path in glob.glob('/proc/*/environ') + ['/proc/{os.getpid()}/environ']:
    try:
        if {TOKEN!r}.encode() in open(path, 'rb').read():
            found.append(path)
    except OSError:
        pass
print('found', found)
print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
"""
    out = stdout(await run(agent, world, world.conversation("snoop"), fenced(code)))
    assert "env False" in out
    assert "found []" in out
    pids = json.loads(out.split("pids ")[1].strip())
    assert len(pids) < 10 and max(pids) < 100, "only the sandbox's own processes are visible"


async def test_another_conversations_kernel_cannot_be_reached_through_its_connection_file(
    agent: LocalKernelAgent, world: World
) -> None:
    victim = world.conversation("victim")
    await run(agent, world, victim, fenced("password = 'hunter2'"))
    session = agent.executor._slots[victim.id].session
    assert session is not None
    connection_file = session._manager.connection_file
    assert await asyncio.to_thread(os.path.exists, connection_file)
    code = f"""
from jupyter_client import BlockingKernelClient
try:
    c = BlockingKernelClient(connection_file={connection_file!r})
    c.load_connection_file()
    c.start_channels()
    msg = c.execute_interactive("print(password)", timeout=5)
    print('REACHED', msg)
except Exception as exc:
    print('refused', type(exc).__name__)
"""
    out = stdout(await run(agent, world, world.conversation("attacker"), fenced(code)))
    assert "REACHED" not in out and "refused" in out


async def _loopback_server() -> tuple[asyncio.Server, int, asyncio.Event]:
    connected = asyncio.Event()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        writer.write(b"hello from the host\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connected


def _connect_code(port: int) -> str:
    return fenced(f"""
import socket
try:
    with socket.create_connection(('127.0.0.1', {port}), timeout=3) as s:
        print('got', s.recv(100).decode().strip())
except OSError as exc:
    print('no network', type(exc).__name__)
""")


async def test_network_is_off_by_default(agent: LocalKernelAgent, world: World) -> None:
    server, port, connected = await _loopback_server()
    async with server:
        out = stdout(await run(agent, world, world.conversation("offline"), _connect_code(port)))
    assert "no network" in out and not connected.is_set()


async def test_network_on_reaches_the_hosts_loopback(world: World) -> None:
    agent = LocalKernelAgent(world.executor(kernel_network=True))
    server, port, connected = await _loopback_server()
    try:
        async with server:
            out = stdout(await run(agent, world, world.conversation("online"), _connect_code(port)))
            await asyncio.wait_for(connected.wait(), 5)
    finally:
        await agent.aclose()
    assert "got hello from the host" in out


async def test_a_fork_bomb_ends_in_an_error_in_that_kernel_only(agent: LocalKernelAgent, world: World) -> None:
    limited = LocalKernelAgent(world.executor(kernel_max_processes=40))
    bomber = world.conversation("bomber")
    code = fenced("""
import subprocess
children = []
try:
    for _ in range(300):  # bounded: the limit is far below
        children.append(subprocess.Popen(['sleep', '60']))
    print('NOT STOPPED')
except OSError as exc:
    print('stopped at', len(children), type(exc).__name__)
for child in children:
    child.kill()
    child.wait()
""")
    try:
        out = stdout(await run(limited, world, bomber, code))
        assert "NOT STOPPED" not in out and "stopped at" in out
        assert int(out.split("stopped at")[1].split()[0]) < 40
        assert stdout(await run(limited, world, bomber, fenced("print('still here')"))) == "still here\n"
    finally:
        await limited.aclose()
    assert stdout(await run(agent, world, world.conversation("neighbour"), fenced("print(6 * 7)"))) == "42\n"


@pytest.mark.parametrize("bomb", [
    "x = bytearray(2 * 1024**3)",
    "import mmap\nm = mmap.mmap(-1, 1024**3, flags=mmap.MAP_SHARED)\nfor i in range(0, len(m), 4096):\n    m[i] = 1",
    "with open('/dev/shm/fill', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'x' * 1024**2)",
], ids=["heap", "map-shared", "dev-shm"])
async def test_a_memory_bomb_ends_in_an_error_in_that_kernel_only(
    agent: LocalKernelAgent, world: World, bomb: str
) -> None:
    limited = LocalKernelAgent(world.executor(kernel_memory_bytes=300 * 1024**2))
    hog = world.conversation("hog")
    try:
        events = await run(limited, world, hog, fenced(bomb))
        errors = [e.ename for e in of(CodeError, events)]
        notices = [n.text for n in of(Notice, events) if n.level == "error"]
        assert errors or notices, events
        assert "MemoryError" in errors or "OSError" in errors or any("stopped unexpectedly" in n for n in notices)
        # The kernel works afterwards (a new one if it was killed), and nothing outlived the old one.
        after = stdout(await run(limited, world, hog, fenced("import os\nprint(os.listdir('/dev/shm'))")))
        assert after.strip() in ("[]", "['fill']"), after
    finally:
        await limited.aclose()
    assert stdout(await run(agent, world, world.conversation("neighbour"), fenced("print('fine')"))) == "fine\n"


async def test_filling_the_workspace_fails_in_the_users_code_with_a_clear_error(world: World) -> None:
    limited = LocalKernelAgent(world.executor(workspace_max_bytes=8 * 1024**2))
    filler = world.conversation("filler")
    code = fenced("""
import time
for i in range(200):  # bounded: 200 MiB, far past the 8 MiB limit
    with open(f'chunk-{i}.bin', 'wb') as f:
        f.write(b'x' * 1024**2)
    time.sleep(0.02)
print('NOT STOPPED')
""")
    try:
        events = await run(limited, world, filler, code)
        [error] = of(CodeError, events)
        assert error.ename == "WorkspaceFull" and "8 MB" in error.evalue, error
        assert "NOT STOPPED" not in stdout(events)
        used = sum(p.stat().st_size for p in filler.workspace.rglob("chunk-*"))
        assert used < 40 * 1024**2
        # Deleting files makes room again.
        cleanup = "import glob, os\nfor p in glob.glob('chunk-*'): os.remove(p)"
        assert not of(CodeError, await run(limited, world, filler, fenced(cleanup)))
        events = await run(limited, world, filler, fenced("with open('small.txt', 'w') as f: f.write('ok')"))
        assert not of(CodeError, events)
        assert (filler.workspace / "small.txt").read_text() == "ok"
    finally:
        await limited.aclose()


async def test_a_new_session_child_dies_with_its_kernel(world: World) -> None:
    agent = LocalKernelAgent(world.executor())
    runaway = world.conversation("runaway")
    code = fenced("import subprocess\nsubprocess.Popen(['sleep', '300'], start_new_session=True)\nprint('started')")
    try:
        assert stdout(await run(agent, world, runaway, code)) == "started\n"
        session = agent.executor._slots[runaway.id].session
        assert session is not None and session.pid is not None
        sleepers: list[int] = []
        for _ in range(100):  # /proc can lag behind a busy machine: wait for the child to show
            sleepers = [p for p in descendants(session.pid) if _cmdline(p).startswith("sleep")]
            if sleepers:
                break
            await asyncio.sleep(0.05)
        assert sleepers, "the child runs"
        await agent.release(runaway)
        for _ in range(100):
            if not _still_sleeping(sleepers):
                break
            await asyncio.sleep(0.05)
        assert not _still_sleeping(sleepers)
    finally:
        await agent.aclose()


def _still_sleeping(pids: list[int]) -> list[int]:
    return [p for p in pids if _cmdline(p).startswith("sleep")]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def test_tables_figures_and_files_work_as_before(agent: LocalKernelAgent, world: World) -> None:
    analyst = world.conversation("analyst")
    turn = world.turn(analyst)
    (turn.workspace.root / "sales.csv").write_text("region,amount\nnorth,3\nsouth,5\n")
    code = fenced("""
import pandas as pd
import matplotlib.pyplot as plt
sales = pd.read_csv('sales.csv')
sales.plot.bar(x='region', y='amount')
import os
os.makedirs('out', exist_ok=True)
sales.to_csv('out/summary.csv', index=False)
sales
""")
    events = await run(agent, world, analyst, code)
    assert not of(CodeError, events), events
    # The displayed table, and the CSV file written (a table file becomes a dataset too).
    assert {(d.dataset.name, d.dataset.rows) for d in of(DatasetProduced, events)} == {("sales", 2), ("summary", 2)}
    files = {f.name: f for f in of(FileProduced, events)}
    assert set(files) == {"figures/figure-1.png", "out/summary.csv"}
    for produced in files.values():
        assert produced.path.parent.is_relative_to(analyst.workspace)
        assert produced.path.is_file()
    assert files["out/summary.csv"].path.read_text() == "region,amount\nnorth,3\nsouth,5\n"


async def test_code_that_lifts_its_own_file_limit_gets_its_kernel_stopped(world: World) -> None:
    limited = LocalKernelAgent(world.executor(workspace_max_bytes=8 * 1024**2))
    cheater = world.conversation("cheater")
    code = fenced("""
import resource, time
for i in range(300):  # bounded: 300 MiB
    resource.setrlimit(resource.RLIMIT_FSIZE, resource.getrlimit(resource.RLIMIT_FSIZE)[1:] * 2)
    try:
        with open(f'chunk-{i}.bin', 'wb') as f:
            f.write(b'x' * 1024**2)
    except OSError:
        pass
    time.sleep(0.01)
print('NOT STOPPED')
""")
    try:
        events = await run(limited, world, cheater, code)
        assert "NOT STOPPED" not in stdout(events)
        assert any("folder size limit" in n.text for n in of(Notice, events)), events
        used = sum(p.stat().st_size for p in cheater.workspace.rglob("chunk-*"))
        assert used < 200 * 1024**2
    finally:
        await limited.aclose()


SERVE_LIKE = """
import asyncio, dataclasses, sys
from datetime import UTC, datetime
from pathlib import Path
from bot.agents.kernel.agent import LocalKernelAgent, LocalKernelExecutor
from bot.agents.kernel.sandbox import descendants
from bot.config import Settings
from bot.conversation import Conversation, Turn
from bot.datasets.local import LocalDatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.messages import ThreadKey
from bot.workspace import Workspace

async def main():
    root = Path(sys.argv[1])
    settings = dataclasses.replace(Settings.from_env({"DATATHREAD_HOME": str(root)}), kernel_sandbox=True,
                                   warm_kernels=0)
    store = LocalDatasetStore(root / "datasets")
    agent = LocalKernelAgent(LocalKernelExecutor(settings))
    now = datetime.now(UTC)
    conv = Conversation("c", ThreadKey("console", "local", "t", "c"), "s", "u", root / "workspaces" / "c", now, now)
    code = "```python\\nimport subprocess\\nsubprocess.Popen(['sleep', '300'], start_new_session=True)\\n```"
    turn = Turn(conv, code, (), Workspace(conv.workspace).ensure(), ThreadDatasets(store, conv))
    async for _ in agent.run(turn):
        pass
    print(" ".join(map(str, descendants(__import__("os").getpid()))), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_a_killed_bot_leaves_no_kernel_process_behind(world: World, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVE_LIKE, str(tmp_path), stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SOURCE_ROOT)})
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    pids = [int(p) for p in line.split()]
    assert any(_cmdline(p).startswith("sleep") for p in pids), "the kernel and its detached child run"
    proc.kill()  # SIGKILL: no cleanup code runs in the bot
    await proc.wait()
    for _ in range(100):
        if not [p for p in pids if _cmdline(p)]:
            break
        await asyncio.sleep(0.05)
    assert not [p for p in pids if _cmdline(p)], "processes outlived the bot"


async def test_the_time_limit_interrupts_sandboxed_code_and_keeps_variables(world: World) -> None:
    quick = LocalKernelAgent(world.executor(run_timeout=1.5))
    slow = world.conversation("slow")
    try:
        await run(quick, world, slow, fenced("kept = 'yes'"))
        events = await run(quick, world, slow, fenced("import time\ntime.sleep(60)"))
        assert any("Variables are kept" in n.text for n in of(Notice, events)), events
        assert stdout(await run(quick, world, slow, fenced("print(kept)"))) == "yes\n"
    finally:
        await quick.aclose()


async def test_files_other_users_may_not_read_stay_hidden(agent: LocalKernelAgent, world: World) -> None:
    code = fenced("""
import glob
for path in ['/etc/shadow', '/etc/gshadow', *glob.glob('/etc/ssh/ssh_host_*_key')]:
    try:
        print(path, repr(open(path).read()[:10]))
    except OSError as exc:
        print(path, type(exc).__name__)
""")
    out = stdout(await run(agent, world, world.conversation("shadow"), code))
    assert "root:" not in out and "PRIVATE KEY" not in out
    assert "/etc/shadow" in out


async def test_a_home_inside_the_source_checkout_is_hidden_too(world: World) -> None:
    # The default DATATHREAD_HOME is ``.datathread`` in the working directory, often the checkout,
    # which the sandbox shows read-only (the kernel imports our startup code from it).
    home = SOURCE_ROOT / f".test-home-{os.getpid()}"
    home.mkdir()
    try:
        (home / "secret").write_text("host-hmac-secret")
        settings = dataclasses.replace(world.settings, home=home)
        agent = LocalKernelAgent(LocalKernelExecutor(settings))
        inside = World(home, world.store, settings)
        try:
            checkout = [str(SOURCE_ROOT / n) for n in ("pyproject.toml", ".git", "tests")]
            package = str(SOURCE_ROOT / "bot")
            code = fenced(f"import os\nprint(os.path.exists({str(home)!r}), os.path.exists({package!r}),"
                          f" [os.path.exists(p) for p in {checkout!r}])")
            out = stdout(await run(agent, inside, inside.conversation("c"), code))
            assert out == "False True [False, False, False]\n", "only the bot package of the checkout is visible"
        finally:
            await agent.aclose()
    finally:
        shutil.rmtree(home, ignore_errors=True)
