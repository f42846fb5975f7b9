"""OpenAI-compatible `/v1/videos` (what `openai.OpenAI(...).videos` sends and parses)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from yingxi.server.artifacts import ArtifactMissing, artifact_response
from yingxi.server.common import ctx, owned_job, read_body, submit, tenant_of, validate
from yingxi.server.http_errors import ApiError
from yingxi.server.inputs import UPLOAD_SCHEME, Inputs, Upload, add_reference, prompt_request, size_to_format
from yingxi.server.settings import ServerSettings
from yingxi.server.store import JobStatus
from yingxi.server.views import openai_video

router = APIRouter(prefix="/v1")


class ImageReference(BaseModel):
    model_config = ConfigDict(extra="ignore")
    image_url: str | None = None
    file_id: str | None = None


class CreateVideo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt: str
    model: str = Field(default="sora-2", min_length=1, max_length=200)
    seconds: Any = "4"  # "4", "8", "12" in OpenAI's API; any whole number of seconds here (see _seconds)
    size: str = Field(default="720x1280", max_length=32)
    input_reference: ImageReference | str | None = None
    fit: str | None = Field(default=None, max_length=32)  # yingxi: cover | contain | blur for input_reference
    preset: str | None = Field(default=None, max_length=32)  # yingxi's: few-step sampling ("lightning")


def _seconds(value: Any) -> int:
    """A whole number of seconds, as OpenAI's string ("8") or a JSON number; never true/false or 8.5."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return int(str(value).strip())
        except ValueError:
            pass
    raise ApiError(400, f'seconds must be a whole number like "4" or "8", got {str(value)[:20]!r}',
                   param="seconds")  # fmt: skip


def build_request(
    body: CreateVideo, uploads: dict[str, Upload], settings: ServerSettings, inputs: Inputs
) -> dict[str, Any]:
    ref = body.input_reference
    if isinstance(ref, ImageReference):
        if ref.file_id:
            raise ApiError(400, "file_id references are not supported here; upload the image or send image_url",
                           param="input_reference.file_id")  # fmt: skip
        if ref.image_url:
            add_reference(inputs, "image", "first_frame", ref.image_url, uploads, settings, "input_reference")
    elif isinstance(ref, str):
        add_reference(inputs, "image", "first_frame", ref, uploads, settings, "input_reference")
    resolution, ratio = size_to_format(body.size)
    return prompt_request(body.prompt, inputs, settings, resolution=resolution, ratio=ratio,
                          duration=_seconds(body.seconds), fit=body.fit, preset=body.preset)  # fmt: skip


@router.post("/videos")
async def create_video(request: Request, tenant: str = Depends(tenant_of)) -> dict:
    data, uploads, fields = await read_body(request)
    if data is None:  # multipart: plain fields, the image as the file part "input_reference"
        data = {k: v for k, v in fields.items() if not k.startswith("input_reference")}
        if "input_reference" in uploads:
            data["input_reference"] = UPLOAD_SCHEME + "input_reference"
        elif "input_reference[image_url]" in fields:
            data["input_reference"] = {"image_url": fields["input_reference[image_url]"]}
        elif "input_reference" in fields:
            data["input_reference"] = fields["input_reference"]
    body = validate(CreateVideo, data)
    settings = ctx(request).settings
    job = await submit(
        request,
        tenant,
        kind="openai",
        model=body.model,
        build=lambda inputs: build_request(body, uploads, settings, inputs),
        api={"prompt": body.prompt, "return_last_frame": True},
    )
    return openai_video(job)


@router.get("/videos/{video_id}")
def retrieve_video(video_id: str, request: Request, tenant: str = Depends(tenant_of)) -> dict:
    return openai_video(owned_job(request, tenant, video_id))


@router.get("/videos")
def list_videos(
    request: Request,
    tenant: str = Depends(tenant_of),
    after: str | None = Query(None, max_length=100),
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = Query("desc"),
) -> dict:
    store = ctx(request).store
    if after is not None and store.get(after, tenant) is None:
        raise ApiError(400, f'no video with id "{after[:80]}" to page after', param="after")
    jobs, _ = store.list(tenant, limit=limit + 1, newest_first=order == "desc", after=after)
    page = jobs[:limit]
    return {
        "object": "list",
        "data": [openai_video(j) for j in page],
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
        "has_more": len(jobs) > limit,
    }


@router.delete("/videos/{video_id}")
def delete_video(video_id: str, request: Request, tenant: str = Depends(tenant_of)) -> dict:
    """Deletes the video and its files; an unfinished one is cancelled first (it never renders)."""
    c = ctx(request)
    job = owned_job(request, tenant, video_id)
    if not job.status.finished:
        c.store.cancel(video_id, tenant, c.settings.output_ttl_hours * 3600)
    if c.store.delete(video_id, tenant):
        c.remove_files(video_id)
    return {"id": video_id, "object": "video.deleted", "deleted": True}


@router.get("/videos/{video_id}/content")
def download_content(
    video_id: str,
    request: Request,
    tenant: str = Depends(tenant_of),
    variant: Literal["video", "thumbnail", "spritesheet"] = Query("video"),
) -> FileResponse:
    c = ctx(request)
    job = owned_job(request, tenant, video_id)
    if job.status != JobStatus.SUCCEEDED:
        raise ApiError(
            404, f"the video has no content: it is {openai_video(job)['status']}", param="video_id"
        )
    if variant == "video":
        name, media = "video.mp4", "video/mp4"
    elif variant == "thumbnail":
        name, media = "last_frame.png", "image/png"
    else:
        raise ApiError(400, "the spritesheet variant is not available here; ask for video or thumbnail",
                       param="variant")  # fmt: skip
    try:
        return artifact_response(
            c.artifacts, video_id, name, media, filename=f"{video_id}.{name.rsplit('.')[-1]}"
        )
    except ArtifactMissing:
        raise ApiError(404, "the file is gone (expired or deleted)", param="video_id") from None
