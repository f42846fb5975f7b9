"""What every route shares: the app context, auth, reading bodies (JSON, YAML, multipart), submitting a job."""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Request
from pydantic import BaseModel, BeforeValidator, ValidationError
from starlette.concurrency import run_in_threadpool

from yingxi.errors import InputError, ModelNotFoundError
from yingxi.film.model import Film
from yingxi.server import logs
from yingxi.server.artifacts import ArtifactStore
from yingxi.server.http_errors import ApiError, param_path
from yingxi.server.inputs import Inputs, Upload, validated_film
from yingxi.server.keys import hash_key
from yingxi.server.settings import ServerSettings
from yingxi.server.store import Job, JobQueue, Quota, QuotaExceeded, new_job_id
from yingxi.server.views import UrlFor, signed_url_maker

MAX_PARTS = 32  # multipart parts per request (files + fields)
MAX_NODES = 100_000  # values in one decoded body; also caps what YAML aliases can expand to
ARK_QUEUE_SECONDS = 48 * 3600  # Ark's default execution_expires_after


@dataclass
class Context:
    settings: ServerSettings
    store: JobQueue
    secret: bytes
    artifacts: ArtifactStore

    _backend: Any = None
    _backend_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def backend(self):
        """The door backend (see worker.door_backend), built on first use."""
        with self._backend_lock:
            if self._backend is None:
                from yingxi.server.worker import door_backend

                self._backend = door_backend(self.settings)
            return self._backend

    def task_dir(self, job_id: str) -> Path:
        """Where the job's inputs are saved (the artifact store's folder of the job)."""
        return self.artifacts.folder(job_id)

    def remove_files(self, job_id: str) -> None:
        self.artifacts.delete(job_id)


def ctx(request: Request) -> Context:
    return request.app.state.ctx


def tenant_of(request: Request) -> str:
    """The tenant behind `Authorization: Bearer KEY`; 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing API key; send the header Authorization: Bearer YOUR_KEY")
    tenant = ctx(request).store.tenant_for(hash_key(key.strip()))
    if tenant is None:
        raise ApiError(401, "the API key is not valid", code="AuthenticationError")
    logs.context()["tenant"] = tenant
    return tenant


def base_url(request: Request) -> str:
    return (ctx(request).settings.public_url or str(request.base_url)).rstrip("/")


def url_maker(request: Request) -> UrlFor:
    return signed_url_maker(base_url(request), ctx(request).secret)


async def read_body(
    request: Request, *, yaml_ok: bool = False
) -> tuple[Any, dict[str, Upload], dict[str, str]]:
    """(decoded body, uploaded files by field name and filename, other form fields). JSON and YAML bodies
    give their value (never None: an empty or null body is a 400); multipart bodies give None, their text
    fields in the third item and their files in the second."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    limits = ctx(request).settings.limits
    if kind == "multipart/form-data":
        try:
            form = await request.form(
                max_files=MAX_PARTS, max_fields=MAX_PARTS, max_part_size=limits.max_body_bytes
            )
        except ApiError:
            raise
        except Exception as e:  # starlette raises its own MultiPartException / HTTPException on bad forms
            raise ApiError(400, f"cannot read the multipart form: {getattr(e, 'detail', e)}") from None
        uploads: dict[str, Upload] = {}
        fields: dict[str, str] = {}
        for name, value in form.multi_items():
            if isinstance(value, str):  # a repeated field (ref=A=a.png, ref=B=b.png): its values, one a line
                fields[name] = f"{fields[name]}\n{value}" if name in fields else value
                continue
            data = await value.read()
            if len(data) > limits.max_upload_bytes:
                raise ApiError(
                    413, f"the file is larger than {limits.max_upload_bytes // (1 << 20)} MB", param=name
                )
            up = Upload(
                field=name, filename=value.filename or "", data=data, content_type=value.content_type or ""
            )
            uploads[name] = up
            if up.filename:
                uploads.setdefault(up.filename, up)
        return None, uploads, fields
    raw = await request.body()
    if kind in ("application/json", "text/json", "") or kind.endswith("+json"):
        return _not_empty(parse_json(raw or b"null")), {}, {}
    if yaml_ok and kind in (
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "text/x-yaml",
        "text/plain",
    ):
        return _not_empty(parse_yaml(raw)), {}, {}
    accepted = "application/json, multipart/form-data" + (", application/yaml" if yaml_ok else "")
    raise ApiError(415, f'unsupported content type "{kind[:60]}"; send {accepted}')


