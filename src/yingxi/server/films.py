"""Native film API (`/api/v1/films`): a whole film script (JSON, YAML, or multipart with files) -> one task."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from yingxi.server.common import (
    checked_cache,
    checked_export,
    ctx,
    owned_job,
    parse_yaml,
    read_body,
    submit,
    tenant_of,
    url_maker,
)
from yingxi.server.http_errors import ApiError
from yingxi.server.scripts import script_request
from yingxi.server.views import film_task

router = APIRouter(prefix="/api/v1")


@router.post("/films")
async def create_film(request: Request, tenant: str = Depends(tenant_of)) -> dict:
    """Body: the script (JSON, or YAML with content-type application/yaml); or multipart with the script
    in a field named "script" and files referred to by their part name or filename. Character references:
    the script's `refs: ["NAME=file"]`, or multipart fields `ref=NAME=file` (repeatable), as `--ref`; `music=PART` and `burn_subtitles=true` fields too."""
    script, uploads, fields = await read_body(request, yaml_ok=True)
    if script is None:
        if "script" not in fields:
            raise ApiError(
                400, 'a multipart request carries the script (JSON or YAML) in a field named "script"'
            )
        script = parse_yaml(fields["script"], 'the "script" field')  # YAML is a superset of JSON
        if "ref" in fields and isinstance(script, dict):  # ref=NAME=file parts, as the CLI's --ref
            script = {**script, "refs": [*_as_list(script.get("refs")), *fields["ref"].splitlines()]}
        if isinstance(script, dict):  # the studio's music and burn-in beside a script that has none
            if fields.get("music") and not script.get("music"):
                script = {**script, "music": fields["music"]}
            if fields.get("burn_subtitles", "").lower() in ("true", "1", "on"):
                script = {**script, "burn_subtitles": True}
    model = ctx(request).settings.model or ctx(request).settings.backend
    if isinstance(script, dict) and "model" in script:
        script = dict(script)
        model = str(script.pop("model"))[:200]
    burn = False
    if isinstance(script, dict) and "burn_subtitles" in script:  # yingxi: subtitles drawn onto the picture
        script = dict(script)
        burn = script.pop("burn_subtitles")
        if not isinstance(burn, bool):
            raise ApiError(
                400, f"burn_subtitles is true or false, got {str(burn)[:20]!r}", param="burn_subtitles"
            )
    export = None
    if isinstance(script, dict) and "export" in script:  # yingxi: the edit for an editor, as edit.zip
        script = dict(script)
        export = checked_export(script.pop("export"))
    settings = ctx(request).settings
    cache = None
    if isinstance(script, dict) and "cache" in script:  # yingxi: this film's step cache, as the CLI's --cache
        script = dict(script)
        cache = checked_cache(script.pop("cache"), settings)
    job = await submit(
        request,
        tenant,
        kind="film",
        model=model,
        build=lambda inputs: script_request(script, inputs, uploads, settings),
        api={"return_last_frame": True, "burn_subtitles": burn, "export": export, "cache": cache},
    )
    return film_task(job, url_maker(request))


def _as_list(value) -> list:
    if value in (None, ""):
        return []
    if isinstance(value, dict):
        return [f"{k}={v}" for k, v in value.items()]
    return list(value) if isinstance(value, list) else [value]


@router.get("/films/{film_id}")
def get_film(film_id: str, request: Request, tenant: str = Depends(tenant_of)) -> dict:
    return film_task(owned_job(request, tenant, film_id), url_maker(request))


@router.get("/films")
def list_films(
    request: Request, tenant: str = Depends(tenant_of), limit: int = Query(20, ge=1, le=100)
) -> dict:
    jobs, total = ctx(request).store.list(tenant, limit=limit)
    url_for = url_maker(request)
    return {"object": "list", "data": [film_task(j, url_for) for j in jobs], "total": total}


@router.delete("/films/{film_id}")
def delete_film(film_id: str, request: Request, tenant: str = Depends(tenant_of)) -> dict:
    c = ctx(request)
    job = owned_job(request, tenant, film_id)
    if not job.status.finished:
        job = c.store.cancel(film_id, tenant, c.settings.output_ttl_hours * 3600) or job
        return film_task(job, url_maker(request))
    if c.store.delete(film_id, tenant):
        c.remove_files(film_id)
    return {"id": film_id, "object": "film.deleted", "deleted": True}
