"""A render worker: claims one job at a time from the store, heartbeats while rendering, publishes the MP4
with an atomic rename under its lease. Run by `yingxi.server.run`, or alone:
`python -m yingxi.server.worker --data-dir DIR [--backend animatic|wan] [--model M] [--index N]`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from yingxi.errors import InputError
from yingxi.server.common import public_message
from yingxi.server.keys import secret_for
from yingxi.server.outbound import private_reason
from yingxi.server.settings import ServerSettings
from yingxi.server.store import Job, JobStore

log = logging.getLogger("yingxi.worker")
CALLBACK_TRIES = 3


class Lost(Exception):
    """The job is no longer ours (cancelled, deleted, expired or requeued): stop rendering it."""


def make_backend(settings: ServerSettings, index: int):
    """The backend named by the settings, built once per worker (Wan loads its weights here)."""
    if settings.backend == "animatic":
        from yingxi.backends.animatic import AnimaticGenerator

        return AnimaticGenerator()
    from yingxi.backends.wan import WanGenerator

    if not settings.model:
        raise InputError("the wan backend needs a model (a variant name or a folder)", field="model")
    device = settings.device
    if device is None:
        import torch

        device = f"cuda:{index % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    return WanGenerator(
        settings.model, device=device, offload=settings.offload, files=settings.model_files
    )  # weights load on the first shot


def door_backend(settings: ServerSettings):
    """The backend as the API process needs it: capabilities and checks only, no weights loaded, so a
    request the model cannot make is refused before it is queued."""
    if settings.backend == "animatic":
        from yingxi.backends.animatic import AnimaticGenerator

        return AnimaticGenerator()
    from yingxi.backends.wan import WanGenerator

    return WanGenerator(
        settings.model, files=settings.model_files
    )  # weights load only on first generate(), which never runs here


class Worker:
    def __init__(self, settings: ServerSettings, index: int = 0, parent_pid: int | None = None):
        self.settings = settings
        self.index = index
        self.parent_pid = parent_pid
        self.store = JobStore(settings.db_path)
        self.pid = os.getpid()
        self._backend = None
        self.stopping = threading.Event()

    @property
    def backend(self):
        if self._backend is None:
            self._backend = make_backend(self.settings, self.index)
        return self._backend

    def orphaned(self) -> bool:
        """Our supervisor died (kill -9): stop, the next server requeues our job."""
        return self.parent_pid is not None and os.getppid() != self.parent_pid

    def run_forever(self) -> None:
        log.info("worker %d (pid %d) ready, backend %s", self.index, self.pid, self.settings.backend)
        while not self.stopping.is_set() and not self.orphaned():
            if not self.run_once():
                time.sleep(self.settings.poll_seconds)

    def run_once(self) -> bool:
        """Claim and render one job; False when the queue was empty."""
        claimed = self.store.claim(self.pid)
        if claimed is None:
            return False
        job, lease = claimed
        self.render_job(job, lease)
        return True

    def render_job(self, job: Job, lease: str) -> None:
        from yingxi.render import ProgressEvent, render
        from yingxi.server.inputs import build_film

        settings, store = self.settings, self.store
        ttl = settings.output_ttl_hours * 3600
        task_dir = settings.tasks_dir / job.id
        out = task_dir / "out"
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.iterdir():  # leftovers of an attempt whose worker died
            stale.unlink(missing_ok=True)
        video, last = out / f"attempt-{lease}.mp4", out / f"attempt-{lease}.png"
        lost = threading.Event()
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(settings.heartbeat_seconds):
                if self.orphaned():
                    os._exit(3)  # nobody to report to; the next server requeues the job
                if not store.heartbeat(job.id, lease):
                    lost.set()
                    return

        last_report = [0.0, -1]

        def progress(event: ProgressEvent) -> None:
            if lost.is_set():
                raise Lost()
            now = time.monotonic()
            if now - last_report[0] >= 0.25 or event.shot != last_report[1] or event.fraction >= 1.0:
                last_report[:] = [now, event.shot]
                if not store.report_progress(job.id, lease, event.fraction, event.shot, event.total_shots,
                                             event.message):  # fmt: skip
                    lost.set()
                    raise Lost()

        beat = threading.Thread(target=heartbeat, name=f"heartbeat-{job.id}", daemon=True)
        beat.start()
        started = time.monotonic()
        try:
            film = build_film(job.request, task_dir)
            result = render(film, self.backend, video, progress, last_frame_png=last)
            if lost.is_set():
                raise Lost()
            facts = {"duration": result.duration, "num_frames": result.num_frames, "fps": result.fps,
                     "notes": list(result.notes), "seconds": round(time.monotonic() - started, 3),
                     "video": "video.mp4", "last_frame": "last_frame.png" if result.last_frame_path else None}  # fmt: skip

            def publish() -> None:  # inside the store's write lock, only if the lease is still ours
                os.replace(video, out / "video.mp4")
                if result.last_frame_path is not None:
                    os.replace(last, out / "last_frame.png")

            if store.finish(job.id, lease, facts, ttl, publish):
                log.info("job %s succeeded in %.1fs (attempt %d)", job.id, facts["seconds"], job.attempts)
            else:
                log.warning("job %s was taken from us before it finished; output dropped", job.id)
        except Lost:
            log.info("job %s stopped: cancelled, deleted, expired or requeued", job.id)
        except InputError as e:  # the request cannot be rendered: no retry helps
            store.fail(
                job.id, lease, "InvalidParameter", public_message(str(e)), retry=False, ttl_seconds=ttl
            )
        except Exception as e:
            log.exception("job %s failed on attempt %d", job.id, job.attempts)
            store.fail(job.id, lease, "InternalServiceError", public_message(f"{type(e).__name__}: {e}")[:500], retry=True,
                       ttl_seconds=ttl)  # fmt: skip
        finally:
            done.set()
            beat.join()
            video.unlink(missing_ok=True)
            last.unlink(missing_ok=True)
        self.notify(job.id)

    def notify(self, job_id: str) -> None:
        """POST the Ark task object to callback_url when the job finished (only when callbacks are on)."""
        if not self.settings.allow_callbacks:
            return
        job = self.store.get(job_id)
        if job is None or not job.status.finished or not job.request.get("api", {}).get("callback_url"):
            return
        import httpx

        from yingxi.server.views import ark_task, signed_url_maker

        url_for = signed_url_maker(job.request.get("base_url", ""), secret_for(self.settings.data_dir))
        body = ark_task(job, url_for)
        url = job.request["api"]["callback_url"]
        for attempt in range(CALLBACK_TRIES):
            if attempt:
                time.sleep(
                    2.0 * attempt - 1.0
                )  # 1 s, then 3 s; the worker waits, so never after the last try
            reason = None if self.settings.allow_private_urls else private_reason(url)  # DNS may have moved
            if reason:
                log.warning("callback for %s not sent: %s", job_id, reason)
                return
            try:
                httpx.post(url, json=body, timeout=10.0).raise_for_status()  # redirects are not followed
                return
            except httpx.HTTPError as e:
                log.warning("callback for %s failed (try %d): %s", job_id, attempt + 1, e)


def worker_main(settings_dict: dict[str, Any], index: int, parent_pid: int | None) -> None:
    """Entry point of a spawned worker process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us with SIGTERM
    Worker(ServerSettings.from_dict(settings_dict), index, parent_pid).run_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m yingxi.server.worker")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--backend", default="animatic")
    p.add_argument("--model")
    p.add_argument("--device")
    p.add_argument("--index", type=int, default=0)
    args = p.parse_args(argv)
    settings = ServerSettings(
        data_dir=args.data_dir, backend=args.backend, model=args.model, device=args.device
    )
    worker_main(settings.to_dict(), args.index, None)


if __name__ == "__main__":
    main()
