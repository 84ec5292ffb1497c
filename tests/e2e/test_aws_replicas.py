"""Several replicas (real Slack adapter + engine each, in this process) sharing moto's DynamoDB,
S3 and SQS FIFO and one fake Slack: a turn may be taken in by one replica and run by another.

Every replica has its own home folder (its own kernels and caches); they share only AWS. Retries
spread over replicas, a Stop crossing replicas and ``kill -9`` are tested with real ``serve``
processes in ``test_aws_serve_cluster.py``; here, what needs a hand on the inside: a replica that
died at a chosen moment of a turn is played by a turn record that replica would have left.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import events as ev
from bot.aws.setup import ensure_resources
from bot.aws.turn_queue import DEAD_LETTER, INTERRUPTED, QueuedTurn
from bot.aws.turn_records import TurnRecords
from bot.conversation import Turn
from bot.intents import ListFiles, ShowPage
from bot.messages import IncomingMessage, ThreadKey
from bot.storage.dynamodb import utc_now
from tests.fakes import moto_aws
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, Step, WriteFile
from tests.fakes.slack_api import FakeSlack
from tests.slack_harness import SlackBot, mention, message, until

pytestmark = pytest.mark.e2e
CHANNEL = "C0CHAN"


def script(turn: Turn) -> list[Step]:
    if "slow" in turn.text:
        return [ev.Rationale("Working on it."), Sleep(30), ev.FinalText("slow done")]
    if turn.text == "make files":
        rows = "\n".join(f"r{i:02d},{i}" for i in range(50))
        return [WriteFile("sales.csv", f"name,value\n{rows}\n".encode()), ev.FinalText("made them")]
    if turn.text == "check":
        seen = turn.workspace.resolve("sales.csv").exists()
        return [ev.FinalText("I see sales.csv" if seen else "sales.csv is missing")]
    if turn.text.startswith("step"):
        return [Sleep(4 if turn.text == "step1" else 0.3), ev.FinalText(f"answer to {turn.text}")]
    return [ev.FinalText(f"answer to {turn.text}")]




@pytest.fixture
async def replicas(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[list[SlackBot]]:
    moto = moto_aws.shared()
    aws = moto.fresh_settings()
    ensure_resources(moto.clients(), aws)
    env = moto.mode_env(aws)
    bots = []
    for i in range(3):
        bot = await SlackBot(fake, tmp_path / f"replica{i}", ScriptedAgent(script), **env).start()
        assert bot.engine is not None and bot.engine.intake is not None
        bot.engine.start()
        bots.append(bot)
    yield bots
    for bot in bots:
        await bot.stop()


def queued(bots: list[SlackBot]) -> int:
    """Messages in the turn queue, visible or taken by a replica (0: every turn was deleted)."""
    got = moto_aws.shared().clients().sqs.get_queue_attributes(
        QueueUrl=bots[0].env["DATATHREAD_QUEUE_URL"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(got["ApproximateNumberOfMessages"]) + int(got["ApproximateNumberOfMessagesNotVisible"])


def answers(fake: FakeSlack, ts: str, text: str) -> int:
    return sum(text in fake.shown(m) for m in fake.thread(CHANNEL, ts))


def ran_on(bots: list[SlackBot], text: str) -> list[int]:
    return [i for i, b in enumerate(bots) for t in b.agent.turns if t.text == text]  # type: ignore[attr-defined]


async def test_a_threads_messages_run_in_order_even_when_they_reach_different_replicas(
        replicas: list[SlackBot], fake: FakeSlack) -> None:
    ts = "1700000200.000100"
    steps = ["step1", "step2", "step3", "step4"]
    assert await replicas[0].send(mention(steps[0], ts), "EvO1") == 200
    await until(lambda: len(ran_on(replicas, "step1")) == 1, limit=20, what="the first turn to start")
    # moto's long poll keeps the busy message groups it saw when it began, so a poll that began before
    # step1 was taken could hand out step2 (real SQS never does): let every poll in flight be younger.
    await asyncio.sleep(1.5)
    sqs = moto_aws.shared().clients().sqs
    url = replicas[0].env["DATATHREAD_QUEUE_URL"]

    def waiting() -> int:
        got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(got["Attributes"]["ApproximateNumberOfMessages"])

    for i, text in enumerate(steps[1:], start=1):  # sent while the first still runs, each to another replica
        assert await replicas[i % 3].send(message(text, f"17000002{i:02d}.000200", thread_ts=ts), f"EvO{i + 1}") == 200
        # Two deliveries to two replicas have no order of their own: send the next once this one is queued.
        await until(lambda i=i: waiting() == i, what=f"message {i + 1} in the queue")
    await until(lambda: all(answers(fake, ts, f"answer to {s}") == 1 for s in steps), limit=30, what="every answer")
    shown = [fake.shown(m)[:80] for m in fake.thread(CHANNEL, ts)]
    assert sorted(t.text for b in replicas for t in b.agent.turns) == steps, shown  # type: ignore[attr-defined]
    finals = [m for m in fake.thread(CHANNEL, ts) if "answer to step" in fake.shown(m)]
    assert [next(s for s in steps if f"answer to {s}" in fake.shown(m)) for m in finals] == steps  # one at a time


async def test_a_turn_that_keeps_failing_ends_in_the_dead_letter_queue_with_a_note_in_its_thread(
        replicas: list[SlackBot], fake: FakeSlack) -> None:
    ts = "1700000400.000100"
    failures = [3]  # the first 3 receives fail, wherever they land (a bug on the turn's path)
    for bot in replicas:
        intake = bot.engine.intake  # type: ignore[union-attr]

        def flaky(m: IncomingMessage, args: Mapping[str, Any], real: Any = intake._rebuilders["slack"]) -> Any:  # type: ignore[union-attr]
            if m.thread.thread == ts and failures[0] > 0:
                failures[0] -= 1
                raise RuntimeError("simulated bug")
            return real(m, args)

        intake.register("slack", flaky)  # type: ignore[union-attr]
    assert await replicas[0].send(mention("doomed", ts), "EvD1") == 200
    await until(lambda: answers(fake, ts, DEAD_LETTER[:40]) >= 1, limit=40, what="the dead-letter note")
    assert ran_on(replicas, "doomed") == []


async def test_files_and_datasets_made_on_one_replica_are_the_same_on_every_replica(
        replicas: list[SlackBot], fake: FakeSlack) -> None:
    ts = "1700000500.000100"
    thread = ThreadKey("slack", "T0001", CHANNEL, ts)
    assert await replicas[0].send(mention("make files", ts), "EvF1") == 200
    await until(lambda: answers(fake, ts, "made them") == 1, limit=20, what="the first turn")
    [maker] = ran_on(replicas, "make files")
    await replicas[maker].engine.intake.aclose()  # type: ignore[union-attr]  # the next turn runs elsewhere
    assert await replicas[maker].send(message("check", "1700000501.000100", thread_ts=ts), "EvF2") == 200
    await until(lambda: len(ran_on(replicas, "check")) == 1 and (
        answers(fake, ts, "sales.csv is missing") + answers(fake, ts, "I see sales.csv")) == 1,
        limit=20, what="the second turn")
    assert ran_on(replicas, "check") != [maker] and answers(fake, ts, "I see sales.csv") == 1

    for bot in replicas:  # the Files button, clicked on each replica
        before = len(fake.ephemeral)
        token = bot.engine.seal(thread, ListFiles())  # type: ignore[union-attr]
        assert await bot.click({"action_id": "datathread:files:0", "value": token}, user="UALICE",
                               channel=CHANNEL, message_ts=ts, thread_ts=ts) == 200
        await until(lambda before=before: len(fake.ephemeral) > before, what="the files list")
        assert "sales.csv" in json.dumps(fake.ephemeral[-1])

    [meta] = await replicas[0].engine.datasets.list(thread)  # type: ignore[union-attr]
    table = next(m for m in fake.thread(CHANNEL, ts) if "r00" in fake.shown(m))
    for n, bot in enumerate(replicas):  # page 2, then 3, then 2 again: each click served by another replica
        page = (2, 3, 2)[n]
        token = bot.engine.seal(thread, ShowPage(meta.id, page))  # type: ignore[union-attr]
        assert await bot.click({"action_id": "datathread:page:0", "value": token}, user="UALICE",
                               channel=CHANNEL, message_ts=table.ts, thread_ts=ts) == 200
        first_row = f"r{(page - 1) * 20:02d}"
        await until(lambda first_row=first_row: first_row in fake.shown(fake.messages[(CHANNEL, table.ts)]),
                    what=f"page {page} from replica {n}")


def dead_replica(bots: list[SlackBot]) -> TurnRecords:
    """The turn records a replica that has since died kept (another replica id, the same table; its
    last heartbeat an hour ago, long past ``dead_after``)."""
    return TurnRecords(moto_aws.shared().clients().dynamodb, bots[0].env["DATATHREAD_DYNAMODB_TABLE"], "dead0replica",
                       clock=lambda: utc_now() - timedelta(hours=1))


def turn_record(bots: list[SlackBot], delivery: str) -> dict[str, Any] | None:
    """The turn record of ``delivery`` as DynamoDB has it now."""
    got = moto_aws.shared().clients().dynamodb.get_item(
        TableName=bots[0].env["DATATHREAD_DYNAMODB_TABLE"], ConsistentRead=True,
        Key={"pk": {"S": f"turn#{delivery}"}, "sk": {"S": "turn"}})
    return got.get("Item")


def delivery_of(ts: str) -> tuple[str, ThreadKey]:
    thread = ThreadKey("slack", "T0001", CHANNEL, ts)
    return QueuedTurn(IncomingMessage(thread, "UALICE", "", event_id=f"{CHANNEL}:{ts}"), {}).delivery, thread


async def test_a_turn_whose_replica_died_before_showing_anything_is_run_once_more_and_answered_once(
        replicas: list[SlackBot], fake: FakeSlack) -> None:
    ts = "1700000600.000100"
    delivery, thread = delivery_of(ts)
    assert (await dead_replica(replicas).begin(delivery, thread)).status == "fresh"  # ... then it died
    assert await replicas[0].send(mention("q-rerun", ts), f"{CHANNEL}:{ts}") == 200
    await until(lambda: answers(fake, ts, "answer to q-rerun") == 1, limit=20, what="the re-run's answer")
    await until(lambda: queued(replicas) == 0, limit=10, what="the message deleted: no receive can follow")
    assert len(fake.thread(CHANNEL, ts)) == 1 and answers(fake, ts, INTERRUPTED) == 0
    assert len(ran_on(replicas, "q-rerun")) == 1


async def test_a_turn_whose_re_run_died_before_showing_anything_too_gets_the_interrupted_note(
        replicas: list[SlackBot], fake: FakeSlack) -> None:
    ts = "1700000700.000100"
    delivery, thread = delivery_of(ts)
    dead = dead_replica(replicas)
    await dead.begin(delivery, thread)
    assert await dead.claim_rerun(delivery, thread)  # the re-run, on a replica that died as well
    assert not await dead.claim_rerun(delivery, thread)  # only one re-run, ever
    assert await replicas[1].send(mention("q-twice", ts), f"{CHANNEL}:{ts}") == 200
    await until(lambda: answers(fake, ts, INTERRUPTED) == 1, limit=20, what="the interrupted note")
    await until(lambda: queued(replicas) == 0, limit=10, what="the message deleted: no receive can follow")
    assert len(fake.thread(CHANNEL, ts)) == 1 and ran_on(replicas, "q-twice") == []


async def test_a_turn_whose_replica_died_after_answering_is_not_answered_again(
        replicas: list[SlackBot], fake: FakeSlack) -> None:
    ts = "1700000800.000100"
    delivery, thread = delivery_of(ts)
    dead = dead_replica(replicas)
    await dead.begin(delivery, thread)
    await dead.note_live(delivery, ("1700000800.999999",))
    await dead.answered(delivery)  # the turn ended in its thread; the replica died before deleting the message
    assert await replicas[2].send(mention("q-done", ts), f"{CHANNEL}:{ts}") == 200

    def closed_by() -> str:
        got = turn_record(replicas, delivery)
        return got["replica"]["S"] if got else ""

    await until(lambda: closed_by() not in ("", "dead0replica"), limit=20, what="a live replica to receive the message")
    await until(lambda: queued(replicas) == 0, limit=5, what="the message deleted")
    assert fake.thread(CHANNEL, ts) == [] and ran_on(replicas, "q-done") == []


async def test_a_turn_still_running_on_a_live_replica_past_its_lease_is_left_to_it(
        replicas: list[SlackBot], fake: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    """A replica that stalled past its lease still runs its turn (its heartbeat is recent): the replica
    that receives the message meanwhile neither runs it again nor ends its live message, and deletes
    the message once the turn has ended."""
    ts = "1700000850.000100"
    live_ts = "1700000850.999999"
    delivery, thread = delivery_of(ts)
    stalled = TurnRecords(moto_aws.shared().clients().dynamodb, replicas[0].env["DATATHREAD_DYNAMODB_TABLE"],
                          "stalled0replica")  # its clock is now: a fresh heartbeat
    assert (await stalled.begin(delivery, thread)).status == "fresh"
    await stalled.note_live(delivery, (live_ts,))
    caplog.set_level(logging.WARNING, logger="bot.aws.turn_queue")
    assert await replicas[0].send(mention("q-stalled", ts), f"{CHANNEL}:{ts}") == 200
    await until(lambda: any("still running on another replica" in r.getMessage() for r in caplog.records),
                limit=20, what="a replica to receive the message and leave the turn to its runner")
    await stalled.answered(delivery)  # the stalled replica ends its turn after all
    await stalled.finish(delivery, thread)
    await until(lambda: queued(replicas) == 0, limit=20, what="the message deleted on a later receive")
    assert fake.thread(CHANNEL, ts) == [] and ran_on(replicas, "q-stalled") == []
    assert not [c for c in fake.calls if live_ts in json.dumps(c.args, default=str)]  # its live message untouched


async def test_a_replica_shut_down_mid_turn_ends_it_as_stopped_and_deletes_it_so_it_never_comes_back_interrupted(
        replicas: list[SlackBot], fake: FakeSlack) -> None:
    ts = "1700000900.000100"
    assert await replicas[0].send(mention("slow shutdown", ts), f"{CHANNEL}:{ts}") == 200
    await until(lambda: len(ran_on(replicas, "slow shutdown")) == 1, limit=20, what="the slow turn to start")
    [runner] = ran_on(replicas, "slow shutdown")
    engine = replicas[runner].engine
    assert engine is not None
    await engine.shutdown(5)  # as ``serve`` does on SIGTERM: running turns end the way a Stop does
    await replicas[runner].stop()
    assert any("Stopped" in fake.shown(m) for m in fake.thread(CHANNEL, ts))
    # Deleted before the replica let go: no other replica can receive it again and call it interrupted.
    assert queued(replicas) == 0
    assert answers(fake, ts, INTERRUPTED) == 0


async def test_a_turn_that_arrives_while_a_replica_closes_is_handed_back_to_the_queue_at_once(
        fake: FakeSlack, tmp_path: Path) -> None:
    moto = moto_aws.shared()
    aws = moto.fresh_settings()
    clients = moto.clients()
    ensure_resources(clients, aws)
    env = moto.mode_env(aws, visibility=60)
    bot = await SlackBot(fake, tmp_path / "closing", ScriptedAgent(script), **env).start()
    assert bot.engine is not None
    bot.engine.start()
    try:
        await asyncio.sleep(0.2)  # let its receiver start a long poll (the case this rule is about)
        await bot.engine.shutdown(0)
        delivery, thread = delivery_of("1700001000.000100")
        turn = QueuedTurn(IncomingMessage(thread, "UALICE", "late", event_id=f"{CHANNEL}:1700001000.000100"),
                          {"is_dm": False, "message_ts": "1700001000.000100"})
        clients.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=turn.to_json(),
                                 MessageGroupId=thread.digest, MessageDeduplicationId=delivery)
        # A message taken by the closing replica would stay invisible for its 60 s lease: another
        # replica must be able to receive it well before that. (Short polls: moto's long poll keeps
        # the message groups that were in flight when it began.)
        texts: list[str] = []
        for _ in range(8):
            got = await asyncio.to_thread(clients.sqs.receive_message, QueueUrl=aws.queue_url, WaitTimeSeconds=1)
            texts += [json.loads(m["Body"])["message"]["text"] for m in got.get("Messages", [])]
            if texts:
                break
        assert texts == ["late"]
        assert bot.agent.turns == []  # type: ignore[attr-defined]
    finally:
        await bot.stop()


async def test_a_slack_event_is_claimed_and_queued_before_it_is_acknowledged_so_a_killed_replica_loses_nothing(
        fake: FakeSlack, tmp_path: Path) -> None:
    moto = moto_aws.shared()
    aws = moto.fresh_settings()
    ensure_resources(moto.clients(), aws)
    env = moto.mode_env(aws, visibility=None)
    bot = await SlackBot(fake, tmp_path / "intake-only", ScriptedAgent(script), **env).start()  # runs no turns
    try:
        for n in range(3):
            ts = f"17000011{n:02d}.000100"
            assert await bot.send(mention(f"q{n}", ts), f"EvAck{n}") == 200
            assert queued([bot]) == n + 1  # at the moment of the 200, not some time after it
    finally:
        await bot.stop()
