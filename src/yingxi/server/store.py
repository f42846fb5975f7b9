"""The persistent job store: one SQLite table of jobs (WAL), claimed by workers under a lease token.

A job is never lost: it is written before the request is answered, and a running job whose worker
dies (lease expired or pid gone) goes back to the queue, up to `max_attempts`. A job never completes
twice: every write a worker makes is guarded by its lease token, so a late zombie changes nothing.
"""

from __future__ import annotations

import enum
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class QuotaExceeded(Exception):
    """The tenant already has as many unfinished tasks as it may."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,               -- "ark" | "openai" | "film": which API made it (how to show it)
    model TEXT NOT NULL,
    request TEXT NOT NULL,            -- JSON: the normalised request the worker renders from
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0, -- fraction of the film done, [0, 1]
    current_shot INTEGER NOT NULL DEFAULT 0,
    total_shots INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    lease TEXT,                       -- token of the worker that holds the job while running
    worker_pid INTEGER,
    heartbeat_at REAL,
    error_code TEXT,
    error_message TEXT,
    result TEXT,                      -- JSON: output files and what was rendered
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    expires_at REAL,                  -- outputs deleted after this (finished jobs)
    queue_deadline REAL               -- a job still queued or running after this expires (Ark's
                                      -- execution_expires_after); its worker loses the lease
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant, created_at);
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY,            -- SHA-256 hex of the key; the key itself is never stored
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL                 -- the last request it authenticated (to the minute)
);
"""

ID_PREFIX = {"ark": "cgt", "openai": "video", "film": "film"}


@dataclass(frozen=True)
class Job:
    id: str
    tenant: str
    kind: str
    model: str
    request: dict[str, Any]
    status: JobStatus
    progress: float
    current_shot: int
    total_shots: int
    message: str
    attempts: int
    max_attempts: int
    lease: str | None
    worker_pid: int | None
    heartbeat_at: float | None
    error_code: str | None
    error_message: str | None
    result: dict[str, Any] | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    queue_deadline: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        d = dict(row)
        d["request"] = json.loads(d["request"])
        d["result"] = json.loads(d["result"]) if d["result"] else None
        d["status"] = JobStatus(d["status"])
        return cls(**d)


