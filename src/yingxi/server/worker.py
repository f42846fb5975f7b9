"""A render worker: claims one job at a time from the store, heartbeats while rendering, publishes the MP4
with an atomic rename under its lease. Run by `yingxi.server.run`, or alone:
`python -m yingxi.server.worker --data-dir DIR [--backend NAME] [--model M] [--index N]` (names:
backends/registry.py)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from yingxi.backends.registry import get_spec
from yingxi.errors import InputError
from yingxi.server import logs
from yingxi.server.artifacts import open_artifacts
from yingxi.server.callbacks import CallbackSender
from yingxi.server.common import draft_backend, public_message
from yingxi.server.keys import signing_secret
from yingxi.server.settings import ServerSettings
from yingxi.server.store import Job, open_queue, worker_id

log = logging.getLogger("yingxi.worker")


class Lost(Exception):
    """The job is no longer ours (cancelled, deleted, expired or requeued): stop rendering it."""


def make_backend(settings: ServerSettings, index: int):
    """The backend named by the settings, built once per worker (weights load on its first shot); a neural
    backend without a device given gets this worker's GPU (cuda:<index>), else the CPU."""
    from yingxi.backends.registry import build_backend

    options = settings.backend_options()
    if "device" in get_spec(settings.backend).options and options.get("device") is None:
        import torch

        options["device"] = (
            f"cuda:{index % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
        )
    return build_backend(settings.backend, options)


def door_backend(settings: ServerSettings):
    """The backend as the API process needs it: capabilities and checks only, no weights loaded, so a
    request the model cannot make is refused before it is queued."""
    from yingxi.backends.registry import build_door_backend

    return build_door_backend(settings.backend, settings.backend_options())


def device_bytes() -> int | None:
    """Accelerator memory this process holds (torch's CUDA allocator), or None where there is none."""
    import sys

    torch = sys.modules.get("torch")  # only a worker that already loaded torch can hold device memory
    if torch is None or not torch.cuda.is_available():
        return None
    return int(sum(torch.cuda.memory_reserved(i) for i in range(torch.cuda.device_count())))


