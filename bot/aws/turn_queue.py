"""``TurnIntake`` on an SQS FIFO queue: intake on any replica, turns run by workers on every replica.

Intake claims the delivery in DynamoDB first (a retry of the same event to another replica is
dropped there), then sends the turn with the thread as message group (one thread's turns run one at
a time, in order; threads run in parallel on any replica) and the delivery as deduplication id.

A worker that receives a turn records it in DynamoDB (``TurnRecords``), runs it through the engine
exactly as a local message, keeps the message invisible while it runs, and deletes it at the end.
A message whose record says an earlier receiver began it is a turn interrupted by a replica dying:
its live message (the record carries its ids) is ended with ``INTERRUPTED``, and it is not run
twice. If nothing of it had been shown, the agent had not begun: it is run once more (at most once,
claimed in the record), and a second interruption gets the note as a new message. A message that
fails 3 times is moved by SQS to the dead-letter queue, which every replica drains with a short
note in the thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from bot.aws.turn_journal import QueuedTurnJournal
from bot.aws.turn_records import TurnRecords, TurnStart
from bot.commands import parse_command
from bot.intake import SurfaceRebuilder
from bot.intents import Stop
from bot.journal import JournalStore
from bot.messages import IncomingMessage, RemoteFile, ThreadKey
from bot.recovery import end_live_message
from bot.reply import notice
from bot.surface import Surface, best_effort

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)
T = TypeVar("T")

INTERRUPTED = "Interrupted by a server restart — send your message again."
DEAD_LETTER = ("I could not handle this message after 3 tries — send it again, "
               "or start a new thread if it keeps failing.")
#: Seconds a received turn stays invisible to other replicas; renewed every ``HEARTBEAT`` while it runs.
VISIBILITY = 30
HEARTBEAT = 1.0  # also how often a Stop requested on another replica is looked for (within 2 s)
#: Turns one replica runs at once (more wait in the queue for another replica).
CONCURRENT_TURNS = 8
#: Seconds ``aclose`` gives ended turns to record themselves and delete their messages.
CLOSE_GRACE = 5.0


@dataclass(frozen=True)
class QueuedTurn:
    """What goes through the queue: the message and what rebuilds its surface elsewhere."""

    message: IncomingMessage
    surface_args: Mapping[str, Any]

    @property
    def delivery(self) -> str:
        """The deduplication id: the platform's delivery id, or a digest of the message."""
        m = self.message
        raw = f"{m.thread.platform}:{m.event_id}" if m.event_id else json.dumps(asdict(m), sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()  # SQS allows 128 chars of a limited alphabet

    def to_json(self) -> str:
        return json.dumps({"message": asdict(self.message), "surface": dict(self.surface_args)})

    @classmethod
    def from_json(cls, text: str) -> QueuedTurn:
        d = json.loads(text)
        m = d["message"]
        message = IncomingMessage(
            thread=ThreadKey(**m["thread"]), user=m["user"], text=m["text"],
            files=tuple(RemoteFile(**f) for f in m["files"]), event_id=m["event_id"],
            mentioned=m["mentioned"], resettable=m["resettable"])
        return cls(message, d["surface"])


class SqsTurnQueue:
    """``TurnIntake`` over ``queue_url``; ``engine`` runs the turns this replica receives."""

    def __init__(self, sqs: Any, queue_url: str, records: TurnRecords, engine: Engine,
                 poll_seconds: int = 1, visibility: int = VISIBILITY) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.records = records
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.visibility = visibility
        self._rebuilders: dict[str, SurfaceRebuilder] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(CONCURRENT_TURNS)
        self.replica = records.replica
        self._closing = False
        # The two long polls (turns, dead letters) block a thread each for ``poll_seconds``: they get
        # threads of their own (made by ``start``, again after ``aclose``), so they never hold the
        # loop's shared pool (a handful of threads on a small machine) that every DynamoDB, S3 and
        # SQS call of the turns and of intake waits for.
        self._pollers: ThreadPoolExecutor | None = None
        self._journal = QueuedTurnJournal(records)

    @property
    def journal(self) -> JournalStore:
        return self._journal

    @classmethod
    def replica_id(cls) -> str:
        return secrets.token_hex(6)

    def register(self, platform: str, rebuild: SurfaceRebuilder) -> None:
        self._rebuilders[platform] = rebuild

    async def _poll(self, receive: Callable[[], T]) -> T:
        """Run a long poll on the queue's own threads."""
        assert self._pollers is not None, "polled before start()"
        return await asyncio.get_running_loop().run_in_executor(self._pollers, receive)

    async def _sqs(self, operation: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.sqs, operation), **kwargs)

    # intake -------------------------------------------------------------------------------------

    async def submit(self, message: IncomingMessage, surface_args: Mapping[str, Any]) -> None:
        if message.event_id and not await self.engine.claim_event(f"{message.thread.platform}:{message.event_id}"):
            log.info("dropping duplicate delivery %s", message.event_id)
            return
        rebuild = self._rebuilders.get(message.thread.platform)
        if rebuild is not None and not message.files and isinstance(parse_command(message.text), Stop):
            # A typed ``stop`` must not wait in the thread's queue behind the very turn it stops: this
            # replica carries it out (the turn's own replica, or a flag it sees within 2 s).
            self.engine.submit(replace(message, event_id=None), rebuild(message, surface_args))  # not awaited:
            return  # the platform's request must not wait for the stopped turn's clean-up
        queued = QueuedTurn(message, surface_args)
        await self._sqs("send_message", QueueUrl=self.queue_url, MessageBody=queued.to_json(),
                        MessageGroupId=message.thread.digest, MessageDeduplicationId=queued.delivery)

    async def cancel_remote(self, thread: ThreadKey) -> bool:
        return await self.records.request_stop(thread)

    # workers ------------------------------------------------------------------------------------

    def start(self) -> None:
        if not self._tasks:
            self._closing = False  # possibly started again after ``aclose``
            self._pollers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sqs-poll")
            log.info("replica %s takes turns from %s", self.replica, self.queue_url.rsplit("/", 1)[-1])
            self._tasks = [asyncio.create_task(self._receive_forever(), name="sqs-turns"),
                           asyncio.create_task(self._drain_dead_letters(), name="sqs-dead-letters")]

    @property
    def _taking_turns(self) -> bool:
        return self.engine.accepting and not self._closing

    async def _receive_forever(self) -> None:
        while self._taking_turns:  # once draining, leave new turns to the other replicas
            await self._slots.acquire()  # a free slot first: never hold a message this replica cannot run yet
            try:
                messages = await self._poll(self._receive_one)
            except Exception:
                self._slots.release()
                log.exception("receiving turns from SQS failed; retrying")
                await asyncio.sleep(1)
                continue
            if messages and not self._taking_turns:  # closing began while the answer came back
                await asyncio.to_thread(self._hand_back, messages[0])
                messages = []
            if not messages:
                self._slots.release()
                continue
            task = asyncio.create_task(self._handle(messages[0]), name="sqs-turn")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: self._slots.release())

    async def _handle(self, raw: Mapping[str, Any]) -> None:
        receipt = raw["ReceiptHandle"]
        queued = QueuedTurn.from_json(raw["Body"])
        message = queued.message
        rebuild = self._rebuilders.get(message.thread.platform)
        if rebuild is None:
            log.error("a %s turn reached a replica without that surface; leaving it", message.thread.platform)
            return
        delivery = queued.delivery
        watch = asyncio.create_task(self._keep_invisible(receipt, message.thread, delivery))
        try:
            surface = rebuild(message, queued.surface_args)
            began = await self.records.begin(delivery, message.thread)
            if began.status == "running":
                # Its replica is alive (its heartbeat is recent) but let the lease lapse: leave the turn
                # to it for another lease rather than end or repeat it. It ends the turn as usual.
                log.warning("turn %s is still running on another replica past its lease; leaving it",
                            delivery[:12])
                await self._sqs("change_message_visibility", QueueUrl=self.queue_url, ReceiptHandle=receipt,
                                VisibilityTimeout=self.visibility)
                return
            if began.status == "interrupted":
                await self._interrupted(began, queued, surface)
            elif began.status == "fresh":
                await self._run(queued, surface)
            await self.records.finish(delivery, message.thread)
            await self._sqs("delete_message", QueueUrl=self.queue_url, ReceiptHandle=receipt)
        except Exception:
            log.exception("turn %s failed; SQS will deliver it again", delivery[:12])
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    async def _run(self, queued: QueuedTurn, surface: Surface) -> None:
        with self._journal.running(queued.message.thread, queued.delivery):
            await self.engine.submit(replace(queued.message, event_id=None), surface)  # claimed at intake

    async def _interrupted(self, began: TurnStart, queued: QueuedTurn, surface: Surface) -> None:
        """The replica that began this turn died (or was stopped before deleting its message)."""
        delivery = queued.delivery[:12]
        if began.live:  # the person saw it working: end that very message, never answer it twice
            log.warning("turn %s was interrupted on another replica; ending its message", delivery)
            await end_live_message(surface, began.live, INTERRUPTED)
        elif await self.records.claim_rerun(queued.delivery, queued.message.thread):
            # Nothing of it was shown, so its agent had not begun (the live message shows before the
            # agent runs): run it once more rather than ask the person to resend what looks unanswered.
            log.warning("turn %s was interrupted before it showed anything; running it again", delivery)
            await self._run(queued, surface)
        else:  # its re-run died before showing anything too: say so, once
            log.warning("turn %s was interrupted twice; telling the thread", delivery)
            await best_effort(surface.post(notice(INTERRUPTED, "warning")))

    def _receive_one(self) -> list[dict[str, Any]]:
        """One long poll, in a worker thread. One message per receive: a batch may hold several
        messages of one thread, and those would wait here invisible to others while their leases
        ran out. A message that arrives once this replica began to close (the poll outlives a
        cancelled task) is handed back to the others at once, not left invisible for its lease."""
        got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=1,
                                       WaitTimeSeconds=self.poll_seconds, VisibilityTimeout=self.visibility,
                                       MessageSystemAttributeNames=["ApproximateReceiveCount"])
        messages: list[dict[str, Any]] = got.get("Messages", [])
        if messages and not self._taking_turns:
            self._hand_back(messages[0])
            return []
        return messages

    def _hand_back(self, raw: Mapping[str, Any]) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=raw["ReceiptHandle"],
                                               VisibilityTimeout=0)
        except Exception:  # its lease ends on its own: later, but nothing is lost
            log.warning("could not hand a turn back to the queue", exc_info=True)

    async def _keep_invisible(self, receipt: str, thread: ThreadKey, delivery: str) -> None:
        """While the turn runs: renew its invisibility, and stop it when a Stop was asked elsewhere."""
        renewed = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                if await self.records.stop_requested(thread, delivery):
                    self.engine.cancel(thread)
                if asyncio.get_running_loop().time() - renewed > self.visibility / 3:
                    await self.records.beat(delivery)  # first: a receiver seeing it knows this replica lives
                    await self._sqs("change_message_visibility", QueueUrl=self.queue_url,
                                    ReceiptHandle=receipt, VisibilityTimeout=self.visibility)
                    renewed = asyncio.get_running_loop().time()
            except Exception:
                log.warning("could not renew a running turn's lease", exc_info=True)

    async def _dead_letter_url(self) -> str | None:
        attributes = (await self._sqs("get_queue_attributes", QueueUrl=self.queue_url,
                                      AttributeNames=["RedrivePolicy"]))["Attributes"]
        arn = json.loads(attributes.get("RedrivePolicy") or "{}").get("deadLetterTargetArn")
        if not arn:
            return None
        return str((await self._sqs("get_queue_url", QueueName=arn.rsplit(":", 1)[-1]))["QueueUrl"])

    async def _drain_dead_letters(self) -> None:
        """Tell each thread whose turn SQS gave up on (3 receives), then forget the message."""
        url = None
        while url is None:
            try:
                url = await self._dead_letter_url()
                if url is None:
                    log.warning("the turn queue has no dead-letter queue: failing turns would loop")
                    return
            except Exception:
                log.exception("could not find the dead-letter queue; retrying")
                await asyncio.sleep(5)
        while True:
            try:
                got = await self._poll(lambda: self.sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=self.poll_seconds,
                    VisibilityTimeout=VISIBILITY))
                for raw in got.get("Messages", []):
                    queued = QueuedTurn.from_json(raw["Body"])
                    rebuild = self._rebuilders.get(queued.message.thread.platform)
                    if rebuild is None:
                        continue
                    await best_effort(rebuild(queued.message, queued.surface_args).post(notice(DEAD_LETTER, "warning")))
                    await self._sqs("delete_message", QueueUrl=url, ReceiptHandle=raw["ReceiptHandle"])
            except Exception:
                log.exception("draining the dead-letter queue failed; retrying")
                await asyncio.sleep(1)

    async def aclose(self) -> None:
        """Stop receiving and handling. After the engine's ``shutdown`` (which ends running turns
        the way a Stop does), the handlers of those ended turns are given up to
        ``poll_seconds`` + ``CLOSE_GRACE`` seconds to record them and delete their messages:
        cancelled before that, an answered turn would come back and be reported as interrupted.
        Whatever is left is cancelled: a turn whose message was not deleted returns to the queue
        when its lease ends, and the replica that receives it ends it as interrupted."""
        self._closing = True
        pending = {*self._tasks[:1], *self._running}  # the receiver and the turns, not the dead-letter drain
        if pending and not self.engine.accepting:
            await asyncio.wait(pending, timeout=self.poll_seconds + CLOSE_GRACE)
        tasks = [*self._tasks, *self._running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        if self._pollers is not None:  # a poll in flight ends by itself (and hands back what it got)
            self._pollers.shutdown(wait=False)
