"""How a job looks through each API: an Ark content-generation task, an OpenAI video, a native film task."""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

from yingxi.server.keys import sign
from yingxi.server.store import Job, JobStatus

OUTPUT_FILES = (
    "video.mp4",
    "last_frame.png",
    "video.srt",
    "edit.zip",
)  # the only names the file route serves
URL_SECONDS = 24 * 3600  # a signed URL handed out lives at most this long (and never past the outputs)


class UrlFor(Protocol):
    """(job id, file name, the outputs' expiry) -> an absolute URL that a plain GET can fetch."""

    def __call__(self, job_id: str, name: str, expires_at: float | None = None) -> str: ...


def signed_url_maker(base_url: str, secret: bytes, now: float | None = None) -> UrlFor:
    """Signed, expiring file URLs: playable in a <video> tag with no Authorization header. The expiry is
    rounded to the hour so repeated GETs hand out the same URL."""
    now = time.time() if now is None else now
    base = base_url.rstrip("/")

    def url_for(job_id: str, name: str, expires_at: float | None = None) -> str:
        expires = int((now + URL_SECONDS) // 3600 * 3600 + 3600)
        if expires_at is not None:
            expires = min(expires, int(expires_at))
        resource = f"{job_id}/{name}"
        return f"{base}/api/v3/files/{resource}?expires={expires}&signature={sign(secret, resource, expires)}"

    return url_for


def _facts(job: Job) -> dict[str, Any]:
    """What the film is: from the rendered result when done, else from the validated request."""
    facts = dict(job.request.get("facts", {}))
    if job.result:
        facts.update({k: job.result[k] for k in ("duration", "num_frames", "fps") if k in job.result})
    return facts


def _progress(job: Job) -> dict[str, Any]:
    total = job.total_shots or job.request.get("facts", {}).get("shots", 0)
    return {
        "progress": 100 if job.status == JobStatus.SUCCEEDED else int(job.progress * 100),
        "current_shot": min(job.current_shot, total),  # the renderer counts editing as shot total+1
        "total_shots": total,
        "message": job.message,
        "attempts": job.attempts,
    }


def _error(job: Job) -> dict[str, str] | None:
    if job.status in (JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELLED) and job.error_code:
        return {"code": job.error_code, "message": job.error_message or ""}
    if job.status == JobStatus.EXPIRED:
        return {"code": "Expired", "message": "the task or its outputs expired"}
    return None


def whole(seconds: float) -> int:
    """Whole seconds, halves rounded up (2.5 s -> 3), for APIs whose duration is an integer."""
    return int(math.floor(seconds + 0.5))


def tokens(width: int, height: int, fps: float, seconds: float, frames: int | None = None) -> int:
    """Seedance's usage: (width x height x fps x seconds) / 1024, rounded down (Ark's docs: 1080p 16:9 at 24
    fps for 5 s is 1920*1080*24*5/1024 = 243000). fps x seconds is the frame count: given, it is used exactly
    (2.0833 s at 24 fps is 50 frames, not 49.9999)."""
    if frames is not None:
        return width * height * frames // 1024
    return int(width * height * fps * seconds / 1024)


def ark_task(job: Job, url_for: UrlFor) -> dict[str, Any]:
    f = _facts(job)
    fields = job.request.get("fields", {})
    api = job.request.get("api", {})
    out: dict[str, Any] = {
        "id": job.id,
        "model": job.model,
        "status": job.status.value,
        "created_at": int(job.created_at),
        "updated_at": int(job.updated_at),
        "seed": f.get("seed", fields.get("seed", 0)),
        "resolution": f.get("resolution", fields.get("resolution")),
        "ratio": f.get("ratio", fields.get("ratio")),
        "duration": whole(f.get("duration", 0)),
        "framespersecond": int(f.get("fps", 24)),
        "generate_audio": bool(api.get("generate_audio", False)),
        "draft": bool(api.get("draft", False)),
        "service_tier": api.get("service_tier", "default"),
        "watermark": bool(api.get("watermark", False)),
        "execution_expires_after": int(api.get("execution_expires_after") or 0),
        "revised_prompt": job.request.get("text", ""),
        **_progress(job),
    }
    if job.request.get("draft_task_id"):  # the full-quality re-run of that draft
        out["draft_task_id"] = job.request["draft_task_id"]
    if job.status == JobStatus.SUCCEEDED and job.result:
        content = {"video_url": url_for(job.id, "video.mp4", job.expires_at)}
        if api.get("return_last_frame") and job.result.get("last_frame"):
            content["last_frame_url"] = url_for(job.id, "last_frame.png", job.expires_at)
        if job.result.get("subtitles"):  # yingxi: the dialogue as SubRip, beside the video
            content["subtitles_url"] = url_for(job.id, "video.srt", job.expires_at)
        if job.result.get("edit"):  # yingxi: the edit for an editor (export: "otio"), a zip
            content["edit_url"] = url_for(job.id, "edit.zip", job.expires_at)
        out["content"] = content
        out["frames"] = job.result.get("num_frames", 0)
        n = tokens(f.get("width", 0), f.get("height", 0), f.get("fps", 24), f.get("duration", 0),
                   job.result.get("num_frames"))  # fmt: skip
        out["usage"] = {"completion_tokens": n, "total_tokens": n}
        if "evaluations" in job.result:  # yingxi: transformer passes run and skipped by the step cache
            out["usage"].update(evaluations=job.result["evaluations"],
                                skipped_evaluations=job.result.get("skipped_evaluations", 0))  # fmt: skip
    error = _error(job)
    if error and job.status != JobStatus.CANCELLED:
        out["error"] = error
    return out


OPENAI_STATUS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "failed",
    JobStatus.EXPIRED: "failed",
}


