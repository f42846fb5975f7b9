"""Volcengine Ark-compatible content generation tasks (`/api/v3/contents/generations/tasks`): the JSON the
official `volcenginesdkarkruntime` client sends and parses (Seedance text/image/audio/video to video)."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from yingxi.server.common import (
    ARK_QUEUE_SECONDS,
    Int,
    checked_cache,
    checked_export,
    ctx,
    owned_job,
    parse_json,
    read_body,
    submit,
    tenant_of,
    url_maker,
    validate,
)
from yingxi.server.http_errors import ApiError
from yingxi.server.inputs import Inputs, Upload, add_reference, prompt_request
from yingxi.server.outbound import check_public
from yingxi.server.settings import ServerSettings
from yingxi.server.store import JobStatus
from yingxi.server.views import ark_task

router = APIRouter(prefix="/api/v3")

# Seedance's legacy text commands: "--ratio 16:9 --dur 5 ..." at the end of the prompt.
FLAG_NAMES = {"resolution": "resolution", "rs": "resolution", "ratio": "ratio", "rt": "ratio",
              "duration": "duration", "dur": "duration", "framespersecond": "fps", "fps": "fps", "seed": "seed",
              "camerafixed": "camera_fixed", "cf": "camera_fixed", "watermark": "watermark", "wm": "watermark"}  # fmt: skip
FLAG_RE = re.compile(r"(?:^|\s)--(" + "|".join(FLAG_NAMES) + r")\s+(\S+)", re.IGNORECASE)


class UrlObject(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str


class ContentItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "image_url", "audio_url", "video_url", "draft_task"]
    text: str | None = None
    image_url: UrlObject | None = None
    audio_url: UrlObject | None = None
    video_url: UrlObject | None = None
    role: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=64)  # yingxi: the character a reference_image shows


class CreateTask(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    content: list[ContentItem] = Field(min_length=1, max_length=32)
    callback_url: str | None = Field(default=None, max_length=2048)
    return_last_frame: bool | None = None
    generate_audio: bool | None = None
    camera_fixed: bool | None = None
    watermark: bool | None = None
    burn_subtitles: bool | None = None  # yingxi: draw the dialogue's subtitles onto the picture
    export: str | None = Field(default=None, max_length=32)  # yingxi: "otio" | "edl" | "fcpxml", as edit.zip
    seed: Int | None = None
    resolution: str | None = Field(default=None, max_length=32)
    ratio: str | None = Field(default=None, max_length=32)
    duration: Int | None = None
    frames: Int | None = Field(default=None, ge=1, le=100_000)
    execution_expires_after: Int | None = Field(default=None, ge=3600, le=259200)
    fit: str | None = Field(default=None, max_length=32)  # yingxi: cover | contain | blur for the first frame
    preset: str | None = Field(default=None, max_length=32)  # yingxi's extra: few-step sampling ("lightning")
    cache: Any = None  # yingxi's extra: this task's step cache, "magcache" / "teacache:0.2" / "none"


def parse_flags(text: str) -> tuple[str, dict[str, str]]:
    """Strip the legacy `--name value` commands from a prompt; returns (prompt, {field: value})."""
    flags = {FLAG_NAMES[m.group(1).lower()]: m.group(2) for m in FLAG_RE.finditer(text)}
    return FLAG_RE.sub("", text).strip(), flags


def _flag_bool(value: str | None, param: str) -> bool | None:
    if value is None:
        return None
    word = value.lower()
    if word not in ("true", "false"):
        raise ApiError(400, f"--{param} takes true or false, got {value[:20]!r}", param=param)
    return word == "true"


def _flag_number(value: str | None, param: str) -> float | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
    if not math.isfinite(number):  # "nan", "inf" and "1e999" parse as floats; none is a number of seconds
        raise ApiError(400, f"--{param} takes a number, got {value[:20]!r}", param=param)
    return number


def build_request(
    body: CreateTask, uploads: dict[str, Upload], settings: ServerSettings, inputs: Inputs
) -> dict[str, Any]:
    texts = [item.text or "" for item in body.content if item.type == "text"]
    if len(texts) > 1:
        raise ApiError(400, "give one text item (the prompt); got several", param="content")
    prompt, flags = parse_flags(texts[0] if texts else "")
    images = [i for i in body.content if i.type == "image_url"]
    for n, item in enumerate(body.content):
        param = f"content[{n}]"
        if item.type == "draft_task":
            raise ApiError(400, "draft tasks are not supported by this server", param=f"{param}.type")
        if item.type == "text":
            if item.text is None:
                raise ApiError(422, f"{param}.text: a text item needs text", param=f"{param}.text")
            continue
        kind = item.type.removesuffix("_url")
        ref = getattr(item, item.type)
        if ref is None:
            raise ApiError(422, f"{param}.{item.type}: missing {{url: ...}}", param=f"{param}.{item.type}")
        role = item.role
        if role is None:  # Ark: a lone image is the first frame
            if kind != "image" or len(images) != 1:
                raise ApiError(400, f"{param}.role is required here", param=f"{param}.role")
            role = "first_frame"
        add_reference(inputs, kind, role, ref.url, uploads, settings, f"{param}.{item.type}.url", item.name)
    if not prompt and inputs.first_frame is None:
        raise ApiError(400, "give a text prompt or a first_frame image", param="content")
    duration = body.duration if body.duration is not None else _flag_number(flags.get("duration"), "duration")
    if duration is None and body.frames is not None:
        duration = body.frames / 24.0
    camera_fixed = body.camera_fixed
    if camera_fixed is None:
        camera_fixed = _flag_bool(flags.get("camera_fixed"), "camerafixed")
    seed = body.seed if body.seed is not None else flags.get("seed")
    return prompt_request(
        prompt or "the scene in the first frame comes to life",
        inputs,
        settings,
        resolution=body.resolution or flags.get("resolution"),
        ratio=body.ratio or flags.get("ratio"),
        duration=duration if duration is not None else 5,
        fps=_flag_number(flags.get("fps"), "fps"),
        seed=seed,
        camera_fixed=bool(camera_fixed),
        fit=body.fit,
        preset=body.preset,
    )


@router.post("/contents/generations/tasks")
async def create_task(request: Request, tenant: str = Depends(tenant_of)) -> dict:
    data, uploads, fields = await read_body(request)
    if data is None:  # multipart: the JSON body rides in the "request" field, files as upload://NAME
        if "request" not in fields:
            raise ApiError(400, 'a multipart request carries the JSON body in a field named "request"')
        data = parse_json(fields["request"], 'the "request" field')
    body = validate(CreateTask, data)
    settings = ctx(request).settings
    if body.callback_url is not None:
        if not body.callback_url.lower().startswith(("http://", "https://")):
            raise ApiError(400, "callback_url must be an http(s) URL", param="callback_url")
        if not settings.allow_callbacks:
            raise ApiError(400, "this server does not send callbacks (allow_callbacks is off); poll the task",
                           param="callback_url")  # fmt: skip
        await run_in_threadpool(check_public, body.callback_url, settings.allow_private_urls, "callback_url")
    api = {"return_last_frame": bool(body.return_last_frame), "generate_audio": bool(body.generate_audio),
           "callback_url": body.callback_url, "watermark": bool(body.watermark),
           "execution_expires_after": body.execution_expires_after or ARK_QUEUE_SECONDS,
           "burn_subtitles": bool(body.burn_subtitles), "export": checked_export(body.export),
           "cache": checked_cache(body.cache, settings)}  # fmt: skip
    job = await submit(
        request,
        tenant,
        kind="ark",
        model=body.model,
        build=lambda inputs: build_request(body, uploads, settings, inputs),
        api=api,
        queue_seconds=body.execution_expires_after or ARK_QUEUE_SECONDS,
    )
    return {"id": job.id}


@router.get("/contents/generations/tasks/{task_id}")
def get_task(task_id: str, request: Request, tenant: str = Depends(tenant_of)) -> dict:
    return ark_task(owned_job(request, tenant, task_id), url_maker(request))


@router.get("/contents/generations/tasks")
def list_tasks(
    request: Request,
    tenant: str = Depends(tenant_of),
    page_num: int = Query(1, ge=1, le=100000),
    page_size: int = Query(10, ge=1, le=500),
    status: str | None = Query(None, alias="filter.status"),
    task_ids: list[str] = Query([], alias="filter.task_ids"),
    model: str | None = Query(None, alias="filter.model"),
) -> dict:
    if status is not None and status not in {s.value for s in JobStatus}:
        raise ApiError(400, f'unknown status "{status[:40]}"; accepted: {", ".join(s.value for s in JobStatus)}',
                       param="filter.status")  # fmt: skip
    jobs, total = ctx(request).store.list(
        tenant, statuses=[status] if status else (), ids=task_ids, model=model,
        offset=(page_num - 1) * page_size, limit=page_size,
    )  # fmt: skip
    url_for = url_maker(request)
    return {"items": [ark_task(j, url_for) for j in jobs], "total": total}


@router.delete("/contents/generations/tasks/{task_id}")
def delete_task(task_id: str, request: Request, tenant: str = Depends(tenant_of)) -> dict:
    """Queued or running: cancelled (it never produces output). Finished: the record and files are deleted."""
    c = ctx(request)
    job = owned_job(request, tenant, task_id)
    if not job.status.finished:
        job = c.store.cancel(task_id, tenant, c.settings.output_ttl_hours * 3600)
        if job is not None and job.status == JobStatus.CANCELLED:
            return {}
    if c.store.delete(task_id, tenant):
        c.remove_files(task_id)
    return {}
