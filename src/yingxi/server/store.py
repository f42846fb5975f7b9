"""Job stores behind the `JobQueue` protocol: SQLite (WAL) for one machine, and `open_queue(url)`, which picks
SQLite or PostgreSQL (`store_pg.py`) from a database URL. The queries both share are in `store_sql.py`."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from yingxi.server.jobs import (
    Job,
    JobQueue,
    JobStatus,
    Quota,
    QuotaExceeded,
    new_job_id,
    pid_alive,
    worker_id,
)
from yingxi.server.store_schema import SCHEMA
from yingxi.server.store_sql import SqlJobQueue

__all__ = ["Job", "JobQueue", "JobStatus", "JobStore", "Quota", "QuotaExceeded", "SqlJobQueue", "SqliteJobQueue",
           "new_job_id", "open_queue", "pid_alive", "worker_id"]  # fmt: skip


class SqliteJobQueue(SqlJobQueue):
    """One machine: thread-safe (one connection per thread) and process-safe (SQLite locking, BEGIN
    IMMEDIATE takes the write lock up front, so two claims can never both see the same queued row)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time):
        super().__init__(clock)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        db = self._db()
        db.executescript(SCHEMA.format(real="REAL"))
        columns = {r["name"] for r in db.execute("PRAGMA table_info(jobs)").fetchall()}
        for column, kind in (("worker", "TEXT"), ("output_bytes", "BIGINT")):  # a store from an older version
            if column not in columns:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        if "last_used_at" not in {r["name"] for r in db.execute("PRAGMA table_info(api_keys)")}:
            db.execute(
                "ALTER TABLE api_keys ADD COLUMN last_used_at REAL"
            )  # keys made before they recorded it

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


JobStore = SqliteJobQueue  # the name the single-machine server has always used


def open_queue(url: str | None, data_dir: Path, clock: Callable[[], float] = time.time) -> JobQueue:
    """The job store a `--database-url` names: sqlite:///PATH, postgresql://..., or None for
    `data_dir/jobs.db`. An unknown scheme is a ValueError naming the accepted ones."""
    if not url:
        return SqliteJobQueue(Path(data_dir) / "jobs.db", clock)
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        rest = url.split(":", 1)[1]
        if not rest.startswith("///") or len(rest) == 3:  # sqlite:///relative.db, sqlite:////absolute.db
            raise ValueError(
                "write a SQLite database URL as sqlite:///relative/jobs.db or sqlite:////abs/jobs.db"
            )
        return SqliteJobQueue(Path(rest[3:]), clock)
    if scheme in ("postgresql", "postgres"):
        from yingxi.server.store_pg import PostgresJobQueue

        return PostgresJobQueue(url, clock)
    raise ValueError(f'unknown database URL scheme "{scheme}"; accepted: sqlite:///PATH, postgresql://...')
