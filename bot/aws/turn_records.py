"""Turn records in DynamoDB: which delivery ran, which is running where, and Stop requests.

``turn#<delivery>`` says a delivery's turn began (and on which replica) or ended. When a message
comes back from SQS and its record says "running", the replica that began it died mid-turn: the
new receiver must not run it again silently. ``running#<thread>`` names the thread's running turn
so a Stop on any replica can flag it; the replica running it polls the flag.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Literal

from bot.messages import ThreadKey
from bot.storage.dynamodb import Clock, is_conditional_failure, n, s, utc_now

Began = Literal["fresh", "interrupted", "done"]
RECORD_TTL = timedelta(days=1)


class TurnRecords:
    def __init__(self, dynamodb: Any, table: str, replica: str, clock: Clock = utc_now) -> None:
        self.db = dynamodb
        self.table = table
        self.replica = replica
        self.clock = clock

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.db, operation), TableName=self.table, **kwargs)

    def _expiry(self) -> dict[str, str]:
        return n((self.clock() + RECORD_TTL).timestamp())

    async def begin(self, delivery: str, thread: ThreadKey) -> Began:
        """Record that this replica begins ``delivery``'s turn; or what an earlier receiver left."""
        try:
            await self._call("put_item", Item={
                "pk": s(f"turn#{delivery}"), "sk": s("turn"), "status": s("running"),
                "replica": s(self.replica), "expires_at": self._expiry()},
                ConditionExpression="attribute_not_exists(pk)")
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            got = await self._call("get_item", Key={"pk": s(f"turn#{delivery}"), "sk": s("turn")},
                                   ConsistentRead=True)
            status = got.get("Item", {}).get("status", {}).get("S")
            return "done" if status == "done" else "interrupted"
        await self._call("put_item", Item={
            "pk": s(f"running#{thread}"), "sk": s("running"), "delivery": s(delivery),
            "replica": s(self.replica), "expires_at": self._expiry()})
        return "fresh"

    async def finish(self, delivery: str, thread: ThreadKey) -> None:
        await self._call("put_item", Item={
            "pk": s(f"turn#{delivery}"), "sk": s("turn"), "status": s("done"), "replica": s(self.replica),
            "expires_at": self._expiry()})
        try:
            await self._call("delete_item", Key={"pk": s(f"running#{thread}"), "sk": s("running")},
                             ConditionExpression="delivery = :d", ExpressionAttributeValues={":d": s(delivery)})
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise

    async def request_stop(self, thread: ThreadKey) -> bool:
        """Flag the thread's running turn to stop; False if no turn of it is running anywhere."""
        try:
            await self._call("update_item", Key={"pk": s(f"running#{thread}"), "sk": s("running")},
                             UpdateExpression="SET stop_requested = :t", ConditionExpression="attribute_exists(pk)",
                             ExpressionAttributeValues={":t": s(self.clock().isoformat())})
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    async def stop_requested(self, thread: ThreadKey, delivery: str) -> bool:
        got = await self._call("get_item", Key={"pk": s(f"running#{thread}"), "sk": s("running")},
                               ConsistentRead=True)
        item = got.get("Item") or {}
        return item.get("delivery", {}).get("S") == delivery and "stop_requested" in item