class Worker:
    def __init__(
        self, settings: ServerSettings, index: int = 0, parent_pid: int | None = None, name: str | None = None
    ):
        self.settings = settings
        self.index = index
        self.parent_pid = parent_pid
        self.store = open_queue(settings.database_url, settings.data_dir)
        self.artifacts = open_artifacts(settings.tasks_dir)
        self.pid = os.getpid()
        self.name = name or worker_id()  # host:pid:nonce; a supervisor names its children to know them
        self._backend = None
        self.stopping = threading.Event()
        self._callbacks: CallbackSender | None = None  # started with the first callback

    @property
    def backend(self):
        if self._backend is None:
            self._backend = make_backend(self.settings, self.index)
        return self._backend

    def orphaned(self) -> bool:
        """Our supervisor died (kill -9): stop, the next server requeues our job."""
        return self.parent_pid is not None and os.getppid() != self.parent_pid

    def alive(self) -> None:
        """Tell the store this worker lives (and what accelerator memory it holds, where known)."""
        try:
            self.store.worker_alive(self.name, self.settings.backend, device_bytes())
        except Exception:  # a database hiccup must not stop the worker; the next beat tries again
            log.warning("worker heartbeat failed", exc_info=True)

    def run_forever(self) -> None:
        log.info("worker %s (index %d) ready, backend %s", self.name, self.index, self.settings.backend)
        self.alive()
        last_beat = time.monotonic()
        try:
            while not self.stopping.is_set() and not self.orphaned():
                if not self.run_once():
                    self.store.wait_for_work(self.settings.poll_seconds)
                if time.monotonic() - last_beat >= self.settings.heartbeat_seconds:
                    self.alive()
                    last_beat = time.monotonic()
        finally:
            self.store.worker_gone(self.name)

    def run_once(self) -> bool:
        """Claim and render one job; False when the queue was empty."""
        claimed = self.store.claim(self.name)
        if claimed is None:
            return False
        job, lease = claimed
        self.render_job(job, lease)
        return True

    def render_job(self, job: Job, lease: str) -> None:
        token = logs.bind(job_id=job.id, request_id=job.request.get("request_id"))  # its lines carry the ids
        try:
            self._render_job(job, lease)
        finally:
            logs.reset(token)

    def _render_job(self, job: Job, lease: str) -> None:
        from yingxi.editor.export import Exported, write_package
        from yingxi.render import ProgressEvent, render
        from yingxi.server.inputs import build_film

        settings, store, artifacts = self.settings, self.store, self.artifacts
        ttl = settings.output_ttl_hours * 3600
        task_dir = artifacts.folder(job.id)  # its inputs, as the API saved them
        out = artifacts.scratch(job.id)  # this attempt's files until `put` publishes them
        artifacts.clean_partials(job.id)  # leftovers of an attempt whose worker died
        video, last = out / f"attempt-{lease}.mp4", out / f"attempt-{lease}.png"
        export = job.request.get("api", {}).get("export")
        edit_dir = task_dir / f"edit-{lease}"  # film.mp4, film.otio, film.shots/: the names the zip keeps
        for stale in task_dir.glob("edit-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if export:
            video = edit_dir / "film.mp4"
        package = out / f"attempt-{lease}.zip"
        lost = threading.Event()
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(settings.heartbeat_seconds):
                if self.orphaned():
                    os._exit(3)  # nobody to report to; the next server requeues the job
                self.alive()
                try:
                    ours = store.heartbeat(job.id, lease)
                except Exception:  # the database restarts or the network blips: keep rendering, keep trying
                    log.warning("heartbeat for %s failed; retrying", job.id, exc_info=True)
                    continue
                if not ours:
                    lost.set()
                    return

        last_report = [0.0, -1]
        shot_started, shot_seconds = [time.monotonic(), 0], []

        def progress(event: ProgressEvent) -> None:
            if lost.is_set():
                raise Lost()
            now = time.monotonic()
            if event.shot != shot_started[1]:  # a shot (1..N) ended when the next phase began
                if 1 <= shot_started[1] <= event.total_shots:
                    shot_seconds.append(now - shot_started[0])
                shot_started[:] = [now, event.shot]
            if now - last_report[0] >= 0.25 or event.shot != last_report[1] or event.fraction >= 1.0:
                last_report[:] = [now, event.shot]
                try:
                    ours = store.report_progress(job.id, lease, event.fraction, event.shot, event.total_shots,
                                                 event.message)  # fmt: skip
                except Exception:  # progress is news, not state: a database blip skips one report
                    log.warning("progress report for %s failed", job.id, exc_info=True)
                    return
                if not ours:
                    lost.set()
                    raise Lost()

        beat = threading.Thread(target=heartbeat, name=f"heartbeat-{job.id}", daemon=True)
        beat.start()
        started = time.monotonic()
        try:
            film = build_film(job.request, task_dir)
            api = job.request.get("api", {})
            burn = bool(api.get("burn_subtitles"))
            backend = draft_backend() if api.get("draft") else self.backend  # a draft: the animatic's preview
            result = render(film, backend, video, progress, last_frame_png=last, burn_subtitles=burn,
                            export=export, watermark=bool(api.get("watermark")))  # fmt: skip
            if result.export_path is not None:
                write_package(Exported(result.export_path, result.export_files), package)
            if lost.is_set():
                raise Lost()
            facts = {"duration": result.duration, "num_frames": result.num_frames, "fps": result.fps,
                     "notes": list(result.notes), "seconds": round(time.monotonic() - started, 3),
                     "video": "video.mp4", "last_frame": "last_frame.png" if result.last_frame_path else None,
                     "subtitles": "video.srt" if result.srt_path else None,
                     "edit": "edit.zip" if result.export_path else None}  # fmt: skip
            if result.total_evaluations is not None:  # transformer passes that ran / a step cache skipped
                facts["evaluations"] = result.total_evaluations
                facts["skipped_evaluations"] = sum(n or 0 for n in result.skipped)

            facts["bytes"] = sum(p.stat().st_size for p in (video, last) if p.is_file())

            def publish() -> None:  # inside the store's write lock, only if the lease is still ours
                artifacts.put(job.id, "video.mp4", video)
                if result.last_frame_path is not None:
                    artifacts.put(job.id, "last_frame.png", last)
                if result.srt_path is not None:
                    artifacts.put(job.id, "video.srt", result.srt_path)
                if result.export_path is not None:
                    artifacts.put(job.id, "edit.zip", package)

            if store.finish(job.id, lease, facts, ttl, publish):
                store.record_shots(job.id, "animatic" if api.get("draft") else settings.backend, shot_seconds)
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
            video.with_suffix(".srt").unlink(missing_ok=True)
            package.unlink(missing_ok=True)
            shutil.rmtree(edit_dir, ignore_errors=True)
        self.notify(job.id)

    def notify(self, job_id: str) -> None:
        """Queue the Ark task object for callback_url when the job finished (only when callbacks are on);
        the POST happens on the sender's thread, never in the render path."""
        if not self.settings.allow_callbacks:
            return
        job = self.store.get(job_id)
        if job is None or not job.status.finished or not job.request.get("api", {}).get("callback_url"):
            return
        from yingxi.server.views import ark_task, signed_url_maker

        url_for = signed_url_maker(
            job.request.get("base_url", ""), signing_secret(self.store, self.settings.data_dir)
        )
        if self._callbacks is None:
            self._callbacks = CallbackSender(self.settings.allow_private_urls)
        self._callbacks.submit(job_id, job.request["api"]["callback_url"], ark_task(job, url_for))

    def close(self, timeout: float = 5.0) -> None:
        """Let queued callbacks go out (at most `timeout` seconds) before the process ends."""
        if self._callbacks is not None:
            self._callbacks.close(timeout)


def worker_main(
    settings_dict: dict[str, Any], index: int, parent_pid: int | None, nonce: str | None = None
) -> None:
    """Entry point of a spawned worker process."""
    settings = ServerSettings.from_dict(settings_dict)
    logs.configure(settings.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us with SIGTERM
    name = worker_id() if nonce is None else f"{socket.gethostname()}:{os.getpid()}:{nonce}"
    worker = Worker(settings, index, parent_pid, name)
    try:
        worker.run_forever()
    finally:
        worker.close()


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
