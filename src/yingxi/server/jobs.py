"""What a job is, and the `JobQueue` protocol every job store implements (SQLite, PostgreSQL).

A job is never lost: it is written before the request is answered, and a running job whose worker
stops heartbeating goes back to the queue (up to `max_attempts`). A job never completes twice: every write
a worker makes is guarded by its lease token, so a late zombie changes nothing. Workers are named
`host:pid:nonce`, so a shared database can tell the workers of many machines apart; recovery goes by lease
expiry (and by the names a supervisor knows to be dead), never by asking whether some pid is alive here.
"""

from __future__ import annotations

import enum
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


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
    """The tenant is at one of its limits; `retry_after` says in how many seconds to try again."""

    def __init__(self, message: str, retry_after: float = 30.0):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


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
    worker: str | None  # host:pid:nonce of the worker holding it
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
    output_bytes: int | None = None  # bytes of the published outputs (per-tenant storage quota)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        d = dict(row)
        d["request"] = json.loads(d["request"])
        d["result"] = json.loads(d["result"]) if d["result"] else None
        d["status"] = JobStatus(d["status"])
        return cls(**d)

    @property
    def worker_pid(self) -> int | None:
        """The pid part of `worker` (meaningful only on the worker's own host)."""
        parts = (self.worker or "").split(":")
        return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def new_job_id(kind: str) -> str:
    """Ark-like ids: cgt-20250331175019-1f2e3d4c (time first, so ids sort by creation)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{ID_PREFIX.get(kind, 'task')}-{stamp}-{secrets.token_hex(4)}"


def worker_id(pid: int | None = None) -> str:
    """`host:pid:nonce`: unique across machines and across pid reuse."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}:{secrets.token_hex(4)}"


def pid_alive(pid: int | None) -> bool:
    """Whether a process of this host is alive (for a supervisor's own children only)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Quota:
    """Per-tenant limits checked when a job is created (None: no limit)."""

    jobs_per_hour: int | None = None  # jobs created in the last 60 minutes, deleted ones included
    output_bytes: int | None = None  # bytes of outputs kept (succeeded, not yet expired or deleted)


@runtime_checkable
class KeyStore(Protocol):
    """API keys (their SHA-256 hashes only) and the values every API server shares (the URL-signing secret).
    Kept in the job database (SQLite or PostgreSQL): every API server on it accepts the same keys."""

    shared: bool  # True when several machines may use it (recovery then never assumes a local view)

    def add_key(self, key_hash: str, tenant: str, name: str) -> None: ...
    def tenant_for(self, key_hash: str) -> str | None: ...
    def list_keys(self) -> list[dict[str, Any]]: ...
    def remove_keys(self, name: str) -> int: ...
    def setting(self, name: str, default: Callable[[], str]) -> str: ...
    def close(self) -> None: ...


class JobQueue(KeyStore, Protocol):
    """The durable job store (its keys half is `KeyStore`); one test suite runs against every implementation."""

    def create(self, *, tenant: str, kind: str, model: str, request: dict[str, Any], max_attempts: int,
               max_unfinished: int | None = None, queue_seconds: float | None = None,
               job_id: str | None = None, quota: Quota | None = None) -> Job: ...  # fmt: skip
    def get(self, job_id: str, tenant: str | None = None) -> Job | None: ...
    def list(self, tenant: str, *, statuses: Iterable[str] = (), ids: Iterable[str] = (),
             model: str | None = None, kinds: Iterable[str] = (), offset: int = 0, limit: int = 20,
             newest_first: bool = True, after: str | None = None) -> tuple[list[Job], int]: ...  # fmt: skip
    def cancel(self, job_id: str, tenant: str, ttl_seconds: float) -> Job | None: ...
    def delete(self, job_id: str, tenant: str) -> bool: ...
    def claim(self, worker: str) -> tuple[Job, str] | None: ...
    def wait_for_work(self, timeout: float) -> None: ...
    def heartbeat(self, job_id: str, lease: str) -> bool: ...
    def report_progress(self, job_id: str, lease: str, fraction: float, shot: int, total: int,
                        message: str) -> bool: ...  # fmt: skip
    def finish(self, job_id: str, lease: str, result: dict[str, Any], ttl_seconds: float,
               publish: Callable[[], None]) -> bool: ...  # fmt: skip
    def fail(self, job_id: str, lease: str, code: str, message: str, *, retry: bool,
             ttl_seconds: float) -> bool: ...  # fmt: skip
    def recover(self, *, lease_seconds: float, ttl_seconds: float, dead_workers: Iterable[str] = (),
                all_running: bool = False) -> list[str]: ...  # fmt: skip
    def release(self, workers: Iterable[str]) -> list[str]: ...
    def expire(self) -> list[Job]: ...
    def counts(self) -> dict[str, int]: ...
