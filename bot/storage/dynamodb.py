"""DynamoDB state store: what several replicas share about conversations, deliveries and values.

One table, keys ``pk`` (string) and ``sk`` (string); items that end carry ``expires_at`` (epoch
seconds), the table's TTL attribute. DynamoDB deletes expired items only eventually (and moto never),
so every read checks ``expires_at`` itself against ``clock``: TTL only reclaims space.

Where two replicas can race, writes are conditional: a delivery id is claimed by a put that succeeds
only if no live claim exists, a conversation is created only if none exists (the loser reads the
winner's, so the first owner is kept), and a reset only replaces the generation it read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.conversation import Conversation
from bot.messages import ThreadKey
from bot.storage.local import conversation_id

Clock = Callable[[], datetime]
Item = dict[str, dict[str, Any]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: float) -> dict[str, str]:
    return {"N": str(int(value))}


def is_conditional_failure(exc: BaseException) -> bool:
    """True for a conditional write that lost (botocore's ``ConditionalCheckFailedException``)."""
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoStateStore:
    """``StateStore`` on a DynamoDB table; workspaces live under ``workspaces_root/<conversation id>``.

    ``dynamodb`` is a boto3 DynamoDB client; calls run in worker threads so the loop never blocks.
    """

    def __init__(self, dynamodb: Any, table: str, workspaces_root: Path, clock: Clock = utc_now) -> None:
        self.db = dynamodb
        self.table = table
        self.workspaces_root = workspaces_root
        self.clock = clock

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.db, operation), TableName=self.table, **kwargs)

    # conversations ------------------------------------------------------------------------------

    @staticmethod
    def _conversation_key(key: ThreadKey) -> Item:
        return {"pk": s(f"conv#{key}"), "sk": s("conv")}

    def _from_item(self, key: ThreadKey, item: Item) -> Conversation:
        cid = item["id"]["S"]
        return Conversation(
            id=cid,
            key=key,
            session_id=f"dt-{cid}",
            owner=item["owner"]["S"],
            workspace=self.workspaces_root / cid,
            created=datetime.fromisoformat(item["created"]["S"]),
            last_active=datetime.fromisoformat(item["last_active"]["S"]),
        )

    def _new_item(self, key: ThreadKey, owner: str, generation: int) -> Item:
        now = self.clock().isoformat()
        return {
            **self._conversation_key(key),
            "id": s(conversation_id(key, generation)),
            "generation": n(generation),
            "owner": s(owner),
            "created": s(now),
            "last_active": s(now),
        }

    async def _item(self, key: ThreadKey) -> Item | None:
        got = await self._call("get_item", Key=self._conversation_key(key), ConsistentRead=True)
        item: Item | None = got.get("Item")
        return item

    async def conversation(self, key: ThreadKey) -> Conversation | None:
        item = await self._item(key)
        return None if item is None else self._from_item(key, item)

    async def start_conversation(self, key: ThreadKey, owner: str) -> Conversation:
        existing = await self._item(key)
        if existing is not None:
            return self._from_item(key, existing)
        item = self._new_item(key, owner, 0)
        try:
            await self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(pk)")
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            winner = await self._item(key)  # another replica created it first: theirs is the thread's
            assert winner is not None
            return self._from_item(key, winner)
        return self._from_item(key, item)

    async def reset_conversation(self, key: ThreadKey, owner: str) -> Conversation:
        while True:
            existing = await self._item(key)
            if existing is None:
                item = self._new_item(key, owner, 0)
                condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
            else:
                generation = int(existing["generation"]["N"])
                item = self._new_item(key, owner, generation + 1)
                condition = {
                    "ConditionExpression": "generation = :seen",
                    "ExpressionAttributeValues": {":seen": n(generation)},
                }
            try:
                await self._call("put_item", Item=item, **condition)
            except Exception as exc:
                if not is_conditional_failure(exc):
                    raise
                continue  # another reset won the race: build on its generation
            return self._from_item(key, item)

    async def touch(self, conversation: Conversation) -> None:
        try:
            await self._call(
                "update_item",
                Key=self._conversation_key(conversation.key),
                UpdateExpression="SET last_active = :now",
                ConditionExpression="id = :id",  # a reset meanwhile: leave the new conversation alone
                ExpressionAttributeValues={":now": s(self.clock().isoformat()), ":id": s(conversation.id)},
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise

    # deliveries ---------------------------------------------------------------------------------

    async def claim_event(self, event_id: str, ttl: timedelta = timedelta(days=1)) -> bool:
        now = self.clock().timestamp()
        try:
            await self._call(
                "put_item",
                Item={"pk": s(f"event#{event_id}"), "sk": s("event"), "expires_at": n(now + ttl.total_seconds())},
                # A claim whose TTL passed but that DynamoDB has not deleted yet no longer counts.
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": n(now)},
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    # values -------------------------------------------------------------------------------------

    async def get_value(self, namespace: str, key: str) -> Any | None:
        got = await self._call("get_item", Key={"pk": s(f"kv#{namespace}#{key}"), "sk": s("kv")}, ConsistentRead=True)
        item = got.get("Item")
        return None if item is None else json.loads(item["v"]["S"])

    async def put_value(self, namespace: str, key: str, value: Any) -> None:
        await self._call("put_item", Item={"pk": s(f"kv#{namespace}#{key}"), "sk": s("kv"), "v": s(json.dumps(value))})

    async def aclose(self) -> None:
        """Nothing to release: the client is shared by the process."""
