"""N concurrent Slack threads through the real adapter against the fake Web API.

    python -m benchmarks.slack_turns --threads 50 [--repeat 3]     (and --threads 200)

Each thread gets one signed ``app_mention``; a scripted agent plays rationale, code, output, a
dataset and a streamed answer with small sleeps. Printed, with issue 16's targets and PASS / FAIL:
the acknowledgement time of the event POST, the time from the POST to the 👀 reaction and to the first
message in the thread (p50 / p95), the first visible sign (whichever came first), Web API calls and
TCP connections per turn, and the peak rate of message edits (``chat.update`` + ``chat.appendStream``)
per message and per workspace, against Slack's limits.

The baseline, measured in the same run, is the naive way: no streaming, a new message and then
``chat.update`` on every agent event (no pacing, no workspace budget), and a new HTTP connection
for every Web API call (slack-sdk's default without a session).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adapters.slack.budget import RateBudget
from adapters.slack.fake_web_api import Call, FakeSlack
from adapters.slack.harness import SlackBot, mention, until
from adapters.slack.surface import SlackSurface
from bot import events as ev
from bot.agents.scripted import ScriptedAgent, Sleep, Step, WriteFile
from bot.conversation import Turn

CHANNEL = "C0BENCH"
EDITS = ("chat.update", "chat.appendStream")
#: Slack: chat.update is Tier 3 (~50/min per workspace); about one edit per second per message.
LIMIT_WORKSPACE_PER_MIN = 50
LIMIT_MESSAGE_PER_MIN = 60
#: Issue 16: the first visible sign of work, p95, by concurrency.
FIRST_SIGN = {50: 0.3, 200: 1.0}
CSV = ("day,region,revenue\n" + "".join(f"2025-01-{d % 28 + 1:02d},r{d % 5},{d * 13.5}\n" for d in range(60))).encode()


def script(turn: Turn) -> list[Step]:
    steps: list[Step] = [ev.Rationale("Loading the sales data. "), Sleep(0.2), ev.CodeStarted("df = load()\ndf.head()")]
    for i in range(6):
        steps += [Sleep(0.1), ev.CodeOutput(f"row {i}\n")]
    steps += [Sleep(0.1), ev.Rationale("Writing the result. "), WriteFile("result.csv", CSV)]
    for i in range(5):
        steps += [Sleep(0.1), ev.FinalText(f"Part {i} of the answer. ")]
    return steps


@dataclass
class NaiveSurface(SlackSurface):
    """Baseline: no pacing (an update per event), always chat.update."""

    live_interval: float = 0.0


@dataclass
class Result:
    acks: list[float]
    reactions: list[float]
    messages: list[float]
    first_sign: list[float]
    calls_per_turn: float
    connections_per_turn: float
    peak_workspace_per_min: float
    peak_message_per_min: float
    wall: float
    #: Per turn: seconds from the event POST to its first progress (the rationale) on screen, and how
    #: many turns showed that progress strictly before the answer's first words.
    first_progress: list[float]
    progress_before_answer: int


def _peak(times: list[float], window: float = 10.0) -> float:
    """Most calls in any ``window`` seconds, as a per-minute rate (the whole run if shorter)."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best * 60.0 / window


