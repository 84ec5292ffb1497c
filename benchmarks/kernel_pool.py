"""The kernel pool under load: N concurrent Slack threads on the local-kernel agent through a real ``datathread serve``.

    python -m benchmarks.kernel_pool [--threads 50] [--messages 2] [--max-kernels N] [--warm-kernels 1]

The local Slack fake runs in this process; ``datathread serve`` runs as a subprocess (loopback only,
sandboxed kernels: ``serve`` refuses to run code without the sandbox) with ``DATATHREAD_MAX_KERNELS``
= ``--max-kernels`` (default: unset, so the server's own default for this machine's memory).
Every thread is started at once: a signed ``app_mention`` and then, right after each
acknowledgement, ``--messages - 1`` plain follow-ups in the thread. Each message's code reads what
the previous one wrote into the conversation's folder (``chain.txt``) and prints it, so a turn run
out of order fails in the thread, and an in-order turn prints ``t<i> step <k> after t<i>:<k-1>``
(a file, not a variable: under load the pool stops idle kernels to make room, and variables go with
them, as the thread is told).

While it runs this process samples: the kernel processes under the server (``/proc``, every
100 ms), the whole process tree's RSS and PSS (``smaps_rollup``, every 500 ms), ``/healthz``
(every 100 ms) and the acknowledgement time of every event POST. Printed: wall time, turns done in
order, peak kernels, peak memory, worst ``/healthz`` and ack times, the "(N ahead)" waiting notices
seen (and how soon after the POST each showed), the load average, and PASS / FAIL for each rule
(``rules``). ``tests/e2e/test_kernel_pool_slack.py`` runs a smaller version and asserts the same rules.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from adapters.local_server import free_port
from adapters.slack.fake_web_api import FakeSlack, Posted, event_body, signed_headers
from adapters.slack.harness import mention, message, until
from bot.agents.kernel.sandbox import descendants
from bot.config import Settings, default_max_kernels

CHANNEL = "C0POOL"
SECRET = "pool-bench-signing-secret"
#: Issue 12: the server stays responsive.
RESPONSIVE_SECONDS = 1.0
#: A waiting turn says so, with its place in the queue ("(N ahead)").
WAITING = re.compile(r"Waiting for a free kernel(?: \((\d+) ahead\))?")
_TREE = Path(__file__).resolve().parent.parent


def code_for(thread: int, step: int) -> str:
    """The code of message ``step`` (1-based) of thread ``thread``: it needs the previous step's file."""
    # The printed marker is built from parts, so only the output (never the code shown) contains it.
    if step == 1:
        body = f"open('chain.txt', 'w').write('t{thread}:1')\nprint('t{thread} step', 1)"
    else:
        body = (f"prev = open('chain.txt').read()\nopen('chain.txt', 'w').write('t{thread}:{step}')\n"
                f"print('t{thread} step', {step}, 'after', prev)")
    return f"```python\nimport time\ntime.sleep(0.3)\n{body}\n```"


def expected(thread: int, step: int) -> str:
    return f"t{thread} step 1" if step == 1 else f"t{thread} step {step} after t{thread}:{step - 1}"


@dataclass
class Samples:
    """What the samplers saw while the threads ran."""

    kernels: list[int] = field(default_factory=list)
    #: Every kernel process seen, to check that none outlives the server.
    kernel_pids: set[int] = field(default_factory=set)
    rss: list[int] = field(default_factory=list)
    pss: list[int] = field(default_factory=list)
    healthz: list[float] = field(default_factory=list)
    healthz_failures: int = 0


@dataclass(frozen=True)
class PoolRun:
    """The figures of one run (times in seconds, memory in bytes)."""

    threads: int
    messages: int
    max_kernels: int
    warm_kernels: int
    wall: float
    #: Per thread, what went wrong with its turns (missing, out of order, an error shown); empty when fine.
    problems: dict[int, list[str]]
    turns_done: int
    peak_kernels: int
    kernel_samples: int
    peak_rss: int
    peak_pss: int
    healthz_worst: float
    healthz_samples: int
    healthz_failures: int
    ack_worst: float
    acks: int
    ack_statuses: tuple[int, ...]
    #: Every "(N ahead)" count seen in a waiting notice, and the worst delay from a thread's first POST to its
    #: waiting notice (issue 12: within a second).
    ahead_counts: tuple[int, ...]
    notice_delay_worst: float
    kernels_left: int
    #: Kernel processes seen over the run (each a start: warm, or after an idle one was stopped to make room).
    kernels_seen: int
    load_before: str
    load_after: str


