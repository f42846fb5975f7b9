"""The FastAPI app: Ark- and OpenAI-compatible task APIs, the native film API, output files, the studio.

Output files are served at `/api/v3/files/{task}/{name}` to either a Bearer key of the task's tenant or a
signed, expiring URL (`?expires=...&signature=...`, HMAC-SHA256 with the server's secret), which is what
`content.video_url` hands out: a `<video>` tag or a plain HTTP client can fetch it without headers.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from yingxi import __version__
from yingxi.backends.registry import capabilities_view, get_spec
from yingxi.backends.registry import describe as describe_backends
from yingxi.errors import YingxiError
from yingxi.server import ark, films, logs, metrics, openapi, videos
from yingxi.server.artifacts import ArtifactMissing, artifact_response, open_artifacts
from yingxi.server.common import Context, ctx, tenant_of
from yingxi.server.http_errors import ApiError, error_response, param_path
from yingxi.server.keys import check_signature, signing_secret
from yingxi.server.settings import ServerSettings, limits_view
from yingxi.server.store import JobStatus, open_queue
from yingxi.server.views import OUTPUT_FILES

STATIC_DIR = Path(__file__).parent / "static"


class StudioFiles(StaticFiles):
    """The studio's files, revalidated on every load (`no-cache` + the ETag StaticFiles sends): after an
    upgrade a browser must not pair a cached index.html with new modules, or the reverse."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


log = logging.getLogger("yingxi.server")


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413, by Content-Length up front or by counting as they stream."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        too_big = ApiError(413, f"the request body is larger than {self.max_bytes // (1 << 20)} MB")
        if length is not None:
            if not length.isdigit():
                return await ApiError(400, "the Content-Length header is not a number").response()(
                    scope, receive, send
                )
            digits = length.lstrip(b"0") or b"0"  # int() raises past 4300 digits, leading zeros included
            if len(digits) > 18 or int(digits) > self.max_bytes:
                return await too_big.response()(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise too_big  # turned into the 413 body by the ApiError handler
            return message

        return await self.app(scope, counted, send)


def database_unavailable(exc: BaseException) -> bool:
    """The job database cannot be reached (restarting, failing over, network): a 503, not a bug."""
    if isinstance(exc, ConnectionError):
        return True
    psycopg = sys.modules.get("psycopg")  # loaded only when the store is PostgreSQL
    return psycopg is not None and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


class InternalErrors:
    """A bug answers 500 in the API's error shape with `Connection: close`, and goes no further.

    Left to Starlette, the 500 handler runs inside its error middleware, which re-raises after answering:
    the server then dropped the keep-alive connection without saying so, and a client's next pooled
    request failed. Here the exception ends with the response, and the client knows to reconnect."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # a bug: log it, answer in the API's shape, keep serving
            if started:
                raise  # part of a response went out: only dropping the connection is honest now
            if database_unavailable(exc):  # not a bug: the next request reconnects
                log.warning("the job database does not answer: %s", exc)
                response = error_response(503, "the job database does not answer; try again shortly",
                                          code="ServiceUnavailable", retry_after=2)  # fmt: skip
                await response(scope, receive, send)
                return
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            response = error_response(500, f"internal error: {type(exc).__name__}")
            response.headers["connection"] = "close"
            await response(scope, receive, send)


# On every response: no MIME sniffing (error bodies echo client text), no framing of the studio (it holds
# the key and has delete buttons: clickjacking), and no Referer carrying a signed file URL elsewhere.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def _capabilities(request: Request) -> dict | None:
    """The served backend's capabilities (None while its model cannot be read: /health still answers)."""
    try:
        return capabilities_view(ctx(request).backend)
    except YingxiError:
        return None


def create_app(settings: ServerSettings) -> FastAPI:
    """The app over settings.data_dir (the job store is created there if missing). Workers run apart
    (see `yingxi.server.run`); this process only queues, reports and serves files."""
    spec = get_spec(settings.backend)
    if spec.needs_model and not settings.model:
        raise ValueError(f"the {spec.name} backend needs a model: {spec.model_help}")
    settings.tasks_dir.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="yingxi", version=__version__, docs_url="/api/docs", openapi_url="/api/openapi.json",
                  redoc_url=None)  # fmt: skip
    store = open_queue(settings.database_url, settings.data_dir)
    secret = signing_secret(store, settings.data_dir)
    app.state.ctx = Context(settings=settings, store=store, secret=secret,
                            artifacts=open_artifacts(settings.tasks_dir, secret))  # fmt: skip

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = param_path([p for p in err.get("loc", ()) if p not in ("query", "path", "body")])
        return error_response(422, f"{param}: {err.get('msg')}", param=param or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such route: {request.method} {request.url.path[:100]}"
        return error_response(exc.status_code, message)

    app.include_router(ark.router)
    app.include_router(videos.router)
    app.include_router(films.router)
    app.include_router(metrics.router)
    openapi.install(app)

    @app.get("/api/v1/health")
    def health(request: Request) -> dict:
        counts = ctx(request).store.counts()
        return {"status": "ok", "version": __version__, "backend": settings.backend, "model": settings.model,
                "queued": counts.get("queued", 0), "running": counts.get("running", 0),
                "backends": describe_backends(), "capabilities": _capabilities(request)}  # fmt: skip

    @app.get("/api/v1/limits")
    def limits() -> dict:
        """What a request may ask for (the studio sets its fields from this): see film/limits.py."""
        return limits_view(settings.limits)

    @app.get("/api/v3/files/{task_id}/{name}", operation_id="output_file")
    def output_file(task_id: str, name: str, request: Request, expires: int | None = None,
                    signature: str | None = None) -> FileResponse:  # fmt: skip
        c = ctx(request)
        if name not in OUTPUT_FILES:  # only our own names: nothing a client sends becomes a path
            raise ApiError(404, f'no file "{name[:60]}"; files are {", ".join(OUTPUT_FILES)}', param="name")
        if signature is not None and expires is not None:
            if not check_signature(c.secret, f"{task_id}/{name}", expires, signature, time.time()):
                raise ApiError(403, "the file URL's signature is wrong or has expired; GET the task again")
            job = c.store.get(task_id)
        else:
            job = c.store.get(task_id, tenant_of(request))
        if job is None or job.status != JobStatus.SUCCEEDED:
            raise ApiError(404, "no such file (the task is unknown, unfinished, expired or deleted)")
        media = {
            ".mp4": "video/mp4",
            ".srt": "application/x-subrip; charset=utf-8",
            ".zip": "application/zip",
        }.get(Path(name).suffix, "image/png")
        try:
            return artifact_response(c.artifacts, task_id, name, media,
                                     headers={"Cache-Control": "private, max-age=3600"})  # fmt: skip
        except ArtifactMissing:
            raise ApiError(404, "no such file (it expired or was not asked for)") from None

    app.add_api_route(
        "/api/v3/files/{task_id}/{name}", output_file, methods=["HEAD"], operation_id="output_file_head"
    )

    STATIC_DIR.mkdir(exist_ok=True)
    app.mount("/", StudioFiles(directory=STATIC_DIR, html=True, check_dir=False), name="studio")
    # Same-origin needs nothing; other origins (a studio served elsewhere) are listed in settings.
    app.add_middleware(InternalErrors)  # innermost: inside Starlette's error middleware, which re-raises
    app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                       allow_headers=["Authorization", "Content-Type"])  # fmt: skip
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # the 413s of BodyLimit carry them too
    app.add_middleware(logs.RequestLog)  # outermost: every answer gets a request id and an access line
    return app
