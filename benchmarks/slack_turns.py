"""N concurrent Slack threads through the real adapter against the fake Web API.

    python -m benchmarks.slack_turns --threads 50

Each thread gets one signed ``app_mention``; a scripted agent plays rationale, code, output, a
dataset and a streamed answer with small sleeps. Printed: time from the event POST to the first
visible message in the thread (p50 / p95), Web API calls per turn, and the peak rate of message
edits (``chat.update`` + ``chat.appendStream``) per message and per workspace, against Slack's
limits. The baseline, measured in the same run, is a naive surface that redraws the message with
``chat.update`` on every agent event (no streaming, no pacing, no workspace budget).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
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
    first_visible: list[float]
    calls_per_turn: float
    peak_workspace_per_min: float
    peak_message_per_min: float
    wall: float
    #: Per turn: seconds from the event POST to its first progress (the rationale) on screen, and
    #: whether that came before the answer's first words (``None`` when it never showed alone).
    first_progress: list[float]
    progress_before_answer: int
    methods: str = ""


def _peak(times: list[float], window: float = 10.0) -> float:
    """Most calls in any ``window`` seconds, as a per-minute rate (the whole run if shorter)."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best * 60.0 / window


async def run(threads: int, naive: bool, agent: bool = False) -> Result:
    fake = await FakeSlack(agent=agent).start()
    with tempfile.TemporaryDirectory() as home:
        bot = await SlackBot(fake, Path(home), ScriptedAgent(script)).start()
        if naive:
            bot.adapter.surface_class = NaiveSurface
            bot.adapter.ctx.streaming = False
            bot.adapter.ctx.update_budget = RateBudget(1e9, burst=1e9)
        try:
            stamps = [f"17100{i:05d}.000100" for i in range(threads)]
            sent: dict[str, float] = {}
            started = time.monotonic()

            async def one(i: int, ts: str) -> None:
                sent[ts] = time.monotonic()
                status = await bot.send(mention(f"question {i}", ts, channel=CHANNEL), f"EvB{i}")
                assert status == 200, status

            await asyncio.gather(*(one(i, ts) for i, ts in enumerate(stamps)))
            engine = bot.engine
            assert engine is not None

            def done() -> bool:
                return len(bot.agent.turns) == threads and engine.idle

            await until(done, limit=600, what="all turns")
            wall = time.monotonic() - started
            firsts = []
            for ts in stamps:
                visible = [c.at for c in fake.calls if c.method in ("chat.startStream", "chat.postMessage")
                           and c.args.get("thread_ts") == ts]
                firsts.append(min(visible) - sent[ts])
            progress, before_answer = _progress(fake, sent)
            api = [c for c in fake.calls if c.method not in ("auth.test", "download")]
            edits = [c for c in api if c.method in EDITS]
            per_message: dict[str, list[float]] = defaultdict(list)
            for c in edits:
                per_message[str(c.args.get("ts"))].append(c.at)
            return Result(
                first_visible=firsts,
                calls_per_turn=len(api) / threads,
                peak_workspace_per_min=_peak([c.at for c in edits]),
                peak_message_per_min=max((_peak(v) for v in per_message.values()), default=0.0),
                wall=wall,
                methods=_edits_breakdown(api),
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
        shown = f"{c.args.get('markdown_text', '')} {c.args.get('blocks', '')} {c.args.get('text', '')}"
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


def _row(name: str, r: Result) -> str:
    q = statistics.quantiles(r.first_visible, n=20) if len(r.first_visible) > 1 else r.first_visible * 19
    return (f"{name:<10} first visible p50 {statistics.median(r.first_visible) * 1000:7.0f} ms  "
            f"p95 {q[18] * 1000:7.0f} ms | calls/turn {r.calls_per_turn:6.1f} | edits/min peak: workspace "
            f"{r.peak_workspace_per_min:7.0f}, one message {r.peak_message_per_min:5.0f} | wall {r.wall:5.1f} s\n"
            f"{'':<10} first progress before the answer in {r.progress_before_answer}/{len(r.first_visible)} turns; "
            f"first progress p50 {_quantile(r.first_progress, 10) * 1000:7.0f} ms  "
            f"p95 {_quantile(r.first_progress, 19) * 1000:7.0f} ms")


def _quantile(values: list[float], twentieth: int) -> float:
    """The ``twentieth``/20 quantile (10: median, 19: p95); NaN without values."""
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=20)[twentieth - 1] if len(values) > 1 else values[0]


async def main(threads: int) -> None:
    ours = await run(threads, naive=False)
    agent = await run(threads, naive=False, agent=True)
    naive = await run(threads, naive=True)
    print(f"{threads} concurrent Slack threads, one turn each (scripted agent, fake Web API on 127.0.0.1)")
    print(_row("datathread", ours))
    print(_row("as agent", agent))
    print(_row("naive", naive))
    for name, r in (("datathread", ours), ("as agent", agent)):
        print(f"{name} calls: {r.methods}")
    print(f"Slack limits: chat.update ~{LIMIT_WORKSPACE_PER_MIN}/min per workspace (appendStream: Tier 4, 100+/min), "
          f"~{LIMIT_MESSAGE_PER_MIN}/min per message")
    ratio = naive.calls_per_turn / ours.calls_per_turn if ours.calls_per_turn else float("inf")
    edits = naive.peak_workspace_per_min / ours.peak_workspace_per_min if ours.peak_workspace_per_min else float("inf")
    print(f"ratio naive/datathread: calls per turn {ratio:.1f}x, peak workspace edit rate {edits:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=50)
    asyncio.run(main(parser.parse_args().threads))
