"""A small async facade over one SQLite file: every call runs on one dedicated worker thread.

One thread keeps sqlite3's connection rules simple and serialises writers without busy errors;
WAL lets other processes (a second ``datathread chat`` on the same home) read meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bot.private import private_file

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]


class Database:
    """Async access to a SQLite database at ``path`` (created with ``schema`` statements on open)."""

    def __init__(self, path: Path, schema: Iterable[str] = ()) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._schema = list(schema)

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            private_file(self.path)  # 0600 before SQLite creates it (and its journals) with the umask's mode
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for stmt in self._schema:
                conn.execute(stmt)
            conn.commit()
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the database thread and commit."""

        def call() -> T:
            conn = self._connect()
            with conn:
                return fn(conn)

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Execute one statement; return the number of rows changed."""
        return await self.run(lambda c: c.execute(sql, params).rowcount)

    async def fetchone(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = await self.run(lambda c: c.execute(sql, params).fetchone())
        return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return await self.run(lambda c: c.execute(sql, params).fetchall())

    async def aclose(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._pool, close)
        self._pool.shutdown(wait=True)
