"""`yingxi serve`: uvicorn for the API plus N worker processes, watched by a supervisor thread that
requeues the job of a worker that died, restarts the worker, and expires old outputs."""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import threading
import time

from yingxi.server import logs
from yingxi.server.artifacts import open_artifacts
from yingxi.server.settings import ServerSettings
from yingxi.server.store import open_queue

log = logging.getLogger("yingxi.server")


class Supervisor:
    """Owns the worker processes; `step()` is one round of watching (called every `interval` seconds)."""

    def __init__(self, settings: ServerSettings, interval: float = 0.5, expire_every: float = 5.0):
        self.settings = settings
        self.interval = interval
        self.expire_every = expire_every
        self.store = open_queue(settings.database_url, settings.data_dir)
        self.artifacts = open_artifacts(settings.tasks_dir)
        self.names: list[str | None] = [None] * settings.workers  # host:pid:nonce of each child
        self.mp = multiprocessing.get_context("spawn")
        self.workers: list = [None] * settings.workers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._since_expire = 0.0
        n = settings.workers
        self._started, self._failures, self._restart_at = [0.0] * n, [0] * n, [0.0] * n
        self._reported: set[int] = set()  # pids whose death was already handled

    def _spawn(self, index: int):
        from yingxi.server.worker import worker_main

        self._started[index] = time.monotonic()
        nonce = secrets.token_hex(4)
        p = self.mp.Process(target=worker_main, args=(self.settings.to_dict(), index, os.getpid(), nonce),
                            name=f"yingxi-worker-{index}", daemon=True)  # fmt: skip
        p.start()
        self.names[index] = f"{socket.gethostname()}:{p.pid}:{nonce}"
        log.info("started worker %d (pid %d)", index, p.pid)
        return p

    def start(self) -> None:
        # Nothing of ours runs yet: on a store of this machine alone, jobs left running by a previous server
        # (crash) go back to the queue now; on a shared one other machines' workers may hold them, so only
        # expired leases count (the supervisor's regular recovery).
        requeued = self.store.recover(lease_seconds=self.settings.lease_seconds, ttl_seconds=self._ttl,
                                      all_running=not self.store.shared)  # fmt: skip
        if requeued:
            log.info("requeued %d jobs left running by the previous server", len(requeued))
        orphans = self.remove_orphans()
        if orphans:
            log.info("removed %d task folders that no job owns", len(orphans))
        self.workers = [self._spawn(i) for i in range(self.settings.workers)]
        self._thread = threading.Thread(target=self._loop, name="yingxi-supervisor", daemon=True)
        self._thread.start()

    @property
    def _ttl(self) -> float:
        return self.settings.output_ttl_hours * 3600

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception:  # keep watching; a locked DB or a full disk is not a reason to stop
                log.exception("supervisor step failed")

    def step(self) -> None:
        dead = []
        now = time.monotonic()
        for i, p in enumerate(self.workers):
            if p is None or p.is_alive() or self._stop.is_set():
                continue
            if p.pid not in self._reported:
                self._reported.add(p.pid)
                dead.append(self.names[i])
                # A worker that dies soon after starting (bad model path, broken GPU) is restarted with
                # growing pauses instead of in a tight loop.
                quick = now - self._started[i] < 10.0
                self._failures[i] = self._failures[i] + 1 if quick else 0
                self._restart_at[i] = now + (
                    min(30.0, 2.0 ** (self._failures[i] - 1)) if self._failures[i] > 1 else 0.0
                )
                log.warning("worker %d (pid %d) exited with %s; restarting it", i, p.pid, p.exitcode)
            if now >= self._restart_at[i]:
                self.workers[i] = self._spawn(i)
        self.recover_and_expire(dead)

    def recover_and_expire(self, dead: list) -> None:
        """After a supervision step: kill hung workers, requeue (or fail) the jobs of stopped ones by their
        leases, clean what failed jobs left, and expire old outputs now and then (every pool does this)."""
        self.kill_hung()
        touched = self.store.recover(lease_seconds=self.settings.lease_seconds, ttl_seconds=self._ttl,
                                     dead_workers=dead)  # fmt: skip
        if touched:
            log.warning("requeued or failed jobs of stopped workers: %s", ", ".join(touched))
            self.clean_failed(touched)
        self._since_expire += self.interval
        if self._since_expire >= self.expire_every:
            self._since_expire = 0.0
            self.expire()

    def kill_hung(self) -> list[int]:
        """SIGKILL our children whose heartbeat is older than the lease (a SIGSTOPped or wholly deadlocked
        process): they would keep their slot forever. The next step restarts them and requeues the job."""
        ages = {w["name"]: w["age"] for w in self.store.workers()}
        killed = []
        for i, p in enumerate(self.workers):
            name = self.names[i]
            if p is None or not p.is_alive() or name not in ages or ages[name] <= self.settings.lease_seconds:
                continue
            if time.monotonic() - self._started[i] <= self.settings.lease_seconds:
                continue  # just started: its first heartbeat may still be on its way
            log.warning("worker %d (%s) sent no heartbeat for %.0fs; killing it", i, name, ages[name])
            os.kill(p.pid, signal.SIGKILL)
            killed.append(p.pid)
        return killed

    def clean_failed(self, job_ids: list[str]) -> None:
        """Partial outputs of jobs that failed for good when their workers died (a worker's own cleanup never
        ran): they would otherwise stay for the output TTL."""
        for job_id in job_ids:
            job = self.store.get(job_id)
            if job is not None and job.status.value == "failed":
                self.artifacts.clean_partials(job_id)

    def expire(self) -> None:
        self.store.forget_workers(older_than=max(600.0, 10 * self.settings.lease_seconds))
        for job in self.store.expire(retention_seconds=self.settings.row_retention_hours * 3600):
            self.artifacts.delete(job.id)

    def remove_orphans(self, min_age_seconds: float = 3600.0) -> list[str]:
        """Task folders with no job record: a request whose process died between saving its references
        and queueing the job, or a delete that lost its files' removal. Only old ones, so a request being
        validated right now (its job not yet written) keeps its folder."""
        if not self.settings.tasks_dir.is_dir():
            return []
        cutoff = time.time() - min_age_seconds
        removed = []
        for folder in self.settings.tasks_dir.iterdir():
            if folder.is_dir() and folder.stat().st_mtime < cutoff and self.store.get(folder.name) is None:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed

    def stop(self) -> None:
        """Stop the workers; their unfinished jobs go back to the queue without losing an attempt."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        names = [n for n, p in zip(self.names, self.workers, strict=True) if p is not None and n]
        for p in self.workers:
            if p is not None and p.is_alive():
                p.terminate()
        for p in self.workers:
            if p is not None:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=5)
        released = self.store.release(names)
        if released:
            log.info("requeued %d running jobs for the next start", len(released))


def run_workers(settings: ServerSettings) -> None:
    """`yingxi worker`: settings.workers render processes on this machine, watched and restarted, taking
    jobs from the shared job database, until SIGINT/SIGTERM (their running jobs then go back to the queue)."""
    logs.configure(settings.log_format)
    supervisor = Supervisor(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    supervisor.start()
    log.info("%d workers taking jobs from %s", settings.workers, settings.database_url or settings.db_path)
    try:
        stop.wait()
    finally:
        supervisor.stop()


def _announcing_server():
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        """uvicorn that prints where it listens once it accepts connections (not before: a URL printed
        early would be refused)."""

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started and self.servers and self.servers[0].sockets:
                print(f"yingxi: serving at {ready_url(self.config.host, self.servers[0].sockets[0].getsockname()[1])}"
                      " (the studio; the APIs under /api/v3, /v1, /api/v1); Ctrl-C stops", flush=True)  # fmt: skip

    return AnnouncingServer


def ready_url(host: str, port: int) -> str:
    """The URL a person can open: a wildcard host is reached as localhost; IPv6 in brackets."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_pool(settings: ServerSettings) -> Supervisor:
    """The workers `serve` runs: local processes, or Ray actors across a cluster (`--pool ray[://HEAD]`)."""
    if settings.pool == "local":
        return Supervisor(settings)
    from yingxi.server.ray_pool import RayPool

    return RayPool(settings)


def run(settings: ServerSettings) -> None:
    """Serve the API on settings.host:port with settings.workers render processes, until SIGINT/SIGTERM."""
    import uvicorn

    from yingxi.server.app import create_app

    logs.configure(settings.log_format)
    app = create_app(settings)
    _ = app.state.ctx.backend  # build the door backend now (Wan imports torch), not on the first request
    supervisor = make_pool(settings)
    supervisor.start()

    def _exit(signum, frame):  # uvicorn re-raises the signal it caught after shutting down: end cleanly
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=5
    )
    try:
        _announcing_server()(config).run()
    finally:
        supervisor.stop()
