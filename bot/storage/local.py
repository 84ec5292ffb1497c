"""SQLite state store: conversations, inbound event ids and small JSON values."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.conversation import Conversation
from bot.journal import TurnInFlight
from bot.messages import ThreadKey
from bot.storage.sqlite import Database

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS conversations (
        thread TEXT PRIMARY KEY, platform TEXT, team TEXT, channel TEXT, root TEXT,
        id TEXT NOT NULL, generation INTEGER NOT NULL, owner TEXT NOT NULL,
        created TEXT NOT NULL, last_active TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, expires REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kv (ns TEXT, k TEXT, v TEXT NOT NULL, PRIMARY KEY (ns, k))",
    """CREATE TABLE IF NOT EXISTS turns (
        thread TEXT PRIMARY KEY, platform TEXT NOT NULL, started REAL NOT NULL, record TEXT NOT NULL)""",
)


def conversation_id(key: ThreadKey, generation: int) -> str:
    """Stable hashed id: never exposes the raw platform ids, safe in paths and Bedrock session ids."""
    return hashlib.sha256(f"{key}#{generation}".encode()).hexdigest()[:24]


class SqliteStateStore:
    """``StateStore`` on one SQLite file; workspaces live under ``workspaces_root/<conversation id>``."""

    def __init__(self, db_path: Path, workspaces_root: Path) -> None:
        self.db = Database(db_path, SCHEMA)
        self.workspaces_root = workspaces_root

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

    async def aclose(self) -> None:
        await self.db.aclose()
