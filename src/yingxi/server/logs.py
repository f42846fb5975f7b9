"""Logs an operator can search: one JSON object a line (`--log-format json`) carrying the request id,
tenant and job id of whatever the line is about, and one access line per request.

The ids travel in a context variable holding one dict per request: a sync route runs in a worker thread
with a copy of the context, but the dict is shared, so what the route learns (tenant, job) reaches the
access line the middleware writes."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import time
from typing import Any

_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("yingxi_log", default=None)
FIELDS = ("request_id", "tenant", "job_id")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # a client's own id is kept only when it is this tame
access = logging.getLogger("yingxi.access")


def context() -> dict[str, Any]:
    """The current request's (or job's) log fields; a throwaway dict outside of one."""
    current = _CONTEXT.get()
    return current if current is not None else {}


def bind(**fields: Any) -> contextvars.Token:
    """Start a log context (a job in a worker): `reset(token)` ends it."""
    return _CONTEXT.set({k: v for k, v in fields.items() if v is not None})


def reset(token: contextvars.Token) -> None:
    _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in context().items():
            line.setdefault(name, value)
        for name in (*FIELDS, "method", "path", "status", "ms"):
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: str = "text") -> None:
    """Root logging for a server or worker process: plain text, or one JSON object a line."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


class RequestLog:
    """ASGI middleware: a request id for every request (the client's `X-Request-Id` when it is tame),
    echoed in the response, and one access log line with the status and the time taken."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        fields: dict[str, Any] = {"request_id": given if _REQUEST_ID.match(given) else secrets.token_hex(8)}
        token = _CONTEXT.set(fields)
        started, status = time.perf_counter(), [500]

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", fields["request_id"].encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            if not path.startswith(("/metrics", "/livez", "/readyz")):  # probes would drown the log
                access.info(
                    "%s %s %d", scope.get("method"), path[:200], status[0],
                    extra={"method": scope.get("method"), "path": path[:200], "status": status[0],
                           "ms": round((time.perf_counter() - started) * 1000, 1)},
                )  # fmt: skip
            _CONTEXT.reset(token)
