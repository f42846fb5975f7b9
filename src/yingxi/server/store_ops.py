"""Queries of the job store beyond the queue itself: workers' heartbeats, shot timings and the histograms
/metrics reads, API keys, and the settings every API server shares. Mixed into `SqlJobQueue`, whose
dialect supplies `_exec`, `_one` and `_write`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from yingxi.server.store_schema import BUCKETS


class OperationsQueries:
    """The operations half of the store (see the module docstring)."""

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
