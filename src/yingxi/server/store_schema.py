"""The job store's tables, written once for both dialects (`{real}` is REAL in SQLite, DOUBLE PRECISION in
PostgreSQL, whose REAL is single precision: a timestamp would lose its seconds)."""

from __future__ import annotations

import dataclasses

from yingxi.server.jobs import Job

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
