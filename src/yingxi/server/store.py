"""Job stores behind the `JobQueue` protocol: the SQL both dialects share, and SQLite (WAL) for one machine.

`SqlJobQueue` holds every query once, written with `?` placeholders; a dialect supplies connections,
the write transaction and a few words (PostgreSQL, in `store_pg.py`, claims with FOR UPDATE SKIP LOCKED
and wakes idle workers with LISTEN/NOTIFY). `open_queue(url)` picks one from a database URL.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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

__all__ = ["Job", "JobQueue", "JobStatus", "JobStore", "QuotaExceeded", "SqlJobQueue", "SqliteJobQueue",
           "new_job_id", "open_queue", "pid_alive", "worker_id"]  # fmt: skip

COLUMNS = ", ".join(f.name for f in dataclasses.fields(Job))

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,               -- "ark" | "openai" | "film": which API made it (how to show it)
    model TEXT NOT NULL,
    request TEXT NOT NULL,            -- JSON: the normalised request the worker renders from
    status TEXT NOT NULL,
    progress {real} NOT NULL DEFAULT 0, -- fraction of the film done, [0, 1]
    current_shot INTEGER NOT NULL DEFAULT 0,
    total_shots INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    lease TEXT,                       -- token of the worker that holds the job while running
    worker TEXT,                      -- host:pid:nonce of that worker
    heartbeat_at {real},
    error_code TEXT,
    error_message TEXT,
    result TEXT,                      -- JSON: output files and what was rendered
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    started_at {real},
    finished_at {real},
    expires_at {real},                -- outputs deleted after this (finished jobs)
    queue_deadline {real},            -- a job still queued or running after this expires (Ark's
                                      -- execution_expires_after); its worker loses the lease
    output_bytes BIGINT               -- bytes of the published outputs
);
CREATE TABLE IF NOT EXISTS tenant_usage (  -- jobs created per tenant per minute (rate quota; never deleted
    tenant TEXT NOT NULL,                  -- with the job, so create-and-delete cannot reset it)
    minute BIGINT NOT NULL,
    jobs INTEGER NOT NULL,
    PRIMARY KEY (tenant, minute)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant, created_at);
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY,            -- SHA-256 hex of the key; the key itself is never stored
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at {real} NOT NULL,
    last_used_at {real}               -- the last request it authenticated (to the minute)
);
CREATE TABLE IF NOT EXISTS settings (   -- values every API server shares (the URL-signing secret)
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (    -- every worker says it is alive, idle or not (readiness, metrics)
    name TEXT PRIMARY KEY,            -- host:pid:nonce
    backend TEXT NOT NULL,
    started_at {real} NOT NULL,
    heartbeat_at {real} NOT NULL,
    device_bytes BIGINT               -- accelerator memory the worker's process holds, where known
);
CREATE TABLE IF NOT EXISTS shot_timings (
    job_id TEXT NOT NULL,
    backend TEXT NOT NULL,
    seconds {real} NOT NULL,
    at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS shot_timings_at ON shot_timings (at);
"""

