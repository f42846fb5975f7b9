"""Every query of the job queue once, written with `?` placeholders, for any DB-API connection: a dialect
(SQLite in `store.py`, PostgreSQL in `store_pg.py`) supplies connections, the write transaction and the few
words that differ (PostgreSQL claims with FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from yingxi.server.jobs import Job, JobStatus, Quota, QuotaExceeded, new_job_id
from yingxi.server.store_ops import OperationsQueries
from yingxi.server.store_schema import COLUMNS


class SqlJobQueue(OperationsQueries):
    """Every query of the job store, for any DB-API connection with `?` placeholders (see `_q`)."""

    shared = False
    greatest = "MAX"  # the two-argument maximum of the dialect
    lock_rows = ""  # appended to the claim's SELECT
    # Ark's service_tier "flex" (offline, cheaper): claimed only when no "default" job waits.
    flex_last = "CASE WHEN json_extract(request, '$.api.service_tier') = 'flex' THEN 1 ELSE 0 END"

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
        """Take the oldest queued job atomically (flex-tier jobs after every default one); returns it with the
        lease token that guards it."""
        if self._one("SELECT 1 AS one FROM jobs WHERE status='queued' LIMIT 1") is None:
            return None  # the common idle case, without taking the write lock
        now = self.clock()
        lease = secrets.token_hex(8)
        with self._write() as db:
            row = self._exec(
                db,
                f"SELECT id FROM jobs WHERE status='queued' ORDER BY {self.flex_last}, created_at, id LIMIT 1"
                f"{self.lock_rows}",
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