def _not_empty(body: Any) -> Any:
    if body is None:  # None means "multipart" to the routes
        raise ApiError(400, "the body is empty (or null); send a JSON object")
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes | str, what: str = "the body") -> Any:
    """json.loads for client bytes: every failure (bad syntax or encoding, NaN/Infinity, a number too long
    to convert, nesting too deep, a lone surrogate) is a 400, never an exception that reaches the app."""
    try:
        return plain_data(json.loads(raw, parse_constant=_reject_constant), what)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise ApiError(400, f"{what} is not valid JSON: {str(e)[:120]}") from None
    except RecursionError:
        raise ApiError(400, f"{what} is not valid JSON: nested too deeply") from None


def parse_yaml(raw: bytes | str, what: str = "the body") -> Any:
    import yaml

    try:
        return plain_data(yaml.safe_load(raw), what)
    except yaml.YAMLError as e:
        raise ApiError(400, f"{what} is not valid YAML: {' '.join(str(e).split())[:200]}") from None
    except RecursionError:
        raise ApiError(400, f"{what} is not valid YAML: nested too deeply") from None


def plain_data(value: Any, what: str = "the body") -> Any:
    """`value` when it is data we can store and echo back unchanged: dicts with string keys, lists, strings
    that encode as UTF-8 (a lone surrogate such as "\\ud800" cannot be written to SQLite or to a JSON
    response), finite numbers, booleans and null, at most MAX_NODES values in all (YAML aliases reuse one
    node many times: a few bytes can stand for billions). YAML's dates, binary and non-string keys are
    refused with their path: JSON would fail on them, or turn 42 into "42" and so store another film."""
    budget = MAX_NODES
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        v, path = stack.pop()
        budget -= 1
        if budget < 0:
            raise ApiError(400, f"{what} holds more than {MAX_NODES} values")
        where = f"{what}, at {path}" if path else what
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise ApiError(
                    400,
                    f"{where}: holds a string that is not valid Unicode (a lone surrogate)",
                    param=path or None,
                ) from None
        elif isinstance(v, float) and not math.isfinite(v):
            raise ApiError(400, f"{where}: holds a number that is not finite ({v})", param=path or None)
        elif isinstance(v, dict):
            for key, item in v.items():
                if not isinstance(key, str):
                    shown = str(key)[:60]
                    raise ApiError(
                        400,
                        f'{where}: the key "{shown}" is a {type(key).__name__}, not text; quote it',
                        param=path or None,
                    )
                stack.append((key, path))
                stack.append((item, f"{path}.{key}" if path else key))
        elif isinstance(v, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(v))
        elif v is not None and not isinstance(v, (bool, int, float)):
            raise ApiError(
                400,
                f"{where}: a {type(v).__name__} value is not plain data (text, a number, true/false, null, "
                "a list or a mapping); quote it",
                param=path or None,
            )
    return value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic's lax mode reads true as 1
        raise ValueError("expected a whole number, got a boolean")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]  # an int field of a request body: true/false refused