# Upper bounds (seconds) of the duration histograms: an animatic shot takes a second, a Wan film an hour.
BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class SqlJobQueue:
    """Every query of the job store, for any DB-API connection with `?` placeholders (see `_q`)."""

    shared = False
    greatest = "MAX"  # the two-argument maximum of the dialect
    lock_rows = ""  # appended to the claim's SELECT

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    # -- what a dialect supplies ---------------------------------------------------------------------
    def _db(self) -> Any:
        raise NotImplementedError

    @contextmanager
    def _write(self) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def _q(self, sql: str) -> str:
        return sql

    def _notify(self, db: Any) -> None:
        """Tell idle workers a job was queued (inside the creating transaction)."""

    def wait_for_work(self, timeout: float) -> None:
        """Return when a job may have been queued, or after `timeout` seconds."""
        time.sleep(timeout)

    def close(self) -> None:
        raise NotImplementedError

    def _exec(self, db: Any, sql: str, args: Iterable[Any] = ()) -> Any:
        return db.execute(self._q(sql), tuple(args))

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        return self._exec(self._db(), sql, args).fetchone()

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
        quota: Quota | None = None,
    ) -> Job:
        """Insert a queued job; QuotaExceeded when the tenant already has max_unfinished open jobs or is at
        one of its `quota` limits."""
        now = self.clock()
        job_id = job_id or new_job_id(kind)
        with self._write() as db:
            if max_unfinished is not None:
                row = self._exec(
                    db,
                    "SELECT COUNT(*) AS n FROM jobs WHERE tenant=? AND status IN ('queued','running')",
                    (tenant,),
                ).fetchone()
                if row["n"] >= max_unfinished:
                    raise QuotaExceeded(
                        f"{row['n']} tasks are already queued or running (at most {max_unfinished}); "
                        "wait for some to finish"
                    )
            self._check_quota(db, tenant, quota or Quota(), now)
            self._exec(
                db,
                "INSERT INTO jobs (id, tenant, kind, model, request, status, max_attempts, created_at, updated_at,"
                " queue_deadline) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (job_id, tenant, kind, model, json.dumps(request), JobStatus.QUEUED.value, max_attempts, now, now,
                 now + queue_seconds if queue_seconds else None),
            )  # fmt: skip
            self._notify(db)
        job = self.get(job_id)
        assert job is not None
        return job

    def _check_quota(self, db: Any, tenant: str, quota: Quota, now: float) -> None:
        minute = int(now // 60)
        if quota.jobs_per_hour is not None:
            rows = self._exec(
                db, "SELECT minute, jobs FROM tenant_usage WHERE tenant=? AND minute > ? ORDER BY minute",
                (tenant, minute - 60),
            ).fetchall()  # fmt: skip
            made = sum(r["jobs"] for r in rows)
            if made >= quota.jobs_per_hour:
                # Room comes back when the oldest minutes with jobs in them leave the hour.
                freed, wait = 0, 60.0
                for r in rows:
                    freed += r["jobs"]
                    if made - freed < quota.jobs_per_hour:
                        wait = (r["minute"] + 61) * 60 - now
                        break
                raise QuotaExceeded(
                    f"{made} tasks were created in the last hour (at most {quota.jobs_per_hour})", wait
                )
        if quota.output_bytes is not None:
            row = self._exec(
                db, "SELECT COALESCE(SUM(output_bytes), 0) AS n FROM jobs WHERE tenant=? AND status='succeeded'",
                (tenant,),
            ).fetchone()  # fmt: skip
            if row["n"] >= quota.output_bytes:
                raise QuotaExceeded(
                    f"the outputs kept take {row['n'] / 2**20:.0f} MiB (at most {quota.output_bytes / 2**20:.0f} "
                    "MiB); delete some tasks or wait for their outputs to expire",
                    3600,
                )
        self._exec(
            db,
            "INSERT INTO tenant_usage (tenant, minute, jobs) VALUES (?, ?, 1)"
            " ON CONFLICT (tenant, minute) DO UPDATE SET jobs = tenant_usage.jobs + 1",
            (tenant, minute),
        )

    def get(self, job_id: str, tenant: str | None = None) -> Job | None:
        sql, args = f"SELECT {COLUMNS} FROM jobs WHERE id=?", [job_id]
        if tenant is not None:
            sql, args = sql + " AND tenant=?", args + [tenant]
        row = self._one(sql, args)
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
        total = self._exec(db, f"SELECT COUNT(*) AS n FROM jobs WHERE {cond}", args).fetchone()["n"]
        if after is not None:  # cursor paging: the rows past `after` in this order
            cmp = "<" if newest_first else ">"
            cond += f" AND (created_at, id) {cmp} (SELECT created_at, id FROM jobs WHERE id=?)"
            args = args + [after]
        rows = self._exec(
            db,
            f"SELECT {COLUMNS} FROM jobs WHERE {cond} ORDER BY created_at {order}, id {order} LIMIT ? OFFSET ?",
            args + [limit, offset],
        ).fetchall()
        return [Job.from_row(r) for r in rows], total

    def cancel(self, job_id: str, tenant: str, ttl_seconds: float) -> Job | None:
        """Queued or running -> cancelled (a running worker notices at its next heartbeat)."""
        now = self.clock()
        with self._write() as db:
            self._exec(
                db,
                "UPDATE jobs SET status='cancelled', lease=NULL, updated_at=?, finished_at=?, error_code=?,"
                " error_message=?, expires_at=? WHERE id=? AND tenant=? AND status IN ('queued','running')",
                (now, now, "TaskCancelled", "the task was cancelled", now + ttl_seconds, job_id, tenant),
            )
        return self.get(job_id, tenant)

    def delete(self, job_id: str, tenant: str) -> bool:
        """Remove a finished job's record (the caller deletes its files)."""
        with self._write() as db:
            cur = self._exec(
                db,
                "DELETE FROM jobs WHERE id=? AND tenant=? AND status NOT IN ('queued','running')",
                (job_id, tenant),
            )
            return cur.rowcount == 1

    # -- worker side ---------------------------------------------------------------------------
    def claim(self, worker: str) -> tuple[Job, str] | None:
        """Take the oldest queued job atomically; returns it with the lease token that guards it."""
        if self._one("SELECT 1 AS one FROM jobs WHERE status='queued' LIMIT 1") is None:
            return None  # the common idle case, without taking the write lock
        now = self.clock()
        lease = secrets.token_hex(8)
        with self._write() as db:
            row = self._exec(
                db,
                f"SELECT id FROM jobs WHERE status='queued' ORDER BY created_at, id LIMIT 1{self.lock_rows}",
            ).fetchone()
            if row is None:
                return None
            cur = self._exec(
                db,
                "UPDATE jobs SET status='running', lease=?, worker=?, heartbeat_at=?, attempts=attempts+1,"
                " started_at=COALESCE(started_at, ?), updated_at=?, progress=0, current_shot=0, message=''"
                " WHERE id=? AND status='queued'",
                (lease, worker, now, now, now, row["id"]),
            )
            if cur.rowcount != 1:
                return None
        job = self.get(row["id"])
        assert job is not None
        return job, lease

    def heartbeat(self, job_id: str, lease: str) -> bool:
        """False when the job is no longer ours (cancelled, requeued, deleted): stop working on it."""
        with self._write() as db:
            cur = self._exec(
                db,
                "UPDATE jobs SET heartbeat_at=? WHERE id=? AND lease=? AND status='running'",
                (self.clock(), job_id, lease),
            )
            return cur.rowcount == 1

    def report_progress(
        self, job_id: str, lease: str, fraction: float, shot: int, total: int, message: str
    ) -> bool:
        now = self.clock()
        with self._write() as db:
            cur = self._exec(
                db,
                "UPDATE jobs SET progress=?, current_shot=?, total_shots=?, message=?, heartbeat_at=?, updated_at=?"
                " WHERE id=? AND lease=? AND status='running'",
                (min(max(fraction, 0.0), 1.0), shot, total, message[:200], now, now, job_id, lease),
            )
            return cur.rowcount == 1

    def finish(
        self, job_id: str, lease: str, result: dict[str, Any], ttl_seconds: float, publish: Callable[[], None]
    ) -> bool:
        """Mark succeeded and call `publish` (the atomic rename of the outputs) inside the same write
        transaction, only when we still hold the lease; False (nothing published) when a zombie tries."""
        now = self.clock()
        with self._write() as db:
            cur = self._exec(
                db,
                "UPDATE jobs SET status='succeeded', result=?, progress=1, lease=NULL, updated_at=?, finished_at=?,"
                " expires_at=?, message='done', output_bytes=? WHERE id=? AND lease=? AND status='running'",
                (
                    json.dumps(result),
                    now,
                    now,
                    now + ttl_seconds,
                    int(result.get("bytes") or 0),
                    job_id,
                    lease,
                ),
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
            row = self._exec(
                db,
                f"SELECT attempts, max_attempts FROM jobs WHERE id=? AND lease=? AND status='running'{self.lock_rows}",
                (job_id, lease),
            ).fetchone()
            if row is None:
                return False
            if retry and row["attempts"] < row["max_attempts"]:
                self._requeue(db, job_id, f"retrying after: {message}", now)
            else:
                self._fail_row(db, job_id, code, message, now, ttl_seconds)
            return True

    def _requeue(self, db: Any, job_id: str, message: str, now: float) -> None:
        self._exec(
            db,
            "UPDATE jobs SET status='queued', lease=NULL, worker=NULL, updated_at=?, message=? WHERE id=?",
            (now, message[:200], job_id),
        )
        self._notify(db)

    def _fail_row(self, db: Any, job_id: str, code: str, message: str, now: float, ttl: float) -> None:
        self._exec(
            db,
            "UPDATE jobs SET status='failed', lease=NULL, error_code=?, error_message=?, updated_at=?, finished_at=?,"
            " expires_at=? WHERE id=?",
            (code, message, now, now, now + ttl, job_id),
        )

    # -- supervisor side ---------------------------------------------------------------------------
    def recover(self, *, lease_seconds: float, ttl_seconds: float, dead_workers: Iterable[str] = (),
                all_running: bool = False) -> list[str]:  # fmt: skip
        """Requeue running jobs whose lease expired (no heartbeat for `lease_seconds`) or whose worker is
        in `dead_workers` (names a supervisor saw die), or every running job when `all_running` (a
        single-machine store at startup); fail those that used up their attempts."""
        now = self.clock()
        dead = set(dead_workers)
        touched = []
        with self._write() as db:
            rows = self._exec(
                db, f"SELECT {COLUMNS} FROM jobs WHERE status='running'{self.lock_rows}"
            ).fetchall()
            for row in rows:
                gone = (
                    all_running or row["worker"] in dead or (row["heartbeat_at"] or 0) < now - lease_seconds
                )
                if not gone:
                    continue
                touched.append(row["id"])
                if row["attempts"] >= row["max_attempts"]:
                    msg = f"the worker stopped during each of {row['attempts']} attempts; giving up"
                    self._fail_row(db, row["id"], "InternalServiceError", msg, now, ttl_seconds)
                else:
                    self._requeue(
                        db, row["id"], f"requeued: the worker stopped during attempt {row['attempts']}", now
                    )
        return touched

    def release(self, workers: Iterable[str]) -> list[str]:
        """Requeue the running jobs of workers we stopped on purpose (a graceful shutdown); the attempt
        they were on is not counted against the job."""
        workers = list(workers)
        if not workers:
            return []
        now = self.clock()
        marks = ",".join("?" * len(workers))
        with self._write() as db:
            rows = self._exec(
                db, f"SELECT id FROM jobs WHERE status='running' AND worker IN ({marks})", workers
            )
            ids = [r["id"] for r in rows.fetchall()]
            self._exec(
                db,
                f"UPDATE jobs SET status='queued', lease=NULL, worker=NULL, attempts={self.greatest}(attempts-1, 0),"
                f" updated_at=?, message='requeued: the server stopped' WHERE status='running' AND worker IN ({marks})",
                [now, *workers],
            )
            if ids:
                self._notify(db)
        return ids

    def expire(self, retention_seconds: float | None = None) -> list[Job]:
        """Outputs past their expiry: succeeded jobs become `expired`, failed/cancelled ones keep their status;
        jobs still queued or running past their deadline expire too (a running one's worker then finds its
        lease gone and stops). Returns them (the caller deletes files). Records whose outputs are gone are
        deleted `retention_seconds` after they finished, and rate counts once older than an hour."""
        now = self.clock()
        with self._write() as db:
            if retention_seconds is not None:
                self._exec(
                    db,
                    "DELETE FROM jobs WHERE status IN ('expired','failed','cancelled') AND expires_at IS NULL"
                    " AND finished_at < ?",
                    (now - retention_seconds,),
                )
            self._exec(db, "DELETE FROM tenant_usage WHERE minute <= ?", (int(now // 60) - 60,))
            rows = self._exec(
                db,
                f"SELECT {COLUMNS} FROM jobs WHERE (status IN ('succeeded','failed','cancelled') AND expires_at < ?)"
                f" OR (status IN ('queued','running') AND queue_deadline < ?){self.lock_rows}",
                (now, now),
            ).fetchall()
            for row in rows:
                status = row["status"] if row["status"] in ("failed", "cancelled") else "expired"
                self._exec(
                    db,
                    "UPDATE jobs SET status=?, lease=NULL, updated_at=?, finished_at=COALESCE(finished_at, ?),"
                    " expires_at=NULL WHERE id=?",
                    (status, now, now, row["id"]),
                )
        return [Job.from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Jobs per status, for the health endpoint and the metrics."""
        rows = self._exec(self._db(), "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}

    # -- workers and what operations watch ---------------------------------------------------------------
    def worker_alive(self, name: str, backend: str, device_bytes: int | None = None) -> None:
        """A worker's heartbeat, idle or not."""
        now = self.clock()
        with self._write() as db:
            self._exec(
                db,
                "INSERT INTO workers (name, backend, started_at, heartbeat_at, device_bytes) VALUES (?,?,?,?,?)"
                " ON CONFLICT (name) DO UPDATE SET heartbeat_at=excluded.heartbeat_at,"
                " device_bytes=excluded.device_bytes",
                (name, backend, now, now, device_bytes),
            )

    def worker_gone(self, name: str) -> None:
        with self._write() as db:
            self._exec(db, "DELETE FROM workers WHERE name=?", (name,))

    def workers(self) -> list[dict[str, Any]]:
        """Every worker that said it was alive, with `age` (seconds since its last heartbeat)."""
        now = self.clock()
        rows = self._exec(
            self._db(), "SELECT name, backend, heartbeat_at, device_bytes FROM workers"
        ).fetchall()
        return [{**dict(r), "age": now - r["heartbeat_at"]} for r in rows]

    def forget_workers(self, older_than: float) -> None:
        """Drop workers silent for `older_than` seconds (killed without saying goodbye)."""
        with self._write() as db:
            self._exec(db, "DELETE FROM workers WHERE heartbeat_at < ?", (self.clock() - older_than,))

    def record_shots(self, job_id: str, backend: str, seconds: Iterable[float]) -> None:
        now = self.clock()
        with self._write() as db:
            for s in seconds:
                self._exec(db, "INSERT INTO shot_timings VALUES (?,?,?,?)", (job_id, backend, float(s), now))

    def histogram(self, what: str) -> tuple[list[tuple[float, int]], float, int]:
        """(cumulative counts per BUCKETS bound, sum, count) of "job" durations (started -> finished, jobs
        that succeeded) or "shot" durations, computed in the database, so every API server reports the same."""
        expr, source = {
            "job": ("finished_at - started_at", "jobs WHERE status='succeeded' AND started_at IS NOT NULL"),
            "shot": ("seconds", "shot_timings WHERE 1=1"),
        }[what]
        cases = ", ".join(
            f"SUM(CASE WHEN {expr} <= {float(b)} THEN 1 ELSE 0 END) AS b{i}" for i, b in enumerate(BUCKETS)
        )
        row = self._one(f"SELECT COUNT(*) AS n, COALESCE(SUM({expr}), 0) AS total, {cases} FROM {source}")
        buckets = [(b, int(row[f"b{i}"] or 0)) for i, b in enumerate(BUCKETS)]
        return buckets, float(row["total"]), int(row["n"])

    def retries(self) -> int:
        """Attempts beyond the first, over every job the store holds."""
        row = self._one("SELECT COALESCE(SUM(attempts - 1), 0) AS n FROM jobs WHERE attempts > 1")
        return int(row["n"])

    def ping(self) -> None:
        """Raise when the database cannot answer."""
        self._one("SELECT 1 AS one")

    # -- API keys and shared settings ----------------------------------------------------------------
    def add_key(self, key_hash: str, tenant: str, name: str) -> None:
        with self._write() as db:
            self._exec(db, "INSERT INTO api_keys (hash, tenant, name, created_at) VALUES (?,?,?,?)",
                       (key_hash, tenant, name, self.clock()))  # fmt: skip

    def tenant_for(self, key_hash: str) -> str | None:
        """The key's tenant; its last use is recorded, at most once a minute (a write per request is not)."""
        row = self._one("SELECT tenant, last_used_at FROM api_keys WHERE hash=?", (key_hash,))
        if row is None:
            return None
        now = self.clock()
        if row["last_used_at"] is None or now - row["last_used_at"] >= 60:
            with self._write() as db:
                self._exec(db, "UPDATE api_keys SET last_used_at=? WHERE hash=?", (now, key_hash))
        return row["tenant"]

    def list_keys(self) -> list[dict]:
        """Every key's name, tenant, short id (the hash's start: never the key), created and last used."""
        rows = self._exec(self._db(), "SELECT * FROM api_keys ORDER BY created_at, hash").fetchall()
        return [{"id": r["hash"][:8], "name": r["name"], "tenant": r["tenant"], "created_at": r["created_at"],
                 "last_used_at": r["last_used_at"]} for r in rows]  # fmt: skip

    def remove_keys(self, name: str) -> int:
        """Delete the keys named `name`; how many there were. Their tenant's tasks stay."""
        with self._write() as db:
            return self._exec(db, "DELETE FROM api_keys WHERE name=?", (name,)).rowcount

    def setting(self, name: str, default: Callable[[], str]) -> str:
        """The shared value called `name`, set to `default()` by whichever server asks first."""
        row = self._one("SELECT value FROM settings WHERE name=?", (name,))
        if row is not None:
            return row["value"]
        with self._write() as db:
            self._exec(
                db, "INSERT INTO settings VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, default())
            )
        return self._one("SELECT value FROM settings WHERE name=?", (name,))["value"]


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