def openai_video(job: Job) -> dict[str, Any]:
    f = _facts(job)
    api = job.request.get("api", {})
    return {
        "id": job.id,
        "object": "video",
        "created_at": int(job.created_at),
        "completed_at": int(job.finished_at)
        if job.status == JobStatus.SUCCEEDED and job.finished_at
        else None,
        "expires_at": int(job.expires_at) if job.expires_at else None,
        "status": OPENAI_STATUS[job.status],
        "model": job.model,
        "progress": 100 if job.status == JobStatus.SUCCEEDED else int(job.progress * 100),
        "prompt": api.get("prompt", job.request.get("text")),
        "remixed_from_video_id": None,
        "seconds": str(whole(f.get("duration", 0))),
        "size": f"{f.get('width', 0)}x{f.get('height', 0)}",
        "error": _error(job),
    }


def film_task(job: Job, url_for: UrlFor) -> dict[str, Any]:
    f = _facts(job)
    out: dict[str, Any] = {
        "id": job.id,
        "object": "film",
        "status": job.status.value,
        "created_at": int(job.created_at),
        "updated_at": int(job.updated_at),
        "expires_at": int(job.expires_at) if job.expires_at else None,
        "film": {
            k: f.get(k)
            for k in ("title", "shots", "duration", "resolution", "ratio", "fps", "width", "height", "seed")
        },  # fmt: skip
        "error": _error(job),
        "notes": list(f.get("notes", [])),  # what the director changed (snapped durations, sizes)
        **_progress(job),
    }
    if job.status == JobStatus.SUCCEEDED and job.result:
        out["video_url"] = url_for(job.id, "video.mp4", job.expires_at)
        out["last_frame_url"] = url_for(job.id, "last_frame.png", job.expires_at)
        out["notes"] = job.result.get("notes", out["notes"])
        out["num_frames"] = job.result.get("num_frames")
        if job.result.get("subtitles"):
            out["subtitles_url"] = url_for(job.id, "video.srt", job.expires_at)
        if job.result.get("edit"):
            out["edit_url"] = url_for(job.id, "edit.zip", job.expires_at)
    return out