def _kernel_pids(root: int) -> list[int]:
    """Python kernel processes (not their bwrap wrappers) under ``root``.

    A process a kernel has just forked carries the kernel's command line until it ``exec``s (the
    kernel runs a helper): it is part of that kernel, not another one, so children of kernels are left out."""
    found: dict[int, int] = {}
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            exe = Path(os.readlink(f"/proc/{pid}/exe")).name
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"ipykernel_launcher" in cmdline and exe.startswith("python"):
            found[pid] = parent
    return [pid for pid, parent in found.items() if parent not in found]


def _is_kernel(pid: int) -> bool:
    try:
        return b"ipykernel_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _memory(root: int) -> tuple[int, int]:
    """RSS and PSS (bytes) of ``root`` and every process under it."""
    rss = pss = 0
    for pid in [root, *descendants(root)]:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
    return rss, pss


async def _every(seconds: float, sample: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await sample()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class _Server:
    """``datathread serve`` from ``tree`` on a free loopback port, against the fake."""

    def __init__(self, tree: Path, home: Path, fake: FakeSlack, max_kernels: int | None, warm: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATATHREAD_", "SLACK_", "MICROSOFT_"))}
        env |= {"PYTHONPATH": str(tree), "DATATHREAD_HOME": str(home), "SLACK_BOT_TOKEN": fake.token,
                "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.api_url, "DATATHREAD_WARM_KERNELS": str(warm)}
        if max_kernels is not None:
            env["DATATHREAD_MAX_KERNELS"] = str(max_kernels)
        self.log = home / "serve.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=home)

    async def ready(self, http: aiohttp.ClientSession, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(self.base + "/healthz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"serve not healthy in {within:g} s: {self.log.read_text()[-2000:]}")

    async def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)


def _check_thread(fake: FakeSlack, root_ts: str, thread: int, messages: int) -> tuple[list[str], list[Posted]]:
    """What is wrong with thread ``thread``'s turns (empty when each finished in order), and its turn messages."""
    shown = [(m, fake.shown(m)) for m in fake.thread(CHANNEL, root_ts)]
    problems: list[str] = []
    turns: list[Posted] = []
    for step in range(1, messages + 1):
        marker = f"t{thread} step {step}"
        found = [(m, text) for m, text in shown if marker in text]
        if len(found) != 1:
            problems.append(f"step {step}: {len(found)} messages show it")
            continue
        posted, text = found[0]
        if not _finished(fake, posted):
            problems.append(f"step {step}: not finished")
        if expected(thread, step) not in text:
            problems.append(f"step {step}: out of order or failed: {text[:300]!r}")
        if turns and float(posted.ts) < float(turns[-1].ts):
            problems.append(f"step {step}: shown before step {step - 1}")
        turns.append(posted)
    return problems, turns


def _finished(fake: FakeSlack, message: Posted) -> bool:
    """A turn's message in its final state: no longer streaming, with the Files button it ends on."""
    return not message.streaming and any("datathread:files" in json.dumps(b) for b in message.blocks)


def _done(fake: FakeSlack, roots: list[str], messages: int) -> bool:
    return all(sum(_finished(fake, m) for m in fake.thread(CHANNEL, root)) >= messages for root in roots)


def _notices(fake: FakeSlack, roots: list[str], posts: dict[tuple[int, int], float]) -> tuple[list[int], float]:
    """Every "(N ahead)" count the threads showed, and the worst delay from a thread's first POST to its
    first waiting notice.

    A turn's live message is the k-th message the bot created in its thread for its k-th turn (each
    turn shows one message; files and waiting notices are in or under it), so calls are attributed by
    the order of the creating calls and by the ``ts`` of later edits."""
    thread_of = {root: i for i, root in enumerate(roots)}
    ordered = {i: fake.thread(CHANNEL, root) for i, root in enumerate(roots)}
    step_of = {m.ts: (i, k) for i, ms in ordered.items() for k, m in enumerate(ms, 1)}
    created: dict[int, int] = {}
    counts: list[int] = []
    first: dict[tuple[int, int], float] = {}
    for call in fake.calls:
        key: tuple[int, int] | None = None
        if call.method in ("chat.postMessage", "chat.startStream"):
            thread = thread_of.get(str(call.args.get("thread_ts")))
            if thread is not None:
                created[thread] = created.get(thread, 0) + 1
                key = (thread, created[thread])
        elif call.method in ("chat.appendStream", "chat.stopStream", "chat.update"):
            key = step_of.get(str(call.args.get("ts")))
        else:
            continue
        found = WAITING.findall(json.dumps(call.args, ensure_ascii=False))
        if not found:
            continue
        counts += [int(n) for n in found if n]
        # Only first messages: a follow-up waits for its own thread's previous turn before it needs a kernel.
        if key is not None and key[1] == 1 and key in posts:
            first.setdefault(key, call.at - posts[key])
    return counts, max(first.values(), default=0.0)


async def pool_run(threads: int, messages: int, max_kernels: int | None, warm_kernels: int = 1,
                   tree: Path = _TREE, limit: float = 1800.0) -> PoolRun:
    """Run the load once and measure it (see the module docstring). ``limit``: seconds for all turns to end."""
    fake = await FakeSlack().start()
    fake.keep_uploads = False
    samples = Samples()
    acks: list[float] = []
    statuses: list[int] = []
    posts: dict[tuple[int, int], float] = {}
    load_before = _load()
    effective = max_kernels or default_max_kernels(Settings.from_env({}).kernel_memory_bytes)
    with tempfile.TemporaryDirectory(prefix="dt-pool-") as tmp:
        server = _Server(tree, Path(tmp), fake, max_kernels, warm_kernels)
        stop = asyncio.Event()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                await server.ready(http)
                pid = server.proc.pid

                async def kernels() -> None:
                    found = await asyncio.to_thread(_kernel_pids, pid)
                    samples.kernels.append(len(found))
                    samples.kernel_pids.update(found)

                async def memory() -> None:
                    rss, pss = await asyncio.to_thread(_memory, pid)
                    samples.rss.append(rss)
                    samples.pss.append(pss)

                async def healthz() -> None:
                    began = time.monotonic()
                    try:
                        async with http.get(server.base + "/healthz") as r:
                            await r.read()
                            ok = r.status == 200
                    except aiohttp.ClientError:
                        ok = False
                    samples.healthz.append(time.monotonic() - began)
                    samples.healthz_failures += not ok

                async def post(event: dict[str, object], event_id: str, key: tuple[int, int]) -> None:
                    body = json.dumps(event_body(event, event_id))
                    headers = {"Content-Type": "application/json", **signed_headers(SECRET, body)}
                    began = time.monotonic()
                    posts[key] = began
                    async with http.post(server.base + "/slack/events", data=body.encode(), headers=headers) as r:
                        await r.read()
                        statuses.append(r.status)
                    acks.append(time.monotonic() - began)

                base = int(time.time())
                roots = [f"{base}.{i:03d}000" for i in range(threads)]  # follow-ups: .<i><step>

                async def thread(i: int) -> None:
                    await post(mention(code_for(i, 1), roots[i], channel=CHANNEL), f"Ev{i}-1", (i, 1))
                    for step in range(2, messages + 1):
                        ts = f"{base}.{i:03d}{step:03d}"
                        await post(message(code_for(i, step), ts, channel=CHANNEL, thread_ts=roots[i]),
                                   f"Ev{i}-{step}", (i, step))

                samplers = [asyncio.create_task(_every(0.1, kernels, stop)),
                            asyncio.create_task(_every(0.5, memory, stop)),
                            asyncio.create_task(_every(0.1, healthz, stop))]
                began = time.monotonic()
                await asyncio.gather(*(thread(i) for i in range(threads)))
                with contextlib.suppress(AssertionError):  # out of time: the rules name the missing turns
                    await until(lambda: _done(fake, roots, messages), limit, "every turn")
                wall = time.monotonic() - began
                stop.set()
                await asyncio.gather(*samplers)
        finally:
            stop.set()
            await server.stop()
            await fake.close()
        kernels_left = len([p for p in samples.kernel_pids if _is_kernel(p)])
    problems: dict[int, list[str]] = {}
    turns: dict[int, list[Posted]] = {}
    done = 0
    for i, root in enumerate(roots):
        wrong, turns[i] = _check_thread(fake, root, i, messages)
        done += len(turns[i]) - len([w for w in wrong if "not finished" in w])
        if wrong:
            problems[i] = wrong
    counts, notice_delay = _notices(fake, roots, posts)
    return PoolRun(threads, messages, effective, warm_kernels, wall, problems, done, max(samples.kernels, default=0),
                   len(samples.kernels), max(samples.rss, default=0), max(samples.pss, default=0),
                   max(samples.healthz, default=0.0), len(samples.healthz), samples.healthz_failures,
                   max(acks, default=0.0), len(acks), tuple(sorted(set(statuses))), tuple(counts), notice_delay,
                   kernels_left, len(samples.kernel_pids), load_before, _load())


@dataclass(frozen=True)
class Rule:
    name: str
    ok: bool
    detail: str


def rules(run: PoolRun) -> list[Rule]:
    """Issue 12's rules for the run, each with what was measured."""
    turns = run.threads * run.messages
    return [
        Rule("every turn completes, in order per thread", not run.problems and run.turns_done == turns,
             f"{run.turns_done}/{turns} turns in order" + (f"; wrong: {dict(list(run.problems.items())[:3])}"
                                                          if run.problems else "")),
        Rule(f"never more than DATATHREAD_MAX_KERNELS={run.max_kernels} kernel processes",
             0 < run.peak_kernels <= run.max_kernels, f"peak {run.peak_kernels} in {run.kernel_samples} samples"),
        Rule(f"/healthz under {RESPONSIVE_SECONDS:g} s throughout",
             run.healthz_worst < RESPONSIVE_SECONDS and run.healthz_failures == 0 and run.healthz_samples > 0,
             f"worst {run.healthz_worst * 1000:.0f} ms in {run.healthz_samples} samples, "
             f"{run.healthz_failures} not 200"),
        Rule(f"Slack acks under {RESPONSIVE_SECONDS:g} s", run.ack_worst < RESPONSIVE_SECONDS and
             run.ack_statuses == (200,),
             f"worst {run.ack_worst * 1000:.0f} ms of {run.acks}, statuses {run.ack_statuses}"),
        Rule("waiting turns show how many are ahead", bool(run.ahead_counts) and max(run.ahead_counts) >= 1,
             f"{len(run.ahead_counts)} notices with a count, largest {max(run.ahead_counts, default=0)} ahead"),
        Rule(f"a waiting thread is told within {RESPONSIVE_SECONDS:g} s of its message",
             run.notice_delay_worst < RESPONSIVE_SECONDS, f"worst {run.notice_delay_worst * 1000:.0f} ms"),
        Rule("no kernel process outlives the server", run.kernels_left == 0, f"{run.kernels_left} left"),
    ]


def report(run: PoolRun) -> str:
    mib = 2**20
    lines = [
        f"{run.threads} threads x {run.messages} messages, DATATHREAD_MAX_KERNELS={run.max_kernels}, "
        f"DATATHREAD_WARM_KERNELS={run.warm_kernels}, {os.cpu_count()} CPUs",
        f"wall time: {run.wall:.1f} s ({run.turns_done / run.wall * 60:.0f} turns/min)" if run.wall else "wall: -",
        f"peak kernel processes: {run.peak_kernels} ({run.kernels_seen} kernel processes over the run)",
        f"peak memory of the server's process tree: RSS {run.peak_rss / mib:.0f} MiB, PSS {run.peak_pss / mib:.0f} MiB",
        f"/healthz worst {run.healthz_worst * 1000:.0f} ms; Slack ack worst {run.ack_worst * 1000:.0f} ms",
        f"load average before {run.load_before}, after {run.load_after}",
    ]
    lines += [f"{'PASS' if r.ok else 'FAIL'}  {r.name}: {r.detail}" for r in rules(run)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2)
    parser.add_argument("--max-kernels", type=int, default=None,
                        help="DATATHREAD_MAX_KERNELS for the server (default: the server's own default)")
    parser.add_argument("--warm-kernels", type=int, default=1)
    parser.add_argument("--limit", type=float, default=1800.0, help="seconds for every turn to end")
    args = parser.parse_args()
    run = asyncio.run(pool_run(args.threads, args.messages, args.max_kernels, args.warm_kernels,
                               limit=args.limit))
    print(report(run))
    sys.exit(0 if all(r.ok for r in rules(run)) else 1)


if __name__ == "__main__":
    main()
