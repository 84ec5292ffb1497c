"""Turn records in DynamoDB: which delivery ran, which is running where, and Stop requests.

``turn#<delivery>`` says a delivery's turn began (and on which replica) or ended, and, once its
live message shows, that message's handle (``live``: the platform's ids of the messages showing the
turn — Slack ts, Teams activity ids — in the thread the queued message names; Slack's channel is
the thread key's). When a message comes back from SQS and its record says "running", either the
replica running it stalled past its lease (a long pause, a slow network: it is still running the
turn) or it died mid-turn. The running replica writes a heartbeat (``beat``) into the record each
time it renews its lease; a record whose beat is older than ``dead_after`` (two leases) is a dead
replica's: the new receiver must not run it again silently, and the handle lets it end the live
message the dead replica left. A fresher beat means the turn is still running: the receiver leaves it.
``running#<thread>`` names the thread's running turn so a Stop on any replica can flag it; the
replica running it polls the flag.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from bot.messages import ThreadKey
from bot.storage.dynamodb import Clock, is_conditional_failure, n, s, utc_now

Began = Literal["fresh", "running", "interrupted", "done"]
RECORD_TTL = timedelta(days=1)
#: A running turn's record without a heartbeat for this long is a dead replica's (two 30 s leases).
DEAD_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class TurnStart:
    """What ``TurnRecords.begin`` found: a ``fresh`` turn to run, one still ``running`` on a live
    replica, one ``interrupted`` by a dead one (``live``: the ids of the messages it showed, empty when
    nothing of it was shown), or one ``done``."""

    status: Began
    live: tuple[str, ...] = ()


class TurnRecords:
    def __init__(self, dynamodb: Any, table: str, replica: str, clock: Clock = utc_now,
                 dead_after: timedelta = DEAD_AFTER) -> None:
        """``dead_after``: how long a running turn's replica may go without a heartbeat before its
        turn counts as interrupted (longer than a lease, so a replica that stalled past one is not
        taken for dead)."""
        self.db = dynamodb
        self.table = table
        self.replica = replica
        self.clock = clock
        self.dead_after = dead_after

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.db, operation), TableName=self.table, **kwargs)

    async def _if(self, operation: str, **kwargs: Any) -> bool:
        """A conditional write: False when its condition did not hold (other failures raise)."""
        try:
            await self._call(operation, **kwargs)
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def _expiry(self) -> dict[str, str]:
        return n((self.clock() + RECORD_TTL).timestamp())

    async def begin(self, delivery: str, thread: ThreadKey) -> TurnStart:
        """Record that this replica begins ``delivery``'s turn; or what an earlier receiver left."""
        now = self.clock()
        if await self._if("put_item", Item={
                "pk": s(f"turn#{delivery}"), "sk": s("turn"), "status": s("running"),
                "replica": s(self.replica), "beat": n(now.timestamp()), "expires_at": self._expiry()},
                ConditionExpression="attribute_not_exists(pk)"):
            await self._mark_running(delivery, thread)
            return TurnStart("fresh")
        got = await self._call("get_item", Key={"pk": s(f"turn#{delivery}"), "sk": s("turn")}, ConsistentRead=True)
        item = got.get("Item", {})
        if item.get("status", {}).get("S") == "done":
            return TurnStart("done")
        beat = float(item.get("beat", {}).get("N", "0"))
        if now.timestamp() - beat < self.dead_after.total_seconds():
            return TurnStart("running")
        live = tuple(v["S"] for v in item.get("live", {}).get("L", ()))
        return TurnStart("interrupted", live)

    async def _mark_running(self, delivery: str, thread: ThreadKey) -> None:
        await self._call("put_item", Item={
            "pk": s(f"running#{thread}"), "sk": s("running"), "delivery": s(delivery),
            "replica": s(self.replica), "expires_at": self._expiry()})

    async def beat(self, delivery: str) -> None:
        """This replica is still running ``delivery``'s turn (called as it renews the turn's lease)."""
        await self._if("update_item", Key={"pk": s(f"turn#{delivery}"), "sk": s("turn")},
                       UpdateExpression="SET beat = :b", ConditionExpression="attribute_exists(pk)",
                       ExpressionAttributeValues={":b": n(self.clock().timestamp())})

    async def note_live(self, delivery: str, messages: tuple[str, ...]) -> None:
        """The running turn of ``delivery`` shows itself in ``messages`` (ids, in order)."""
        await self._call("update_item", Key={"pk": s(f"turn#{delivery}"), "sk": s("turn")},
                         UpdateExpression="SET live = :l",
                         ExpressionAttributeValues={":l": {"L": [s(m) for m in messages]}})

    async def answered(self, delivery: str) -> None:
        """The turn of ``delivery`` has ended in its thread (done, failed or stopped): a replica that
        receives its message again (this one died before deleting it) deletes it, nothing more."""
        await self._call("update_item", Key={"pk": s(f"turn#{delivery}"), "sk": s("turn")},
                         UpdateExpression="SET #st = :d", ExpressionAttributeNames={"#st": "status"},
                         ExpressionAttributeValues={":d": s("done")})

    async def claim_rerun(self, delivery: str, thread: ThreadKey) -> bool:
        """Claim the one re-run of an interrupted turn that showed nothing; False if it showed something,
        ended, or another receiver re-ran it already (conditional: two receivers cannot both win)."""
        if not await self._if(
                "update_item", Key={"pk": s(f"turn#{delivery}"), "sk": s("turn")},
                UpdateExpression="SET rerun = :t, replica = :r, beat = :b",
                ConditionExpression="#st = :running AND attribute_not_exists(rerun) AND attribute_not_exists(live)",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues={":t": s(self.clock().isoformat()), ":r": s(self.replica),
                                           ":b": n(self.clock().timestamp()), ":running": s("running")}):
            return False
        await self._mark_running(delivery, thread)
        return True

    async def finish(self, delivery: str, thread: ThreadKey) -> None:
        await self._call("put_item", Item={
            "pk": s(f"turn#{delivery}"), "sk": s("turn"), "status": s("done"), "replica": s(self.replica),
            "expires_at": self._expiry()})
        await self._if("delete_item", Key={"pk": s(f"running#{thread}"), "sk": s("running")},
                       ConditionExpression="delivery = :d", ExpressionAttributeValues={":d": s(delivery)})

    async def request_stop(self, thread: ThreadKey) -> bool:
        """Flag the thread's running turn to stop; False if no turn of it is running anywhere."""
        return await self._if("update_item", Key={"pk": s(f"running#{thread}"), "sk": s("running")},
                              UpdateExpression="SET stop_requested = :t", ConditionExpression="attribute_exists(pk)",
                              ExpressionAttributeValues={":t": s(self.clock().isoformat())})

    async def stop_requested(self, thread: ThreadKey, delivery: str) -> bool:
        got = await self._call("get_item", Key={"pk": s(f"running#{thread}"), "sk": s("running")},
                               ConsistentRead=True)
        item = got.get("Item") or {}
        return item.get("delivery", {}).get("S") == delivery and "stop_requested" in item
