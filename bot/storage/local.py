"""SQLite state store: conversations, inbound event ids and small JSON values."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.conversation import Conversation
from bot.feedback import FeedbackRecord
from bot.journal import TurnInFlight
from bot.messages import ThreadKey
from bot.storage.sqlite import Database
from bot.workflows.record import RunRecord

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS conversations (
        thread TEXT PRIMARY KEY, platform TEXT, team TEXT, channel TEXT, root TEXT,
        id TEXT NOT NULL, generation INTEGER NOT NULL, owner TEXT NOT NULL,
        created TEXT NOT NULL, last_active TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, expires REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kv (ns TEXT, k TEXT, v TEXT NOT NULL, PRIMARY KEY (ns, k))",
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY, workflow TEXT NOT NULL, started TEXT NOT NULL, record TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started)",
    """CREATE TABLE IF NOT EXISTS feedback (
        conversation TEXT NOT NULL, turn TEXT NOT NULL, user TEXT NOT NULL, at REAL NOT NULL,
        positive INTEGER NOT NULL, comment TEXT NOT NULL, platform TEXT NOT NULL,
        PRIMARY KEY (conversation, turn, user))""",
    """CREATE TABLE IF NOT EXISTS turns (
        thread TEXT PRIMARY KEY, platform TEXT NOT NULL, started REAL NOT NULL, record TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS marks (
        ns TEXT, k TEXT, v TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (ns, k))""",
    "CREATE INDEX IF NOT EXISTS marks_by_expiry ON marks (expires)",
)


def conversation_id(key: ThreadKey, generation: int) -> str:
    """Stable hashed id: never exposes the raw platform ids, safe in paths and Bedrock session ids."""
    return hashlib.sha256(f"{key}#{generation}".encode()).hexdigest()[:24]


class SqliteStateStore:
    """``StateStore`` on one SQLite file; workspaces live under ``workspaces_root/<conversation id>``.

    ``clock`` tells the time of expiring records (``remember``); tests move it."""

    def __init__(self, db_path: Path, workspaces_root: Path,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = Database(db_path, SCHEMA)
        self.workspaces_root = workspaces_root
        self.clock = clock

    def _row_to_conversation(self, key: ThreadKey, row: tuple[Any, ...]) -> Conversation:
        cid, owner, created, last_active = row
        return Conversation(
            id=cid,
            key=key,
            session_id=f"dt-{cid}",
            owner=owner,
            workspace=self.workspaces_root / cid,
            created=datetime.fromisoformat(created),
            last_active=datetime.fromisoformat(last_active),
        )

    async def conversation(self, key: ThreadKey) -> Conversation | None:
        row = await self.db.fetchone(
            "SELECT id, owner, created, last_active FROM conversations WHERE thread = ?", (str(key),)
        )
        return None if row is None else self._row_to_conversation(key, row)

    async def start_conversation(self, key: ThreadKey, owner: str) -> Conversation:
        now = datetime.now(UTC).isoformat()
        await self.db.execute(
            "INSERT OR IGNORE INTO conversations VALUES (?,?,?,?,?,?,?,?,?,?)",
            (str(key), key.platform, key.team, key.channel, key.thread,
             conversation_id(key, 0), 0, owner, now, now),
        )
        found = await self.conversation(key)
        assert found is not None
        return found

    async def reset_conversation(self, key: ThreadKey, owner: str) -> Conversation:
        now = datetime.now(UTC).isoformat()

        def reset(conn: Any) -> None:
            row = conn.execute("SELECT generation FROM conversations WHERE thread = ?", (str(key),)).fetchone()
            gen = 0 if row is None else row[0] + 1
            conn.execute(
                "INSERT OR REPLACE INTO conversations VALUES (?,?,?,?,?,?,?,?,?,?)",
                (str(key), key.platform, key.team, key.channel, key.thread,
                 conversation_id(key, gen), gen, owner, now, now),
            )

        await self.db.run(reset)
        found = await self.conversation(key)
        assert found is not None
        return found

    async def touch(self, conversation: Conversation) -> None:
        await self.db.execute(
            "UPDATE conversations SET last_active = ? WHERE id = ?",
            (datetime.now(UTC).isoformat(), conversation.id),
        )

    async def claim_event(self, event_id: str, ttl: timedelta = timedelta(days=1)) -> bool:
        now = datetime.now(UTC).timestamp()

        def claim(conn: Any) -> bool:
            conn.execute("DELETE FROM events WHERE expires < ?", (now,))
            cur = conn.execute("INSERT OR IGNORE INTO events VALUES (?, ?)", (event_id, now + ttl.total_seconds()))
            return bool(cur.rowcount == 1)

        return await self.db.run(claim)

    async def release_event(self, event_id: str) -> None:
        await self.db.execute("DELETE FROM events WHERE id = ?", (event_id,))

    async def journal_turn(self, turn: TurnInFlight) -> None:
        await self.db.execute("INSERT OR REPLACE INTO turns VALUES (?, ?, ?, ?)",
                              (str(turn.thread), turn.thread.platform, turn.started, json.dumps(turn.to_json())))

    async def end_turn(self, thread: ThreadKey) -> None:
        await self.db.execute("DELETE FROM turns WHERE thread = ?", (str(thread),))

    async def turns_in_flight(self, platform: str) -> list[TurnInFlight]:
        rows = await self.db.fetchall("SELECT record FROM turns WHERE platform = ? ORDER BY started", (platform,))
        return [TurnInFlight.from_json(json.loads(r[0])) for r in rows]

    async def get_value(self, namespace: str, key: str) -> Any | None:
        row = await self.db.fetchone("SELECT v FROM kv WHERE ns = ? AND k = ?", (namespace, key))
        return None if row is None else json.loads(row[0])

    async def put_value(self, namespace: str, key: str, value: Any) -> None:
        await self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (namespace, key, json.dumps(value)))

    async def remember(self, namespace: str, entries: Mapping[str, str], ttl: timedelta) -> None:
        now = self.clock().timestamp()
        rows = [(namespace, k, v, now + ttl.total_seconds()) for k, v in entries.items()]

        def keep(conn: Any) -> None:
            conn.execute("DELETE FROM marks WHERE expires < ?", (now,))  # the index makes this cheap
            conn.executemany("INSERT OR REPLACE INTO marks VALUES (?, ?, ?, ?)", rows)

        await self.db.run(keep)

    async def recall(self, namespace: str, key: str) -> str | None:
        row = await self.db.fetchone("SELECT v FROM marks WHERE ns = ? AND k = ? AND expires >= ?",
                                     (namespace, key, self.clock().timestamp()))
        return None if row is None else str(row[0])

    async def save_run(self, run: RunRecord) -> None:
        await self.db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)",
                              (run.id, run.workflow, run.started.isoformat(), json.dumps(run.to_json())))

    async def workflow_run(self, run_id: str) -> RunRecord | None:
        row = await self.db.fetchone("SELECT record FROM runs WHERE id = ?", (run_id,))
        return None if row is None else RunRecord.from_json(json.loads(row[0]))

    async def workflow_runs(self, limit: int = 20, workflow: str | None = None) -> list[RunRecord]:
        where, params = ("WHERE workflow = ?", [workflow]) if workflow is not None else ("", [])
        rows = await self.db.fetchall(f"SELECT record FROM runs {where} ORDER BY started DESC, rowid DESC LIMIT ?",
                                      (*params, limit))
        return [RunRecord.from_json(json.loads(r[0])) for r in rows]

    async def record_feedback(self, record: FeedbackRecord) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO feedback VALUES (?,?,?,?,?,?,?)",
            (record.conversation, record.turn, record.user, record.at.timestamp(), int(record.positive),
             record.comment, record.platform),
        )

    async def feedback(self, since: datetime | None = None) -> list[FeedbackRecord]:
        rows = await self.db.fetchall(
            "SELECT conversation, turn, user, at, positive, comment, platform FROM feedback WHERE at >= ? "
            "ORDER BY at, rowid", (since.timestamp() if since else float("-inf"),))
        return [FeedbackRecord(c, t, u, datetime.fromtimestamp(at, UTC), bool(p), comment, platform)
                for c, t, u, at, p, comment, platform in rows]

    async def aclose(self) -> None:
        await self.db.aclose()
