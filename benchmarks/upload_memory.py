"""Peak memory of the server while agents post large files into Slack threads.

    python -m benchmarks.upload_memory --files 3 --size-mb 1024

Each of ``--files`` threads gets one signed ``app_mention``; its scripted agent makes a sparse file
of ``--size-mb`` MiB (no disk used) and the engine posts it into the thread through the real
Slack adapter and the fake Web API, which counts the bytes without keeping them. Printed as JSON:
the process's peak RSS before the first event and after every file arrived whole, and the growth.
Run it in a process of its own: peak RSS (``ru_maxrss``) only ever grows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

from adapters.slack.fake_web_api import FakeSlack
from adapters.slack.harness import SlackBot, mention, until
from bot import events as ev
from bot.agents.scripted import ScriptedAgent, Step
from bot.conversation import Turn

CHANNEL = "C0BENCH"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sparse_file_script(size: int) -> ScriptedAgent:
    def script(turn: Turn) -> list[Step]:
        path = turn.workspace.ensure().resolve(f"big-{turn.conversation.key.thread}.bin")
        with path.open("wb") as f:
            f.truncate(size)  # sparse: one "line" of zeros, no disk used
        return [ev.FileProduced(path, path.name, size), ev.FinalText("done")]
    return ScriptedAgent(script)


async def measure(files: int, size_mb: float, max_post_mb: float) -> dict[str, float]:
    size = int(size_mb * 1024 * 1024)
    fake = await FakeSlack().start()
    fake.keep_uploads = False
    with tempfile.TemporaryDirectory() as home:
        bot = await SlackBot(fake, Path(home), sparse_file_script(size),
                             DATATHREAD_MAX_POST_MB=str(max_post_mb)).start()
        try:
            before = peak_rss_mb()
            started = time.monotonic()
            await asyncio.gather(*(bot.send(mention("make a big file", f"1700009{i:03d}.000100", channel=CHANNEL),
                                            f"EvBig{i}") for i in range(files)))
            await until(lambda: sum(1 for f in fake.shared(CHANNEL) if f.size == size) == files,
                        limit=600, what="every file posted whole")
            return {"files": files, "size_mb": size_mb, "seconds": round(time.monotonic() - started, 1),
                    "peak_rss_before_mb": round(before), "peak_rss_after_mb": round(peak_rss_mb()),
                    "growth_mb": round(peak_rss_mb() - before)}
        finally:
            await bot.stop()
            await fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--size-mb", type=float, default=1024)
    parser.add_argument("--max-post-mb", type=float, default=100_000, help="DATATHREAD_MAX_POST_MB for the run")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.files, args.size_mb, args.max_post_mb))))


if __name__ == "__main__":
    main()