def new_job_id(kind: str) -> str:
    """Ark-like ids: cgt-20250331175019-1f2e3d4c (time first, so ids sort by creation)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{ID_PREFIX.get(kind, 'task')}-{stamp}-{secrets.token_hex(4)}"


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobStore:
    """Thread-safe (one connection per thread) and process-safe (SQLite locking, BEGIN IMMEDIATE)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._local = threading.local()
        self._db().executescript(SCHEMA)
        columns = {r["name"] for r in self._db().execute("PRAGMA table_info(api_keys)")}
        if "last_used_at" not in columns:  # a data dir made before keys recorded their last use
            with self._write() as db:
                if "last_used_at" not in {r["name"] for r in db.execute("PRAGMA table_info(api_keys)")}:
                    db.execute("ALTER TABLE api_keys ADD COLUMN last_used_at REAL")

    # -- connections ---------------------------------------------------------------------------
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

    def _write(self) -> _Transaction:
        return _Transaction(self._db())

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- API side ------------------------------------------------------------------------------
    def create(
        self,
        *,
        tenant: str,
        kind: str,
        model: str,
        request: dict[str, Any],
        max_attempts: int,
        max_unfinished: int | None = None,
        queue_seconds: float | None = None,
        job_id: str | None = None,
    ) -> Job:
        """Insert a queued job; QuotaExceeded when the tenant already has max_unfinished open jobs."""
        now = self.clock()
        job_id = job_id or new_job_id(kind)
        with self._write() as db:
            if max_unfinished is not None:
                (open_jobs,) = db.execute(
                    "SELECT COUNT(*) FROM jobs WHERE tenant=? AND status IN ('queued','running')", (tenant,)
                ).fetchone()
                if open_jobs >= max_unfinished:
                    raise QuotaExceeded(
                        f"{open_jobs} tasks are already queued or running (at most {max_unfinished})"
                    )
            db.execute(
                "INSERT INTO jobs (id, tenant, kind, model, request, status, max_attempts, created_at, updated_at,"
                " queue_deadline) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (job_id, tenant, kind, model, json.dumps(request), JobStatus.QUEUED.value, max_attempts, now, now,
                 now + queue_seconds if queue_seconds else None),
            )  # fmt: skip
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str, tenant: str | None = None) -> Job | None:
        sql, args = "SELECT * FROM jobs WHERE id=?", [job_id]
        if tenant is not None:
            sql, args = sql + " AND tenant=?", args + [tenant]
        row = self._db().execute(sql, args).fetchone()
        return Job.from_row(row) if row else None

    def list(
        self,
        tenant: str,
        *,
        statuses: Iterable[str] = (),
        ids: Iterable[str] = (),
        model: str | None = None,
        kinds: Iterable[str] = (),
        offset: int = 0,
        limit: int = 20,
        newest_first: bool = True,
        after: str | None = None,
    ) -> tuple[list[Job], int]:
        """A page of a tenant's jobs and the total that match the filters."""
        where, args = ["tenant=?"], [tenant]
        for column, values in (("status", list(statuses)), ("id", list(ids)), ("kind", list(kinds))):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args += values
        if model:
            where.append("model=?")
            args.append(model)
        order = "DESC" if newest_first else "ASC"
        cond = " AND ".join(where)
        db = self._db()
        (total,) = db.execute(f"SELECT COUNT(*) FROM jobs WHERE {cond}", args).fetchone()
        if after is not None:  # cursor paging: the rows past `after` in this order
            cmp = "<" if newest_first else ">"
            cond += f" AND (created_at, id) {cmp} (SELECT created_at, id FROM jobs WHERE id=?)"
            args = args + [after]
        rows = db.execute(
            f"SELECT * FROM jobs WHERE {cond} ORDER BY created_at {order}, id {order} LIMIT ? OFFSET ?",
            args + [limit, offset],
        ).fetchall()
        return [Job.from_row(r) for r in rows], total

    def cancel(self, job_id: str, tenant: str, ttl_seconds: float) -> Job | None:
        """Queued or running -> cancelled (a running worker notices at its next heartbeat)."""
        now = self.clock()
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET status='cancelled', lease=NULL, updated_at=?, finished_at=?, error_code=?,"
                " error_message=?, expires_at=? WHERE id=? AND tenant=? AND status IN ('queued','running')",
                (now, now, "TaskCancelled", "the task was cancelled", now + ttl_seconds, job_id, tenant),
            )
        return self.get(job_id, tenant)

    def delete(self, job_id: str, tenant: str) -> bool:
        """Remove a finished job's record (the caller deletes its files)."""
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM jobs WHERE id=? AND tenant=? AND status NOT IN ('queued','running')",
                (job_id, tenant),
            )
            return cur.rowcount == 1

    # -- worker side ---------------------------------------------------------------------------
    def claim(self, pid: int) -> tuple[Job, str] | None:
        """Take the oldest queued job atomically; returns it with the lease token that guards it."""
        if self._db().execute("SELECT 1 FROM jobs WHERE status='queued' LIMIT 1").fetchone() is None:
            return None  # the common idle case, without taking the write lock
        now = self.clock()
        lease = secrets.token_hex(8)
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE status='queued' ORDER BY created_at, id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            cur = db.execute(
                "UPDATE jobs SET status='running', lease=?, worker_pid=?, heartbeat_at=?, attempts=attempts+1,"
                " started_at=COALESCE(started_at, ?), updated_at=?, progress=0, current_shot=0, message=''"
                " WHERE id=? AND status='queued'",
                (lease, pid, now, now, now, row["id"]),
            )
            if cur.rowcount != 1:
                return None
        job = self.get(row["id"])
        assert job is not None
        return job, lease

    def heartbeat(self, job_id: str, lease: str) -> bool:
        """False when the job is no longer ours (cancelled, requeued, deleted): stop working on it."""
        now = self.clock()
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET heartbeat_at=? WHERE id=? AND lease=? AND status='running'",
                (now, job_id, lease),
            )
            return cur.rowcount == 1

    def report_progress(
        self, job_id: str, lease: str, fraction: float, shot: int, total: int, message: str
    ) -> bool:
        now = self.clock()
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET progress=?, current_shot=?, total_shots=?, message=?, heartbeat_at=?, updated_at=?"
                " WHERE id=? AND lease=? AND status='running'",
                (min(max(fraction, 0.0), 1.0), shot, total, message[:200], now, now, job_id, lease),
            )
            return cur.rowcount == 1

    def finish(
        self, job_id: str, lease: str, result: dict[str, Any], ttl_seconds: float, publish: Callable[[], None]
    ) -> bool:
        """Mark succeeded and call `publish` (the atomic rename of the outputs) inside the same write lock,
        only when we still hold the lease; False (nothing published) when a zombie tries."""
        now = self.clock()
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET status='succeeded', result=?, progress=1, lease=NULL, updated_at=?, finished_at=?,"
                " expires_at=?, message='done' WHERE id=? AND lease=? AND status='running'",
                (json.dumps(result), now, now, now + ttl_seconds, job_id, lease),
            )
            if cur.rowcount != 1:
                return False
            publish()  # raises -> the transaction rolls back and the job stays running (then retried)
            return True

    def fail(
        self, job_id: str, lease: str, code: str, message: str, *, retry: bool, ttl_seconds: float
    ) -> bool:
        """Failed for good, or back to the queue when `retry` and attempts remain."""
        now = self.clock()
        with self._write() as db:
            row = db.execute(
                "SELECT attempts, max_attempts FROM jobs WHERE id=? AND lease=? AND status='running'",
                (job_id, lease),
            ).fetchone()
            if row is None:
                return False
            if retry and row["attempts"] < row["max_attempts"]:
                db.execute(
                    "UPDATE jobs SET status='queued', lease=NULL, worker_pid=NULL, updated_at=?, message=? WHERE id=?",
                    (now, f"retrying after: {message}"[:200], job_id),
                )
            else:
                self._fail_row(db, job_id, code, message, now, ttl_seconds)
            return True

    @staticmethod
    def _fail_row(
        db: sqlite3.Connection, job_id: str, code: str, message: str, now: float, ttl: float
    ) -> None:
        db.execute(
            "UPDATE jobs SET status='failed', lease=NULL, error_code=?, error_message=?, updated_at=?, finished_at=?,"
            " expires_at=? WHERE id=?",
            (code, message, now, now, now + ttl, job_id),
        )

    # -- supervisor side ---------------------------------------------------------------------------
    def recover(self, *, lease_seconds: float, ttl_seconds: float, dead_pids: Iterable[int] = (),
                all_running: bool = False) -> list[str]:  # fmt: skip
        """Requeue running jobs whose worker is gone (pid in dead_pids, pid not alive, lease expired, or
        every running job when `all_running`, at startup); fail those that used up their attempts."""
        now = self.clock()
        dead = set(dead_pids)
        touched = []
        with self._write() as db:
            for row in db.execute("SELECT * FROM jobs WHERE status='running'").fetchall():
                gone = (
                    all_running
                    or row["worker_pid"] in dead
                    or not pid_alive(row["worker_pid"])
                    or (row["heartbeat_at"] or 0) < now - lease_seconds
                )
                if not gone:
                    continue
                touched.append(row["id"])
                if row["attempts"] >= row["max_attempts"]:
                    msg = f"the worker stopped during each of {row['attempts']} attempts; giving up"
                    self._fail_row(db, row["id"], "InternalServiceError", msg, now, ttl_seconds)
                else:
                    db.execute(
                        "UPDATE jobs SET status='queued', lease=NULL, worker_pid=NULL, updated_at=?, message=?"
                        " WHERE id=?",
                        (now, f"requeued: the worker stopped during attempt {row['attempts']}", row["id"]),
                    )
        return touched

    def release(self, pids: Iterable[int]) -> list[str]:
        """Requeue the running jobs of workers we stopped on purpose (a graceful shutdown); the attempt
        they were on is not counted against the job."""
        now = self.clock()
        pids = list(pids)
        if not pids:
            return []
        marks = ",".join("?" * len(pids))
        with self._write() as db:
            rows = db.execute(f"SELECT id FROM jobs WHERE status='running' AND worker_pid IN ({marks})", pids)
            ids = [r["id"] for r in rows.fetchall()]
            db.execute(
                "UPDATE jobs SET status='queued', lease=NULL, worker_pid=NULL, attempts=MAX(attempts-1, 0),"
                f" updated_at=?, message='requeued: the server stopped' WHERE status='running' AND worker_pid IN ({marks})",
                [now, *pids],
            )
        return ids

    def expire(self) -> list[Job]:
        """Outputs past their expiry: succeeded jobs become `expired`, failed/cancelled ones keep their status;
        jobs still queued or running past their deadline expire too (a running one's worker then finds its
        lease gone and stops). Returns them (the caller deletes files)."""
        now = self.clock()
        with self._write() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE (status IN ('succeeded','failed','cancelled') AND expires_at < ?)"
                " OR (status IN ('queued','running') AND queue_deadline < ?)",
                (now, now),
            ).fetchall()
            for row in rows:
                status = row["status"] if row["status"] in ("failed", "cancelled") else "expired"
                db.execute(
                    "UPDATE jobs SET status=?, lease=NULL, updated_at=?, finished_at=COALESCE(finished_at, ?),"
                    " expires_at=NULL WHERE id=?",
                    (status, now, now, row["id"]),
                )
        return [Job.from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Jobs per status, for the health endpoint."""
        rows = self._db().execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}

    # -- API keys ------------------------------------------------------------------------------
    def add_key(self, key_hash: str, tenant: str, name: str) -> None:
        with self._write() as db:
            db.execute("INSERT INTO api_keys (hash, tenant, name, created_at) VALUES (?,?,?,?)",
                       (key_hash, tenant, name, self.clock()))  # fmt: skip

    def tenant_for(self, key_hash: str) -> str | None:
        """The key's tenant; its last use is recorded, at most once a minute (a write per request is not)."""
        row = (
            self._db()
            .execute("SELECT tenant, last_used_at FROM api_keys WHERE hash=?", (key_hash,))
            .fetchone()
        )
        if row is None:
            return None
        now = self.clock()
        if row["last_used_at"] is None or now - row["last_used_at"] >= 60:
            with self._write() as db:
                db.execute("UPDATE api_keys SET last_used_at=? WHERE hash=?", (now, key_hash))
        return row["tenant"]

    def list_keys(self) -> list[dict]:
        """Every key's name, tenant, short id (the hash's start: never the key), created and last used."""
        rows = self._db().execute("SELECT * FROM api_keys ORDER BY created_at, hash").fetchall()
        return [{"id": r["hash"][:8], "name": r["name"], "tenant": r["tenant"], "created_at": r["created_at"],
                 "last_used_at": r["last_used_at"]} for r in rows]  # fmt: skip

    def remove_keys(self, name: str) -> int:
        """Delete the keys named `name`; how many there were. Their tenant's tasks stay."""
        with self._write() as db:
            return db.execute("DELETE FROM api_keys WHERE name=?", (name,)).rowcount


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the write lock is taken up front, so two claims
    can never both see the same queued row."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
