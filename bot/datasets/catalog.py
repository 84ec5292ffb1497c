"""Dataset metadata behind a small interface (SQLite now; DynamoDB later, with the data on S3).

Expired datasets leave a tombstone (id, name, when it expired) so that asking for one after the
sweeper ran still says "expired" instead of "not found".
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from bot.datasets.model import Column, DatasetMeta
from bot.messages import ThreadKey
from bot.storage.sqlite import Database

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS datasets (
        id TEXT PRIMARY KEY, thread TEXT NOT NULL, name TEXT NOT NULL, meta TEXT NOT NULL,
        created TEXT NOT NULL, expires TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS datasets_thread ON datasets (thread, created)",
    "CREATE INDEX IF NOT EXISTS datasets_expires ON datasets (expires)",
    "CREATE TABLE IF NOT EXISTS tombstones (id TEXT PRIMARY KEY, name TEXT NOT NULL, expired TEXT NOT NULL)",
)


class Catalog(Protocol):
    """Where dataset metadata lives. Times are timezone-aware UTC."""

    async def put(self, meta: DatasetMeta) -> None: ...

    async def get(self, dataset_id: str) -> DatasetMeta | None: ...

    async def tombstone(self, dataset_id: str) -> tuple[str, datetime] | None:
        """Name and expiry of a dataset the sweeper already removed, if remembered."""
        ...

    async def by_thread(self, thread: ThreadKey) -> Sequence[DatasetMeta]:
        """All datasets of a thread (expired ones included), oldest first."""
        ...

    async def expired(self, now: datetime) -> Sequence[DatasetMeta]: ...

    async def bury(self, meta: DatasetMeta, forget_before: datetime) -> None:
        """Replace ``meta`` by a tombstone; drop tombstones that expired before ``forget_before``."""
        ...

    async def aclose(self) -> None: ...


def meta_to_json(meta: DatasetMeta) -> str:
    return json.dumps(
        {
            "id": meta.id,
            "name": meta.name,
            "columns": [[c.name, c.type] for c in meta.columns],
            "rows": meta.rows,
            "thread": [meta.thread.platform, meta.thread.team, meta.thread.channel, meta.thread.thread],
            "owner": meta.owner,
            "created": meta.created.isoformat(),
            "expires": meta.expires.isoformat(),
            "source": meta.source,
            "dropped": list(meta.dropped),
        }
    )


def meta_from_json(text: str) -> DatasetMeta:
    d: dict[str, Any] = json.loads(text)
    return DatasetMeta(
        id=d["id"],
        name=d["name"],
        columns=tuple(Column(n, t) for n, t in d["columns"]),
        rows=d["rows"],
        thread=ThreadKey(*d["thread"]),
        owner=d["owner"],
        created=datetime.fromisoformat(d["created"]),
        expires=datetime.fromisoformat(d["expires"]),
        source=d.get("source"),
        dropped=tuple(d.get("dropped") or ()),
    )


class SqliteCatalog:
    """``Catalog`` on one SQLite file (ISO UTC timestamps compare correctly as text)."""

    def __init__(self, path: Path) -> None:
        self.db = Database(path, SCHEMA)

    async def put(self, meta: DatasetMeta) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO datasets VALUES (?,?,?,?,?,?)",
            (meta.id, str(meta.thread), meta.name, meta_to_json(meta),
             meta.created.isoformat(), meta.expires.isoformat()),
        )

    async def get(self, dataset_id: str) -> DatasetMeta | None:
        row = await self.db.fetchone("SELECT meta FROM datasets WHERE id = ?", (dataset_id,))
        return None if row is None else meta_from_json(row[0])

    async def tombstone(self, dataset_id: str) -> tuple[str, datetime] | None:
        row = await self.db.fetchone("SELECT name, expired FROM tombstones WHERE id = ?", (dataset_id,))
        return None if row is None else (row[0], datetime.fromisoformat(row[1]))

    async def by_thread(self, thread: ThreadKey) -> Sequence[DatasetMeta]:
        rows = await self.db.fetchall(
            "SELECT meta FROM datasets WHERE thread = ? ORDER BY created, rowid", (str(thread),)
        )
        return [meta_from_json(r[0]) for r in rows]

    async def expired(self, now: datetime) -> Sequence[DatasetMeta]:
        rows = await self.db.fetchall("SELECT meta FROM datasets WHERE expires <= ?", (now.isoformat(),))
        return [meta_from_json(r[0]) for r in rows]

    async def bury(self, meta: DatasetMeta, forget_before: datetime) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM datasets WHERE id = ?", (meta.id,))
            conn.execute(
                "INSERT OR REPLACE INTO tombstones VALUES (?,?,?)",
                (meta.id, meta.name, meta.expires.isoformat()),
            )
            conn.execute("DELETE FROM tombstones WHERE expired < ?", (forget_before.isoformat(),))

        await self.db.run(run)

    async def aclose(self) -> None:
        await self.db.aclose()
