"""Dataset catalogue in DynamoDB (the same table as the state store), for several replicas.

Items per dataset: ``ds#<id>/meta`` (lookup by id, listed by expiry through the ``by-expiry`` index)
and ``dsthread#<thread>/<created>#<id>`` (listing a thread's datasets in order); both are written
and removed together in one transaction. A removed dataset leaves ``ds#<id>/tomb`` so that it
still says "expired" (not "not found") for a week. Every item carries ``expires_at`` (the table's
TTL attribute) only so DynamoDB reclaims space eventually: reads never rely on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.datasets.catalog import meta_from_json, meta_to_json
from bot.datasets.model import DatasetMeta
from bot.messages import ThreadKey
from bot.storage.dynamodb import Clock, is_conditional_failure, n, s, utc_now

#: Partition of the ``by-expiry`` index holding every live dataset.
EXPIRY_PARTITION = "datasets"
#: How long a removed dataset is remembered as "expired" (the local catalogue keeps it as long).
TOMBSTONE_DAYS = timedelta(days=7)


def expiry_key(when: datetime, dataset_id: str) -> str:
    """Sortable text for an instant: zero-padded epoch seconds (ISO text with and without
    microseconds would not sort by time)."""
    return f"{when.timestamp():020.6f}#{dataset_id}"


class DynamoCatalog:
    """``Catalog`` on a DynamoDB table; ``dynamodb`` is a boto3 client."""

    def __init__(self, dynamodb: Any, table: str, clock: Clock = utc_now) -> None:
        self.db = dynamodb
        self.table = table
        self.clock = clock

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.db, operation), **kwargs)

    @staticmethod
    def _meta_key(dataset_id: str) -> dict[str, dict[str, str]]:
        return {"pk": s(f"ds#{dataset_id}"), "sk": s("meta")}

    @staticmethod
    def _thread_key(meta: DatasetMeta) -> dict[str, dict[str, str]]:
        return {"pk": s(f"dsthread#{meta.thread}"), "sk": s(f"{expiry_key(meta.created, meta.id)}")}

    async def put(self, meta: DatasetMeta) -> None:
        body = meta_to_json(meta)
        reclaim = n((meta.expires + TOMBSTONE_DAYS).timestamp())
        await self._call("transact_write_items", TransactItems=[
            {"Put": {"TableName": self.table, "Item": {
                **self._meta_key(meta.id), "meta": s(body), "expires_at": reclaim,
                "gsi_pk": s(EXPIRY_PARTITION), "gsi_sk": s(expiry_key(meta.expires, meta.id))}}},
            {"Put": {"TableName": self.table,
                     "Item": {**self._thread_key(meta), "meta": s(body), "expires_at": reclaim}}},
        ])

    async def get(self, dataset_id: str) -> DatasetMeta | None:
        if not dataset_id or len(dataset_id) > 200:  # not one of ours; also keeps keys under DynamoDB's limits
            return None
        got = await self._call("get_item", TableName=self.table, Key=self._meta_key(dataset_id), ConsistentRead=True)
        item = got.get("Item")
        return None if item is None else meta_from_json(item["meta"]["S"])

    async def tombstone(self, dataset_id: str) -> tuple[str, datetime] | None:
        if not dataset_id or len(dataset_id) > 200:
            return None
        got = await self._call("get_item", TableName=self.table,
                               Key={"pk": s(f"ds#{dataset_id}"), "sk": s("tomb")}, ConsistentRead=True)
        item = got.get("Item")
        if item is None or int(item["expires_at"]["N"]) < self.clock().timestamp():
            return None
        return item["name"]["S"], datetime.fromisoformat(item["expired"]["S"])

    async def by_thread(self, thread: ThreadKey) -> Sequence[DatasetMeta]:
        metas: list[DatasetMeta] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": s(f"dsthread#{thread}")}, "ConsistentRead": True,
        }
        while True:
            got = await self._call("query", **kwargs)
            metas += [meta_from_json(item["meta"]["S"]) for item in got.get("Items", [])]
            if "LastEvaluatedKey" not in got:
                return metas
            kwargs["ExclusiveStartKey"] = got["LastEvaluatedKey"]

    async def expired(self, now: datetime) -> Sequence[DatasetMeta]:
        ids: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table, "IndexName": "by-expiry",
            "KeyConditionExpression": "gsi_pk = :p AND gsi_sk <= :now",
            "ExpressionAttributeValues": {":p": s(EXPIRY_PARTITION), ":now": s(expiry_key(now, "~"))},
        }
        while True:
            got = await self._call("query", **kwargs)
            ids += [item["pk"]["S"].removeprefix("ds#") for item in got.get("Items", [])]
            if "LastEvaluatedKey" not in got:
                break
            kwargs["ExclusiveStartKey"] = got["LastEvaluatedKey"]
        found = [await self.get(i) for i in ids]  # the index is eventually consistent: re-read each
        return [m for m in found if m is not None and m.expires <= now]

    async def bury(self, meta: DatasetMeta, forget_before: datetime) -> None:
        await self.bury_once(meta)

    async def bury_once(self, meta: DatasetMeta) -> bool:
        """Replace ``meta`` by its tombstone; False if another replica already did."""
        try:
            await self._call("transact_write_items", TransactItems=[
                {"Delete": {"TableName": self.table, "Key": self._meta_key(meta.id),
                            "ConditionExpression": "attribute_exists(pk)"}},
                {"Delete": {"TableName": self.table, "Key": self._thread_key(meta)}},
                {"Put": {"TableName": self.table, "Item": {
                    "pk": s(f"ds#{meta.id}"), "sk": s("tomb"), "name": s(meta.name),
                    "expired": s(meta.expires.isoformat()),
                    "expires_at": n((meta.expires + TOMBSTONE_DAYS).timestamp())}}},
            ])
        except Exception as exc:
            if is_conditional_failure(exc) or _cancelled_by_condition(exc):
                return False
            raise
        return True

    async def aclose(self) -> None:
        """Nothing to release: the client is shared by the process."""


def _cancelled_by_condition(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    return any(r.get("Code") == "ConditionalCheckFailed" for r in response.get("CancellationReasons", []))
