"""Volcengine Ark-compatible content generation tasks (`/api/v3/contents/generations/tasks`): the JSON the
official `volcenginesdkarkruntime` client sends and parses (Seedance text/image/audio/video to video)."""

from __future__ import annotations

import math
import re
import shutil
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from yingxi.errors import InputError, unknown_word
from yingxi.film.vocabulary import parse_resolution
from yingxi.server.common import (
    ARK_QUEUE_SECONDS,
    Int,
    checked_export,
    ctx,
    draft_backend,
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
from yingxi.server.store import Job, JobStatus
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


class DraftObject(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=200)


class ContentItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "image_url", "audio_url", "video_url", "draft_task"]
    text: str | None = None
    image_url: UrlObject | None = None
    audio_url: UrlObject | None = None
    video_url: UrlObject | None = None
    draft_task: DraftObject | None = None  # {"id": a draft task's id}: that draft re-run at full quality
    role: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=64)  # yingxi: the character a reference_image shows


class CreateTask(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    content: list[ContentItem] = Field(min_length=1, max_length=32)
    callback_url: str | None = Field(default=None, max_length=2048)
    return_last_frame: bool | None = None
    generate_audio: bool | None = None
    draft: bool | None = None  # an instant animatic preview (480p), re-run later from its id
    service_tier: str | None = Field(
        default=None, max_length=32
    )  # "default" | "flex" (queued behind default)
    camera_fixed: bool | None = None
    watermark: bool | None = None
    burn_subtitles: bool | None = None  # yingxi: draw the dialogue's subtitles onto the picture
    export: str | None = Field(default=None, max_length=32)  # yingxi: "otio" | "edl" | "fcpxml", as edit.zip
    seed: Int | None = None
    resolution: str | None = Field(default=None, max_length=32)
    ratio: str | None = Field(default=None, max_length=32)
    duration: Int | None = None  # seconds; -1: the director picks
    frames: Int | None = Field(default=None, ge=1, le=100_000)  # instead of duration: 25 + 4n in [29, 289]
    execution_expires_after: Int | None = Field(default=None, ge=3600, le=259200)
    fit: str | None = Field(default=None, max_length=32)  # yingxi: cover | contain | blur for the first frame
    preset: str | None = Field(default=None, max_length=32)  # yingxi's extra: few-step sampling ("lightning")


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


# Seedance 2.0's content rules, as Volcengine Ark's "create a video generation task" page gives them
# (https://www.volcengine.com/docs/82379/1520757; BytePlus ModelArk's copy mirrored at
# https://docs.powertokens.ai/en/zmodelVideo/byteplus/seedance/seedance-video): a request is either
# first/last-frame image-to-video or multimodal reference-to-video (0-9 images, 0-3 videos of 2-15 s in all,
# 0-3 audio clips of at most 15 s in all, never audio alone), 12 files at most. Mixing the two modes is a 400
# InvalidParameter "first/last frame content cannot be mixed with reference media content"
# (https://docs.apiyi.com/en/faq/seedance-first-frame-mixed-with-reference). Frame counts: 25 + 4n in
# [29, 289]. A draft (`draft: true`) is 480p; its final video is a task whose only content item is
# {"type": "draft_task", "draft_task": {"id": ...}} (the SDK's CreateTaskContentDraftTaskParam; the task then
# reports `draft_task_id`). service_tier "flex" is Ark's offline tier, run after "default" work.
FRAME_ROLES = ("first_frame", "last_frame")
SERVICE_TIERS = ("default", "flex")
DRAFT_RESOLUTION = "480p"


def item_roles(body: CreateTask) -> list[tuple[int, str, str]]:
    """(index, kind, role) of each media item, a lone image's missing role read as Ark does (first frame)."""
    images = [i for i in body.content if i.type == "image_url"]
    out = []
    for n, item in enumerate(body.content):
        if item.type in ("text", "draft_task"):
            continue
        role = item.role
        if role is None:
            if item.type != "image_url" or len(images) != 1:
                raise ApiError(400, f"content[{n}].role is required here", param=f"content[{n}].role")
            role = "first_frame"
        out.append((n, item.type.removesuffix("_url"), role))
    return out


def check_modes(roles: list[tuple[int, str, str]]) -> None:
    """Before any file is fetched: first/last frames and references do not mix, audio never comes alone,
    a last frame needs a first frame. Each 400 names the item and the rule."""
    roles = [(n, k, r) for n, k, r in roles if r != "music"]  # yingxi's music bed: no Seedance reference
    frames = [(n, r) for n, _, r in roles if r in FRAME_ROLES]
    refs = [(n, r) for n, _, r in roles if r not in FRAME_ROLES]
    if frames and refs:
        (fn, fr), (rn, rr) = frames[0], refs[0]
        n = max(fn, rn)
        raise ApiError(400, f"content[{n}]: first/last frame content cannot be mixed with reference media content "
                       f"(content[{fn}] is a {fr}, content[{rn}] a {rr}); send either first/last frames or "
                       "reference images, videos and audio", param=f"content[{n}].role")  # fmt: skip
    audio = [n for n, k, _ in roles if k == "audio"]
    if audio and not any(k in ("image", "video") for _, k, _ in roles):
        raise ApiError(400, f"content[{audio[0]}]: a reference_audio clip needs at least one reference image or "
                       "video in the same request (Seedance 2.0 takes no audio alone)",
                       param=f"content[{audio[0]}].role")  # fmt: skip
    last = [n for n, _, r in roles if r == "last_frame"]
    if last and not any(r == "first_frame" for _, _, r in roles):
        raise ApiError(400, f"content[{last[0]}]: a last_frame needs a first_frame image in the same request",
                       param=f"content[{last[0]}].role")  # fmt: skip


def checked_frames(frames: int) -> int:
    if not (29 <= frames <= 289 and (frames - 25) % 4 == 0):
        near = min(max(25 + 4 * round((frames - 25) / 4), 29), 289)
        raise ApiError(400, f"frames {frames} is not a frame count Seedance makes: 25 + 4n from 29 to 289 "
                       f"(the closest is {near})", param="frames")  # fmt: skip
    return frames


def checked_tier(tier: str | None) -> str:
    if tier is None or tier in SERVICE_TIERS:
        return tier or "default"
    raise ApiError(400, unknown_word("service_tier", tier[:32], SERVICE_TIERS), param="service_tier")


def build_request(
    body: CreateTask, uploads: dict[str, Upload], settings: ServerSettings, inputs: Inputs
) -> dict[str, Any]:
    texts = [item.text or "" for item in body.content if item.type == "text"]
    if len(texts) > 1:
        raise ApiError(400, "give one text item (the prompt); got several", param="content")
    for n, item in enumerate(body.content):
        if item.type == "text" and item.text is None:
            raise ApiError(422, f"content[{n}].text: a text item needs text", param=f"content[{n}].text")
    prompt, flags = parse_flags(texts[0] if texts else "")
    roles = item_roles(body)
    check_modes(roles)
    for n, kind, role in roles:
        item = body.content[n]
        param = f"content[{n}]"
        ref = getattr(item, item.type)
        if ref is None:
            raise ApiError(422, f"{param}.{item.type}: missing {{url: ...}}", param=f"{param}.{item.type}")
        add_reference(inputs, kind, role, ref.url, uploads, settings, f"{param}.{item.type}.url", item.name)
    videos = [n for n, k, _ in roles if k == "video"]
    seconds = sum(inputs.media_seconds[v] for v in inputs.reference_videos)
    if videos and seconds < settings.limits.min_reference_video_seconds - 1e-3:
        raise ApiError(400, f"content[{videos[-1]}]: the reference videos last {seconds:.2f}s together; at least "
                       f"{settings.limits.min_reference_video_seconds:g}s in all",
                       param=f"content[{videos[-1]}].video_url.url")  # fmt: skip
    if not prompt and inputs.first_frame is None:
        raise ApiError(400, "give a text prompt or a first_frame image", param="content")
    fps = _flag_number(flags.get("fps"), "fps")
    duration: Any = (
        body.duration if body.duration is not None else _flag_number(flags.get("duration"), "duration")
    )
    if body.frames is not None:
        if body.duration is not None:
            raise ApiError(400, "give duration or frames, not both", param="frames")
        duration = checked_frames(body.frames) / float(fps or settings.default_fps)
    if duration == -1:  # Seedance's "the model picks": shot lengths from the prompt and its dialogue
        duration = None
    elif duration is None:
        duration = 5
    camera_fixed = body.camera_fixed
    if camera_fixed is None:
        camera_fixed = _flag_bool(flags.get("camera_fixed"), "camerafixed")
    seed = body.seed if body.seed is not None else flags.get("seed")
    resolution = body.resolution or flags.get("resolution")
    if body.draft:
        if resolution not in (None, DRAFT_RESOLUTION):
            raise ApiError(400, f"a draft is {DRAFT_RESOLUTION} (Seedance's draft mode); got resolution "
                           f"{str(resolution)[:20]}; ask for the resolution when re-running it", param="resolution")  # fmt: skip
        resolution = DRAFT_RESOLUTION
    return prompt_request(
        prompt or "the scene in the first frame comes to life",
        inputs,
        settings,
        resolution=resolution,
        ratio=body.ratio or flags.get("ratio"),
        duration=duration,
        fps=fps,
        seed=seed,
        camera_fixed=bool(camera_fixed),
        fit=body.fit,
        preset=body.preset,
        generate_audio=bool(body.generate_audio),
    )


def draft_of(body: CreateTask, request: Request, tenant: str) -> Job | None:
    """The succeeded draft a `draft_task` item names (this tenant's, made with draft: true), or None."""
    items = [n for n, item in enumerate(body.content) if item.type == "draft_task"]
    if not items:
        return None
    n = items[0]
    others = [m for m in range(len(body.content)) if m != n]
    if others:
        raise ApiError(400, f"content[{others[0]}]: a draft_task item re-runs its draft as it was; send it as the "
                       "only content item", param=f"content[{others[0]}]")  # fmt: skip
    ref = body.content[n].draft_task
    if ref is None:
        raise ApiError(422, f"content[{n}].draft_task: missing {{id: ...}}", param=f"content[{n}].draft_task")
    if body.draft:
        raise ApiError(400, "a draft_task item makes the full-quality video of a draft; drop draft: true",
                       param="draft")  # fmt: skip
    for name in ("seed", "ratio", "duration", "frames", "camera_fixed"):  # the draft's own are re-run
        if getattr(body, name) is not None:
            raise ApiError(400, f"{name}: a draft_task re-run keeps its draft's {name}; drop it (resolution, "
                           "watermark and generate_audio may change)", param=name)  # fmt: skip
    job = ctx(request).store.get(ref.id, tenant)
    param = f"content[{n}].draft_task.id"
    if job is None or job.kind != "ark" or not job.request.get("api", {}).get("draft"):
        raise ApiError(400, f'content[{n}]: no draft task with id "{ref.id[:80]}" (a task created with draft: '
                       "true)", param=param)  # fmt: skip
    if job.status != JobStatus.SUCCEEDED:
        raise ApiError(400, f'content[{n}]: the draft task "{job.id}" is {job.status.value}; re-run a draft once '
                       "it has succeeded", param=param)  # fmt: skip
    return job


def rerun_request(draft: Job, body: CreateTask, settings: ServerSettings, inputs: Inputs) -> dict[str, Any]:
    """The draft's own request (prompt, seed, references, shots) at full quality: the draft's files copied
    into the new task, the resolution the new body asks for (default 720p)."""
    source = settings.tasks_dir / draft.id / "inputs"
    if source.is_dir():
        shutil.copytree(source, inputs.folder, dirs_exist_ok=True)
    request = {k: v for k, v in draft.request.items() if k not in ("api", "facts", "base_url", "request_id")}
    try:
        resolution = parse_resolution(body.resolution or "720p")
    except InputError as e:
        raise ApiError(400, e.message, param="resolution") from None
    request["fields"] = {**request["fields"], "resolution": resolution}
    if body.generate_audio is not None:
        request["generate_audio"] = body.generate_audio
    request["draft_task_id"] = draft.id
    return request


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
    draft = draft_of(body, request, tenant)
    api = {"return_last_frame": bool(body.return_last_frame), "callback_url": body.callback_url,
           "generate_audio": bool(body.generate_audio if body.generate_audio is not None or draft is None
                                  else draft.request.get("generate_audio")),
           "watermark": bool(body.watermark),  # Ark's default: no watermark
           "draft": bool(body.draft), "service_tier": checked_tier(body.service_tier),
           "execution_expires_after": body.execution_expires_after or ARK_QUEUE_SECONDS,
           "burn_subtitles": bool(body.burn_subtitles), "export": checked_export(body.export)}  # fmt: skip
    if draft is not None:
        build = lambda inputs: rerun_request(draft, body, settings, inputs)  # noqa: E731
    else:
        build = lambda inputs: build_request(body, uploads, settings, inputs)  # noqa: E731
    job = await submit(
        request,
        tenant,
        kind="ark",
        model=body.model,
        build=build,
        api=api,
        queue_seconds=body.execution_expires_after or ARK_QUEUE_SECONDS,
        backend=draft_backend() if body.draft else None,
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