async def run(threads: int, naive: bool) -> Result:
    fake = await FakeSlack().start()
    with tempfile.TemporaryDirectory() as home:
        agent = ScriptedAgent(script)
        bot = await SlackBot(fake, Path(home), agent).start()
        if naive:
            bot.adapter.pooled = False
            if bot.adapter.client.session is not None:  # opened when the server started
                await bot.adapter.client.session.close()
                bot.adapter.client.session = None
            bot.adapter.surface_class = NaiveSurface
            bot.adapter.ctx.streaming = False
            bot.adapter.ctx.update_budget = RateBudget(1e9, burst=1e9)
        try:
            stamps = [f"17100{i:05d}.000100" for i in range(threads)]
            sent: dict[str, float] = {}
            acks: list[float] = []
            started = time.monotonic()

            async def one(i: int, ts: str) -> None:
                sent[ts] = time.monotonic()
                status = await bot.send(mention(f"question {i}", ts, channel=CHANNEL), f"EvB{i}")
                acks.append(time.monotonic() - sent[ts])
                assert status == 200, status

            await asyncio.gather(*(one(i, ts) for i, ts in enumerate(stamps)))
            engine = bot.engine
            assert engine is not None

            def done() -> bool:
                return len(agent.turns) == threads and engine.idle

            await until(done, limit=600, what="all turns")
            wall = time.monotonic() - started
            reactions, messages, signs = [], [], []
            for ts in stamps:
                visible = [c.at for c in fake.calls if c.method in ("chat.startStream", "chat.postMessage")
                           and c.args.get("thread_ts") == ts]
                reacted = [c.at for c in fake.calls if c.method == "reactions.add" and c.args.get("timestamp") == ts]
                messages.append(min(visible) - sent[ts])
                if reacted:
                    reactions.append(min(reacted) - sent[ts])
                signs.append(min(visible + reacted) - sent[ts])
            progress, before_answer = _progress(fake, sent)
            api = [c for c in fake.calls if c.method not in ("auth.test", "download")]
            edits = [c for c in api if c.method in EDITS]
            per_message: dict[str, list[float]] = defaultdict(list)
            for c in edits:
                per_message[str(c.args.get("ts"))].append(c.at)
            return Result(
                acks=acks, reactions=reactions, messages=messages, first_sign=signs,
                calls_per_turn=len(api) / threads,
                connections_per_turn=len({c.peer for c in api}) / threads,
                peak_workspace_per_min=_peak([c.at for c in edits]),
                peak_message_per_min=max((_peak(v) for v in per_message.values()), default=0.0),
                wall=wall,
                first_progress=progress,
                progress_before_answer=before_answer,
            )
        finally:
            await bot.stop()
            await fake.close()


def _progress(fake: FakeSlack, sent: dict[str, float]) -> tuple[list[float], int]:
    """First-progress latency per turn (seconds from its event POST to the rationale on screen), and
    how many turns showed their progress strictly before the answer's first words."""
    thread_of = {m.ts: m.thread_ts for m in fake.messages.values()}  # message ts -> thread ts
    seen: dict[tuple[str, str], float] = {}
    for c in sorted(fake.calls, key=lambda c: c.at):
        if c.method in ("chat.startStream", "chat.postMessage"):
            thread = c.args.get("thread_ts")
        elif c.method in ("chat.appendStream", "chat.stopStream", "chat.update"):
            thread = thread_of.get(str(c.args.get("ts")))
        else:
            continue
        if thread not in sent:
            continue
        shown = " ".join(str(c.args.get(k, "")) for k in ("markdown_text", "chunks", "blocks", "text"))  # tasks: chunks
        for what, words in (("progress", "Loading the sales data"), ("answer", "Part 0 of the answer")):
            if words in shown:
                seen.setdefault((str(thread), what), c.at)
    latencies = [seen[(ts, "progress")] - sent[ts] for ts in sent if (ts, "progress") in seen]
    before = sum(1 for ts in sent
                 if (ts, "progress") in seen and seen[(ts, "progress")] < seen.get((ts, "answer"), float("inf")))
    return latencies, before


def _edits_breakdown(calls: list[Call]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for c in calls:
        counts[c.method] += 1
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))


