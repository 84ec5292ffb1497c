"""The AWS mode on this machine: turns per minute through 1 and 3 replicas, page latency from S3
(moto on loopback) cold and warm against the local store, and AWS calls per turn and per click.

    python -m benchmarks.scale_out --turns 60

Replicas are real Slack adapters + engines in this process (``adapters.slack.harness``) sharing
moto's server and the fake Slack, and then real ``datathread serve`` processes
(``adapters.slack.serve_cluster``, ``DATATHREAD_AGENT=scripted``) on the same; the scripted agent
answers at once, so the turn rate measures
datathread's own path (intake, SQS, DynamoDB, workspace mirror, Slack calls), not an agent. moto
on loopback answers in about a millisecond: real AWS adds ~5-20 ms per call, which the call counts
below let you estimate.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import secrets
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapters.slack.fake_web_api import FakeSlack
from adapters.slack.harness import SlackBot, mention, until
from adapters.slack.serve_cluster import ServeCluster
from bot import events as ev
from bot.agents.scripted import ScriptedAgent, Step
from bot.aws.clients import AwsClients, CallCounter
from bot.aws.settings import AwsSettings
from bot.aws.setup import ensure_resources
from bot.aws.stores import build_aws_stores
from bot.composition import build_engine
from bot.config import Settings
from bot.conversation import Turn
from bot.datasets.dynamo_catalog import DynamoCatalog
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import DatasetStore
from bot.datasets.s3 import S3DatasetStore
from bot.intents import ShowPage
from bot.messages import ThreadKey

CHANNEL = "C0CHAN"


def start_moto() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def aws_env(url: str, aws: AwsSettings) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_DYNAMODB": url, "AWS_ENDPOINT_URL_S3": url, "AWS_ENDPOINT_URL_SQS": url,
            "DATATHREAD_STORE": "aws", "DATATHREAD_SECRET": secrets.token_hex(16),
            "DATATHREAD_DYNAMODB_TABLE": aws.table, "DATATHREAD_S3_BUCKET": aws.bucket,
            "DATATHREAD_QUEUE_URL": aws.queue_url}


class CountingBot(SlackBot):
    """``SlackBot`` whose AWS clients count their calls."""

    def __init__(self, *args: Any, counter: CallCounter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counter = counter

    async def start(self) -> CountingBot:
        from aiohttp import web
        from aiohttp.test_utils import TestServer

        from adapters.slack.wiring import ADAPTER_KEY, mount

        settings = Settings.from_env(self.env)
        self.engine = build_engine(settings, agent=self.agent, env=self.env,
                                   aws_clients=AwsClients.create(self.env, self.counter))
        app = web.Application()
        assert await mount(app, self.engine, settings, self.env)
        self.adapter = app[ADAPTER_KEY]  # type: ignore[assignment]
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        import aiohttp

        self.http = aiohttp.ClientSession()
        self.engine.start()
        return self


def script(turn: Turn) -> list[Step]:
    return [ev.FinalText(f"answer {turn.text}")]


async def turns_per_minute(url: str, replicas: int, turns: int, root: Path) -> tuple[float, dict[str, float]]:
    aws = AwsSettings(*(f"bench-{secrets.token_hex(4)}",) * 2, f"{url}/123456789012/bench-{secrets.token_hex(4)}.fifo")
    env = aws_env(url, aws)
    ensure_resources(AwsClients.create(env), aws)
    fake = await FakeSlack().start()
    counter = CallCounter()
    bots = [await CountingBot(fake, root / f"r{replicas}-{i}", ScriptedAgent(script), counter=counter, **env).start()
            for i in range(replicas)]
    try:
        for bot in bots:  # learn the bot identity before the clock starts
            await bot.adapter.start()
        counter.calls.clear()
        began = time.perf_counter()
        for n in range(turns):
            await bots[n % replicas].send(mention(f"q{n}", f"1800000{n:03d}.000100"), f"Ev{n}")

        def answered() -> bool:
            return sum("answer q" in fake.shown(m) and not m.streaming for m in fake.messages.values()) >= turns

        await until(answered, limit=600, what="every answer")
        took = time.perf_counter() - began
        per_turn = {k: v / turns for k, v in counter.by_service().items()}
    finally:
        for bot in bots:
            await bot.stop()
        await fake.close()
    return turns / took * 60, per_turn


async def serve_turns_per_minute(url: str, replicas: int, turns: int, root: Path) -> float:
    """The same turns through ``replicas`` real ``datathread serve`` processes (one process per core at most
    helps: this machine has 2)."""
    aws = AwsSettings(*(f"bench-{secrets.token_hex(4)}",) * 2, f"{url}/123456789012/bench-{secrets.token_hex(4)}.fifo")
    env = aws_env(url, aws)
    ensure_resources(AwsClients.create(env), aws)
    folder = root / f"serve{replicas}"
    folder.mkdir()
    (folder / "script.json").write_text('[{"steps": [{"final": "answer {text}"}]}]')
    fake = await FakeSlack().start()
    cluster = ServeCluster(fake, folder, {**env, "DATATHREAD_AGENT": "scripted",
                                          "DATATHREAD_AGENT_SCRIPT": str(folder / "script.json")}, count=replicas)
    try:
        await cluster.start()
        for i in range(replicas):  # each replica learns the bot identity before the clock starts
            await cluster.send(i, mention("warm", f"1900000{i:03d}.000100"), f"EvW{i}")
        await until(lambda: sum("answer warm" in fake.shown(m) for m in fake.messages.values()) >= replicas,
                    limit=60, what="the warm-up answers")
        fake.messages.clear()
        began = time.perf_counter()
        for n in range(turns):
            await cluster.send(n % replicas, mention(f"q{n}", f"1800000{n:03d}.000100"), f"Ev{n}")

        def answered() -> bool:
            return sum("answer q" in fake.shown(m) and not m.streaming for m in fake.messages.values()) >= turns

        await until(answered, limit=600, what="every answer")
        return turns / (time.perf_counter() - began) * 60
    finally:
        await cluster.stop()
        await fake.close()


async def timed(call: Callable[[], Coroutine[Any, Any, Any]], repeat: int) -> float:
    """Median milliseconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def page_latency(url: str, rows: int, root: Path) -> dict[str, Any]:
    aws = AwsSettings(*(f"bench-{secrets.token_hex(4)}",) * 2, f"{url}/123456789012/x.fifo", "data/")
    env = aws_env(url, aws)
    ensure_resources(AwsClients.create(env), aws)
    frame = pd.DataFrame({"id": np.arange(rows), "value": np.random.default_rng(1).normal(size=rows),
                          "name": [f"row {i}" for i in range(rows)]})
    key = ThreadKey("bench", "T", "C", "1")
    counter = CallCounter()

    def s3_store(n: int) -> S3DatasetStore:
        clients = AwsClients.create(env, counter)
        return S3DatasetStore(clients.s3, aws.bucket, aws.prefix, DynamoCatalog(clients.dynamodb, aws.table),
                              root / f"cache{n}")

    out: dict[str, Any] = {}
    for label, make in (("local", lambda n: LocalDatasetStore(root / "local")), ("s3", s3_store)):
        first: DatasetStore = make(0)
        meta = await first.register_frame(frame, name="bench", thread=key, owner="U")
        await first.aclose()
        cold, warm, calls = [], [], []
        for trial in range(5):  # each trial is a fresh replica: nothing cached
            store = make(trial + 1)
            number = 1 + trial * (rows // 20 // 5)
            counter.calls.clear()
            t = time.perf_counter()
            await store.page(meta.id, number, 20)
            cold.append((time.perf_counter() - t) * 1000)
            calls.append(sum(counter.calls.values()))
            warm.append(await timed(functools.partial(store.page, meta.id, number + 1, 20), 20))
            await store.aclose()
        out[label] = {"cold_ms": statistics.median(cold), "warm_ms": statistics.median(warm),
                      "cold_calls": statistics.median(calls)}
    return out


async def click_calls(url: str, root: Path) -> dict[str, float]:
    """AWS calls of one page click on a replica that has the dataset's index cached, and on a cold one."""
    aws = AwsSettings(*(f"bench-{secrets.token_hex(4)}",) * 2, f"{url}/123456789012/bench-{secrets.token_hex(4)}.fifo")
    env = aws_env(url, aws)
    ensure_resources(AwsClients.create(env), aws)
    fake = await FakeSlack().start()
    counter = CallCounter()
    bot = await CountingBot(fake, root / "click", ScriptedAgent(script), counter=counter, **env).start()
    try:
        ts = "1800009999.000100"
        thread = ThreadKey("slack", "T0001", CHANNEL, ts)
        await bot.send(mention("hi", ts), "EvC")
        await until(lambda: any("answer hi" in fake.shown(m) for m in fake.thread(CHANNEL, ts)), what="answer")
        assert bot.engine is not None
        # Registered as another replica's agent turn would: a store of its own on the same table and bucket.
        other = build_aws_stores(Settings.from_env({**env, "DATATHREAD_HOME": str(root / "other")}), env)
        meta = await other.datasets.register_frame(pd.DataFrame({"a": range(50_000)}), name="d", thread=thread,
                                                   owner="UALICE")
        await other.datasets.aclose()
        result = {}
        for label, page in (("page click (index cached)", 2), ("another page click (batch cached)", 3)):
            token = bot.engine.seal(thread, ShowPage(meta.id, page))
            before = len(fake.calls)
            counter.calls.clear()
            await bot.click({"action_id": "datathread:page:0", "value": token}, user="UALICE", channel=CHANNEL,
                            message_ts=ts, thread_ts=ts)

            def paged(b: int = before) -> bool:
                return len(fake.calls) > b

            await until(paged, what="the page")
            await asyncio.sleep(0.2)
            result[label] = dict(counter.calls)
        return result  # type: ignore[return-value]
    finally:
        await bot.stop()
        await fake.close()


async def main(turns: int, rows: int) -> None:
    server, url = start_moto()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for n in (1, 3):
                rate, per_turn = await turns_per_minute(url, n, turns, root)
                calls = ", ".join(f"{k} {v:.1f}" for k, v in sorted(per_turn.items()))
                print(f"{n} replica(s): {rate:,.0f} turns/min; AWS calls per turn: {calls}")
            for n in (1, 3):
                rate = await serve_turns_per_minute(url, n, turns, root)
                print(f"{n} real serve process(es): {rate:,.0f} turns/min")
            for label, got in (await page_latency(url, rows, root)).items():
                print(f"page of 20 rows from {label} ({rows:,} rows): cold {got['cold_ms']:.1f} ms "
                      f"({got['cold_calls']:.0f} AWS calls), warm {got['warm_ms']:.2f} ms")
            for label, counts in (await click_calls(url, root)).items():
                print(f"{label}: {counts}")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.rows))
