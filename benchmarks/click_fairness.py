"""One user's clicks against another user's answer, with Slack streaming unavailable.

    python -m benchmarks.click_fairness --clicks 90 --turns 40

1. Alice pages a dataset with ``--clicks`` quick Next/Prev clicks while Bob asks a trivial question
   in another thread: printed is Bob's answer time (his POST to his turn's final state on screen),
   against the same question asked with no clicks.
   Bob's turn shows a rationale, thinks 2 s, then answers: his first progress is timed too.
2. ``--turns`` concurrent turns (the benchmark's usual scripted turn): answer time p50 / p95.

Everything runs through the real Slack adapter against the fake Web API, with ``chat.startStream``
refused so every live update and turn end goes through ``chat.update``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from adapters.slack.fake_web_api import FakeSlack, Posted
from adapters.slack.harness import SlackBot, mention, until
from bot import events as ev
from bot.agents.scripted import ScriptedAgent, Sleep, Step, WriteFile
from bot.conversation import Turn

CHANNEL = "C0FAIR"
CSV = ("id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(400))).encode()


def script(turn: Turn) -> list[Step]:
    if "table" in turn.text:
        return [WriteFile("sales.csv", CSV), ev.FinalText("Here it is.")]
    if "trivial" in turn.text:
        return [ev.Rationale("Easy one. "), Sleep(2.0), ev.FinalText("The answer is 4.")]
    steps: list[Step] = [ev.Rationale("Loading the sales data. "), Sleep(0.2), ev.CodeStarted("df = load()")]
    for i in range(6):
        steps += [Sleep(0.1), ev.CodeOutput(f"row {i}\n")]
    return [*steps, Sleep(0.1), ev.FinalText("Done: 42.")]


def ended(fake: FakeSlack, ts: str, words: str) -> bool:
    """The turn's final state is on screen: its words and the end-of-turn Files button."""
    return any(words in fake.shown(m) and "datathread:files" in json.dumps(m.blocks) for m in fake.thread(CHANNEL, ts))


def _click(m: Posted, label: str) -> dict[str, object] | None:
    for b in m.blocks:
        for e in b.get("elements", ()) if b["type"] == "actions" else ():
            if label in (e.get("text") or {}).get("text", ""):
                return {"type": "button", "action_id": e["action_id"], "block_id": "b", "value": e["value"]}
    return None


async def bob_answer(clicks: int) -> tuple[float, float]:
    """Bob's (first progress, answer) times, in seconds from his message, after Alice's clicks."""
    fake = await FakeSlack().start()
    fake.fail.stream_start_error = "method_not_supported_for_channel_type"
    with tempfile.TemporaryDirectory() as home:
        bot = await SlackBot(fake, Path(home), ScriptedAgent(script)).start()
        try:
            alice = "1720000000.000100"
            await bot.send(mention("make a table", alice, channel=CHANNEL), "EvAlice")
            await until(lambda: ended(fake, alice, "Here it is"), limit=120, what="Alice's table")
            page = next(m for m in fake.thread(CHANNEL, alice) if any(b["type"] == "table" for b in m.blocks))
            await asyncio.sleep(3)  # let the budget refill: both runs start from the same state
            for i in range(clicks):  # quick clicks: as fast as Slack delivers them, alternating
                action = _click(page, "Next" if i % 2 == 0 else "Prev") or _click(page, "Next")
                assert action is not None
                await bot.click(action, user="UALICE", channel=CHANNEL, message_ts=page.ts, thread_ts=alice)
            bob, sent = "1720000001.000100", time.monotonic()
            await bot.send(mention("a trivial question", bob, user="UBOB", channel=CHANNEL), "EvBob")
            await until(lambda: any("Easy one" in fake.shown(m) for m in fake.thread(CHANNEL, bob)), limit=600,
                        what="Bob's first progress")
            progress = time.monotonic() - sent
            await until(lambda: ended(fake, bob, "The answer is 4."), limit=600, what="Bob's answer")
            return progress, time.monotonic() - sent
        finally:
            await bot.stop()
            await fake.close()


async def concurrent_turns(turns: int) -> list[float]:
    fake = await FakeSlack().start()
    fake.fail.stream_start_error = "method_not_supported_for_channel_type"
    with tempfile.TemporaryDirectory() as home:
        bot = await SlackBot(fake, Path(home), ScriptedAgent(script)).start()
        try:
            stamps = [f"17300{i:05d}.000100" for i in range(turns)]
            sent = {ts: time.monotonic() for ts in stamps}
            await asyncio.gather(*(bot.send(mention(f"question {i}", ts, channel=CHANNEL), f"EvT{i}")
                                   for i, ts in enumerate(stamps)))
            answered: dict[str, float] = {}

            def all_ended() -> bool:
                for ts in stamps:
                    if ts not in answered and ended(fake, ts, "Done: 42."):
                        answered[ts] = time.monotonic() - sent[ts]
                return len(answered) == turns

            await until(all_ended, limit=900, what="every answer")
            return sorted(answered.values())
        finally:
            await bot.stop()
            await fake.close()


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


async def main(clicks: int, turns: int) -> None:
    quiet = await bob_answer(0)
    spammed = await bob_answer(clicks)
    times = await concurrent_turns(turns)
    print(json.dumps({"bob_progress_s_no_clicks": round(quiet[0], 2), "bob_answer_s_no_clicks": round(quiet[1], 2),
                      f"bob_progress_s_{clicks}_clicks": round(spammed[0], 2),
                      f"bob_answer_s_{clicks}_clicks": round(spammed[1], 2),
                      f"{turns}_turns_answer_p50_s": round(statistics.median(times), 2),
                      f"{turns}_turns_answer_p95_s": round(p95(times), 2)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=90)
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(main(args.clicks, args.turns))