def _p(values: list[float], q: int) -> float:
    """The ``q``-th percentile (nearest rank), in seconds; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _line(label: str, ours: str, naive: str, target: str = "", ok: bool | None = None, note: str = "") -> None:
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    print(f"  {label:<44} {ours:>16} {naive:>16}  {target:<10} {verdict:<4} {note}".rstrip(), flush=True)


def _median_result(results: list[Result]) -> Result:
    """One result whose figures are the medians over runs (percentiles are taken per run first)."""
    def med(values: list[float]) -> float:
        return statistics.median(values)

    def pct(pick: Callable[[Result], list[float]], q: int) -> list[float]:
        return [med([_p(pick(r), q) for r in results])]

    return Result(
        acks=pct(lambda r: r.acks, 95) + pct(lambda r: r.acks, 50),
        reactions=pct(lambda r: r.reactions, 95) + pct(lambda r: r.reactions, 50),
        messages=pct(lambda r: r.messages, 95) + pct(lambda r: r.messages, 50),
        first_sign=pct(lambda r: r.first_sign, 95) + pct(lambda r: r.first_sign, 50),
        calls_per_turn=med([r.calls_per_turn for r in results]),
        connections_per_turn=med([r.connections_per_turn for r in results]),
        peak_workspace_per_min=med([r.peak_workspace_per_min for r in results]),
        peak_message_per_min=med([r.peak_message_per_min for r in results]),
        wall=med([r.wall for r in results]),
        first_progress=pct(lambda r: r.first_progress, 95) + pct(lambda r: r.first_progress, 50),
        progress_before_answer=round(med([r.progress_before_answer for r in results])),
    )


async def main(threads: int, repeat: int) -> None:
    # Not measured: a small round of each first, so that neither pays this process's start-up
    # (imports, matplotlib's background warm-up) inside its figures.
    await run(5, naive=False)
    await run(5, naive=True)
    mine: list[Result] = []
    theirs: list[Result] = []
    for _ in range(repeat):  # interleaved, so that a burst of load elsewhere hits both alike
        mine.append(await run(threads, naive=False))
        theirs.append(await run(threads, naive=True))
    ours, naive = _median_result(mine), _median_result(theirs)
    target = FIRST_SIGN[50] if threads <= 50 else FIRST_SIGN[200]  # 51-200 threads: the 200-thread target
    print(f"(medians of {repeat} interleaved runs of each; p50 / p95 are taken per run)")
    print(f"{threads} concurrent Slack threads, one turn each (scripted agent, fake Web API on 127.0.0.1)")
    _line("", "datathread", "naive")
    for label, a, b in (("acknowledgement (POST answered)", ours.acks, naive.acks),
                        ("👀 reaction", ours.reactions, naive.reactions),
                        ("first message", ours.messages, naive.messages)):
        _line(f"{label}, p50 / p95", f"{_ms(a[1])} / {_ms(a[0])}", f"{_ms(b[1])} / {_ms(b[0])}")
    sign, sign_naive = ours.first_sign[0], naive.first_sign[0]
    _line("first visible sign, p95", _ms(sign), _ms(sign_naive), f"≤ {_ms(target)}", sign <= target,
          f"naive / datathread {sign_naive / sign:.2f}x")
    _line("Web API calls per turn", f"{ours.calls_per_turn:.1f}", f"{naive.calls_per_turn:.1f}",
          note=f"{naive.calls_per_turn / ours.calls_per_turn:.1f}x")
    reuse = ours.calls_per_turn / ours.connections_per_turn
    reuse_naive = naive.calls_per_turn / naive.connections_per_turn
    _line("Web API calls per TCP connection", f"{reuse:.1f}", f"{reuse_naive:.1f}", "≥ 2", reuse >= 2,
          f"{naive.connections_per_turn * threads:,.0f} vs {ours.connections_per_turn * threads:,.0f} connections: "
          "one pooled keep-alive session vs one per call")
    _line("peak edits/min: workspace", f"{ours.peak_workspace_per_min:.0f}", f"{naive.peak_workspace_per_min:.0f}")
    _line("peak edits/min: one message", f"{ours.peak_message_per_min:.0f}", f"{naive.peak_message_per_min:.0f}")
    _line("first progress (rationale) p50 / p95", f"{_ms(ours.first_progress[1])} / {_ms(ours.first_progress[0])}",
          f"{_ms(naive.first_progress[1])} / {_ms(naive.first_progress[0])}")
    _line("turns whose progress showed before the answer", f"{ours.progress_before_answer}/{threads}",
          f"{naive.progress_before_answer}/{threads}")
    _line("wall time", f"{ours.wall:.1f} s", f"{naive.wall:.1f} s")
    print(f"Slack limits: chat.update ~{LIMIT_WORKSPACE_PER_MIN}/min per workspace (appendStream: Tier 4, 100+/min), "
          f"~{LIMIT_MESSAGE_PER_MIN}/min per message")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.threads, args.repeat))
