"""DynamoDB state store: what several replicas share about conversations, deliveries and values.

One table, keys ``pk`` (string) and ``sk`` (string); items that end carry ``expires_at`` (epoch
seconds), the table's TTL attribute. DynamoDB deletes expired items only eventually (and moto never),
so every read checks ``expires_at`` itself against ``clock``: TTL only reclaims space.

Where two replicas can race, writes are conditional: a delivery id is claimed by a put that succeeds
only if no live claim exists, a conversation is created only if none exists (the loser reads the
winner's, so the first owner is kept), and a reset only replaces the generation it read.

Records that are listed in order are kept so that a ``Query`` on the table reads them, never a scan:

- a workflow run is ``run#<id>/run`` (lookup by id) plus one entry per listing, ``runs/<started>#<id>``
  and ``runs#wf#<workflow>/<started>#<id>`` (newest first = the partition read backwards);
- a verdict is ``fb#<conversation,turn,user>/fb`` plus ``feedback/<at>#<conversation,turn,user>``
  (``since`` = a range on the sort key); a second verdict moves the entry to its new time;
- a turn in flight is ``journal#<platform>/<thread>`` (one per thread; a platform's turns are one
  small partition);
- a record kept by ``remember`` is ``mark#<namespace>#<key>/mark``, with ``expires_at``; a batch of
  them is written with ``BatchWriteItem`` (25 a request).

The lookup item of a run or verdict names its listing entries and carries a version: a save
re-reads it and writes lookup and entries in one transaction conditional on that version, so two
replicas saving the same record never leave a stale entry behind. Records are JSON, compressed
when large, so an item stays far below DynamoDB's 400 KB.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.conversation import Conversation
from bot.feedback import FeedbackRecord
from bot.journal import TurnInFlight
from bot.messages import ThreadKey
from bot.storage.local import conversation_id
from bot.workflows.record import RunRecord

Clock = Callable[[], datetime]
Item = dict[str, dict[str, Any]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: float) -> dict[str, str]:
    return {"N": str(int(value))}


#: A record's JSON above this many bytes is stored zlib-compressed (as binary).
COMPRESS_ABOVE = 32_000
#: The largest (compressed) record kept in one item: DynamoDB's item limit is 400 KB, keys included.
MAX_RECORD_BYTES = 350_000
#: Items in one ``BatchWriteItem`` request (DynamoDB's limit).
BATCH_ITEMS = 25
#: Rounds of resending the items DynamoDB left unprocessed (throttling) before giving up.
BATCH_ROUNDS = 5
#: Attempts at a versioned save before giving up (each loss means another replica just saved it).
SAVE_ATTEMPTS = 8


def time_key(when: datetime) -> str:
    """Sortable text for an instant: zero-padded epoch seconds (ISO text with and without
    microseconds, or with different offsets, would not sort by time)."""
    return f"{when.timestamp():020.6f}"


def encode_record(value: Any) -> dict[str, Any]:
    """A JSON value as an attribute: text, or zlib-compressed binary when large.
    ``ValueError`` if even compressed it would not fit in one item."""
    text = json.dumps(value, ensure_ascii=False)
    raw = text.encode()
    if len(raw) <= COMPRESS_ABOVE:
        return {"S": text}
    packed = zlib.compress(raw, 9)
    if len(packed) > MAX_RECORD_BYTES:
        raise ValueError(f"record too large for one DynamoDB item ({len(packed)} bytes compressed)")
    return {"B": packed}


def decode_record(attribute: dict[str, Any]) -> Any:
    if "B" in attribute:
        return json.loads(zlib.decompress(attribute["B"]))
    return json.loads(attribute["S"])


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


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

    async def _query(self, pk: str, *, since: str | None = None, newest_first: bool = False,
                     limit: int | None = None) -> list[Item]:
        """Items of partition ``pk`` in sort-key order (sort keys ``>= since`` only, when given),
        following pages until ``limit`` items (all without it)."""
        condition, values = "pk = :pk", {":pk": s(pk)}
        if since is not None:
            condition, values = condition + " AND sk >= :since", {**values, ":since": s(since)}
        items: list[Item] = []
        start: dict[str, Any] = {}
        while limit is None or len(items) < limit:
            page_limit = {} if limit is None else {"Limit": limit - len(items)}
            got = await self._call("query", KeyConditionExpression=condition, ExpressionAttributeValues=values,
                                   ScanIndexForward=not newest_first, ConsistentRead=True, **page_limit, **start)
            items.extend(got.get("Items", []))
            if "LastEvaluatedKey" not in got:
                break
            start = {"ExclusiveStartKey": got["LastEvaluatedKey"]}
        return items

    def _batch_write(self, requests: list[dict[str, Any]]) -> Any:
        return self.db.batch_write_item(RequestItems={self.table: requests})

    def _transact(self, writes: list[dict[str, Any]]) -> None:
        self.db.transact_write_items(TransactItems=writes)

    async def _save_listed(self, lookup: Item, record: dict[str, Any], entries: list[Item]) -> None:
        """Write ``record`` at ``lookup`` and at each of the listing keys ``entries``, dropping the
        entries an earlier save made that are no longer wanted (e.g. a verdict at a new time).

        One transaction, conditional on the lookup item's version as read: a concurrent save makes
        it fail, and it is redone on top of that save.
        """
        body = encode_record(record)
        wanted = [json.dumps([e["pk"]["S"], e["sk"]["S"]]) for e in entries]
        for _ in range(SAVE_ATTEMPTS):
            got = await self._call("get_item", Key=lookup, ConsistentRead=True)
            seen = got.get("Item")
            if seen is None:
                version, stale = 0, []
                condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
            else:
                version = int(seen["version"]["N"])
                stale = [e for e in json.loads(seen["entries"]["S"]) if e not in wanted]
                condition = {"ConditionExpression": "#v = :seen", "ExpressionAttributeNames": {"#v": "version"},
                             "ExpressionAttributeValues": {":seen": n(version)}}
            writes: list[dict[str, Any]] = [{"Put": {
                "TableName": self.table, **condition,
                "Item": {**lookup, "doc": body, "entries": s(json.dumps(wanted)), "version": n(version + 1)}}}]
            writes += [{"Put": {"TableName": self.table, "Item": {**entry, "doc": body}}} for entry in entries]
            writes += [{"Delete": {"TableName": self.table, "Key": {"pk": s(pk), "sk": s(sk)}}}
                       for pk, sk in map(json.loads, stale)]
            try:
                await asyncio.to_thread(self._transact, writes)
            except Exception as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                continue  # another replica saved it meanwhile: redo on top of its save
            return
        raise RuntimeError(f"could not save {lookup['pk']['S']}: {SAVE_ATTEMPTS} concurrent saves won")

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

    async def release_event(self, event_id: str) -> None:
        await self._call("delete_item", Key={"pk": s(f"event#{event_id}"), "sk": s("event")})

    # the journal of turns in flight ---------------------------------------------------------------

    @staticmethod
    def _journal_key(thread: ThreadKey) -> Item:
        return {"pk": s(f"journal#{thread.platform}"), "sk": s(str(thread))}

    async def journal_turn(self, turn: TurnInFlight) -> None:
        # One item per thread: a newer record of the thread's turn simply replaces the older one.
        await self._call("put_item", Item={**self._journal_key(turn.thread), "doc": encode_record(turn.to_json())})

    async def end_turn(self, thread: ThreadKey) -> None:
        await self._call("delete_item", Key=self._journal_key(thread))

    async def turns_in_flight(self, platform: str) -> list[TurnInFlight]:
        items = await self._query(f"journal#{platform}")
        return sorted((TurnInFlight.from_json(decode_record(item["doc"])) for item in items),
                      key=lambda turn: turn.started)

    # values -------------------------------------------------------------------------------------

    async def get_value(self, namespace: str, key: str) -> Any | None:
        got = await self._call("get_item", Key={"pk": s(f"kv#{namespace}#{key}"), "sk": s("kv")}, ConsistentRead=True)
        item = got.get("Item")
        return None if item is None else json.loads(item["v"]["S"])

    async def put_value(self, namespace: str, key: str, value: Any) -> None:
        await self._call("put_item", Item={"pk": s(f"kv#{namespace}#{key}"), "sk": s("kv"), "v": s(json.dumps(value))})

    # expiring records ---------------------------------------------------------------------------

    @staticmethod
    def _mark_key(namespace: str, key: str) -> Item:
        return {"pk": s(f"mark#{namespace}#{key}"), "sk": s("mark")}

    async def remember(self, namespace: str, entries: Mapping[str, str], ttl: timedelta) -> None:
        expires = n(self.clock().timestamp() + ttl.total_seconds())
        puts = [{"PutRequest": {"Item": {**self._mark_key(namespace, k), "v": s(v), "expires_at": expires}}}
                for k, v in entries.items()]
        for start in range(0, len(puts), BATCH_ITEMS):
            pending: list[dict[str, Any]] = puts[start:start + BATCH_ITEMS]
            for round_ in range(BATCH_ROUNDS):
                got = await asyncio.to_thread(self._batch_write, pending)
                pending = got.get("UnprocessedItems", {}).get(self.table, [])
                if not pending:
                    break
                await asyncio.sleep(0.05 * 2 ** round_)  # throttled: back off before resending the rest
            else:
                raise RuntimeError(f"DynamoDB left {len(pending)} record(s) of {namespace} unwritten")

    async def recall(self, namespace: str, key: str) -> str | None:
        got = await self._call("get_item", Key=self._mark_key(namespace, key), ConsistentRead=True)
        item = got.get("Item")
        # DynamoDB deletes expired items only eventually: the expiry is checked here.
        if item is None or int(item["expires_at"]["N"]) < self.clock().timestamp():
            return None
        return str(item["v"]["S"])

    # workflow runs ------------------------------------------------------------------------------

    @staticmethod
    def _run_key(run_id: str) -> Item:
        return {"pk": s(f"run#{run_id}"), "sk": s("run")}

    async def save_run(self, run: RunRecord) -> None:
        order = f"{time_key(run.started)}#{run.id}"
        await self._save_listed(self._run_key(run.id), run.to_json(), [
            {"pk": s("runs"), "sk": s(order)},
            {"pk": s(f"runs#wf#{run.workflow}"), "sk": s(order)},
        ])

    async def workflow_run(self, run_id: str) -> RunRecord | None:
        got = await self._call("get_item", Key=self._run_key(run_id), ConsistentRead=True)
        item = got.get("Item")
        return None if item is None else RunRecord.from_json(decode_record(item["doc"]))

    async def workflow_runs(self, limit: int = 20, workflow: str | None = None) -> list[RunRecord]:
        if limit <= 0:
            return []
        items = await self._query("runs" if workflow is None else f"runs#wf#{workflow}", newest_first=True, limit=limit)
        return [RunRecord.from_json(decode_record(item["doc"])) for item in items]

    # feedback -----------------------------------------------------------------------------------

    async def record_feedback(self, record: FeedbackRecord) -> None:
        # JSON keeps the three ids apart whatever they contain (a "#" in a turn id, say).
        who = json.dumps([record.conversation, record.turn, record.user])
        await self._save_listed(
            {"pk": s(f"fb#{who}"), "sk": s("fb")},
            {"conversation": record.conversation, "turn": record.turn, "user": record.user,
             "at": record.at.isoformat(), "positive": record.positive, "comment": record.comment,
             "platform": record.platform},
            [{"pk": s("feedback"), "sk": s(f"{time_key(record.at)}#{who}")}],
        )

    async def feedback(self, since: datetime | None = None) -> list[FeedbackRecord]:
        items = await self._query("feedback", since=None if since is None else time_key(since))
        out = []
        for item in items:
            data = decode_record(item["doc"])
            out.append(FeedbackRecord(data["conversation"], data["turn"], data["user"],
                                      datetime.fromisoformat(data["at"]), bool(data["positive"]),
                                      data["comment"], data["platform"]))
        return out

    async def aclose(self) -> None:
        """Nothing to release: the client is shared by the process."""
