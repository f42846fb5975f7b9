"""PostgreSQL job store for many machines: claims with FOR UPDATE SKIP LOCKED, LISTEN/NOTIFY wake-ups.

The queries are `SqlJobQueue`'s; this file supplies psycopg 3 connections (one per thread), the write
transaction, and the words that differ. Every API server and worker of a deployment points at the same
database, so keys and the URL-signing secret live there too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from yingxi.server.store_schema import SCHEMA
from yingxi.server.store_sql import SqlJobQueue

CHANNEL = "yingxi_jobs"


class PostgresJobQueue(SqlJobQueue):
    shared = True
    greatest = "GREATEST"
    lock_rows = " FOR UPDATE SKIP LOCKED"  # a claimer skips rows another claimer holds: no waiting, no twice
    flex_last = "CASE WHEN (request::jsonb -> 'api' ->> 'service_tier') = 'flex' THEN 1 ELSE 0 END"

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        import psycopg

        self.url = url
        self._psycopg = psycopg
        self._local = threading.local()
        self._listener: Any = None
        self._listen_lock = threading.Lock()
        with self._write() as db:
            db.execute("SELECT pg_advisory_xact_lock(726373)")  # two servers starting at once: one creates
            db.execute(SCHEMA.format(real="DOUBLE PRECISION"))

    def _connect(self) -> Any:
        from psycopg.rows import dict_row

        try:
            return self._psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=10)
        except self._psycopg.OperationalError as e:
            raise ConnectionError(
                f"cannot reach the job database: {str(e).strip().splitlines()[0]}"
            ) from None

    def _db(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is None or db.closed or db.broken:
            db = self._connect()
            self._local.db = db
        return db

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def _write(self) -> Iterator[Any]:
        db = self._db()
        with db.transaction():
            yield db

    def _notify(self, db: Any) -> None:
        db.execute(f"NOTIFY {CHANNEL}")

    def wait_for_work(self, timeout: float) -> None:
        """Block on LISTEN until a job is queued (or `timeout` passes)."""
        with self._listen_lock:
            if self._listener is None or self._listener.closed:
                self._listener = self._connect()
                self._listener.execute(f"LISTEN {CHANNEL}")
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                return

    def close(self) -> None:
        for conn in (getattr(self._local, "db", None), self._listener):
            if conn is not None and not conn.closed:
                conn.close()
        self._local.db = None
        self._listener = None