def validate(model: type[BaseModel], data: Any) -> Any:
    """Pydantic validation with the first problem as a 422 naming the field."""
    if not isinstance(data, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = param_path(err["loc"])
        raise ApiError(422, f"{param}: {err['msg']}", param=param) from None


def film_facts(film: Film) -> dict[str, Any]:
    width, height = film.size
    return {"title": film.title, "shots": len(film.shots), "duration": film.duration, "resolution": film.resolution,
            "ratio": film.ratio, "fps": float(film.fps), "width": width, "height": height, "seed": film.seed}  # fmt: skip


_ABSOLUTE_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\](?:[^\s,;:\"'/\\]+[/\\])+([^\s,;:\"'/\\]+)")


def public_message(message: str) -> str:
    """A message fit for a tenant: absolute paths on this server become their file names."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1), message)


def checked_by_backend(film: Film, backend: Any) -> tuple[Film, list[str]]:
    """render.prepare at the door: the plan made, images decoded, dialogue fitted and the backend's own
    checks run, so what cannot be rendered is a 400 now instead of a failed task later."""
    from yingxi.render import prepare

    try:
        ready = prepare(film, backend)
        film, notes = ready.film, ready.notes
    except InputError as e:  # CapabilityError included
        raise ApiError(400, public_message(str(e)), param=e.field, shot=e.shot) from None
    except ModelNotFoundError as e:
        raise ApiError(
            503, public_message(f"the server's model is not available: {e}"), code="ModelNotAvailable"
        ) from None
    return film, [str(n) for n in notes][:50]


async def submit(
    request: Request,
    tenant: str,
    *,
    kind: str,
    model: str,
    build: Callable[[Inputs], dict[str, Any]],
    api: dict[str, Any],
    queue_seconds: float | None = None,
    backend: Any = None,
) -> Job:
    """Save the references, validate the film, and queue the job; nothing is left behind on error.
    `backend`: the one the job renders with, when not the server's (a draft's animatic)."""
    c = ctx(request)
    limit = c.settings.limits.max_queued_per_tenant
    job_id = new_job_id(kind)
    logs.context()["job_id"] = job_id
    task_dir = c.task_dir(job_id)
    base = base_url(request)

    def work() -> Job:
        try:
            request_data = build(Inputs(task_dir / "inputs"))
            film = validated_film(request_data, task_dir, c.settings)
            film, notes = checked_by_backend(film, backend or c.backend)
            request_data.update(api=api, base_url=base, facts={**film_facts(film), "notes": notes},
                                request_id=logs.context().get("request_id"))  # fmt: skip
            return c.store.create(tenant=tenant, kind=kind, model=model, request=request_data,
                                  max_attempts=c.settings.max_attempts, max_unfinished=limit,
                                  queue_seconds=queue_seconds, job_id=job_id,
                                  quota=Quota(c.settings.limits.max_jobs_per_hour,
                                              c.settings.limits.max_output_bytes_per_tenant))  # fmt: skip
        except QuotaExceeded as e:
            c.remove_files(job_id)
            raise ApiError(429, f"quota reached: {e}", retry_after=e.retry_after) from None
        except BaseException:
            c.remove_files(job_id)
            raise

    # Refuse early (before decoding references) when the tenant is already at its limit.
    _, open_jobs = c.store.list(tenant, statuses=("queued", "running"), limit=1)
    if open_jobs >= limit:
        raise ApiError(429, f"quota reached: {open_jobs} tasks are queued or running (at most {limit}); wait for "
                       "some to finish", retry_after=30)  # fmt: skip
    return await run_in_threadpool(work)


def draft_backend() -> Any:
    """What a draft (Ark's `draft: true`) renders with: the animatic, an instant preview on any server."""
    from yingxi.backends.animatic import AnimaticGenerator

    return AnimaticGenerator()


def owned_job(request: Request, tenant: str, job_id: str) -> Job:
    """The tenant's job or 404 (another tenant's id is indistinguishable from a missing one)."""
    logs.context()["job_id"] = job_id[:80]
    job = ctx(request).store.get(job_id, tenant)
    if job is None:
        raise ApiError(404, f'no task with id "{job_id[:80]}"', param="id")
    return job


def checked_export(value: Any) -> str | None:
    """The request's `export` (yingxi: the edit for an editor, served as edit.zip), or a 400 naming the
    closest format; checked before the job is queued."""
    if value is None:
        return None
    from yingxi.editor.export import check_export  # OpenTimelineIO loads only when asked for

    try:
        return check_export(str(value)[:32])
    except InputError as e:
        raise ApiError(400, e.message, param="export") from None
