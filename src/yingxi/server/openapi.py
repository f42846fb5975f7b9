"""The OpenAPI document as the server really behaves: request bodies, the Bearer scheme, the one error
shape, and every status each route answers, so clients can be generated from it and a schema-driven
fuzzer (schemathesis, run by the tests) can check the server against it.

The routes read their bodies by hand (JSON, YAML or multipart, with limits FastAPI cannot express), so
FastAPI's own document describes none of this; it is completed here, from one table, without touching
the routes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "type"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "type": {"type": "string"},
                "shot": {"type": "integer", "description": "the 1-based shot the error is about"},
            },
        }
    },
}
STATUS_TEXT = {
    400: "The request is not valid (the message names the field)",
    401: "No API key, or not a valid one",
    403: "A file URL's signature is wrong or has expired",
    404: "No such task (or another tenant's), route or file",
    409: "The task cannot do that in its state (e.g. delete while running)",
    413: "A body, file or image is larger than the limits",
    415: "A content type, image or media file that cannot be read",
    422: "A parameter has the wrong type",
    429: "A per-tenant quota is reached; Retry-After says when to try again",
    500: "A bug (reported in the same shape; the connection is closed)",
    503: "The server's model is not available, or the job database does not answer",
}
TASK = {"type": "object", "required": ["id", "status"], "additionalProperties": True,
        "properties": {"id": {"type": "string"}, "status": {"type": "string"}}}  # fmt: skip
LIST = {"type": "object", "additionalProperties": True}
CREATED = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": {"type": "string"}},
}  # Ark answers only the id
WRITE = (400, 401, 413, 415, 422, 429, 500, 503)
READ = (400, 401, 404, 413, 422, 500)
# (method, path) -> (statuses besides 200, success schema)
ROUTES: dict[tuple[str, str], tuple[tuple[int, ...], dict]] = {
    ("post", "/api/v3/contents/generations/tasks"): (WRITE, CREATED),
    ("get", "/api/v3/contents/generations/tasks"): (READ, LIST),
    ("get", "/api/v3/contents/generations/tasks/{task_id}"): (READ, TASK),
    ("delete", "/api/v3/contents/generations/tasks/{task_id}"): ((*READ, 409), LIST),
    ("post", "/v1/videos"): (WRITE, TASK),
    ("get", "/v1/videos"): (READ, LIST),
    ("get", "/v1/videos/{video_id}"): (READ, TASK),
    ("delete", "/v1/videos/{video_id}"): ((*READ, 409), LIST),
    ("get", "/v1/videos/{video_id}/content"): ((*READ, 409), {"type": "string", "format": "binary"}),
    ("post", "/api/v1/films"): (WRITE, TASK),
    ("get", "/api/v1/films"): (READ, LIST),
    ("get", "/api/v1/films/{film_id}"): (READ, TASK),
    ("delete", "/api/v1/films/{film_id}"): ((*READ, 409), LIST),
    ("get", "/api/v1/health"): ((413, 500, 503), LIST),
    ("get", "/api/v1/limits"): ((413, 500), LIST),
    ("get", "/api/v3/files/{task_id}/{name}"): ((400, 401, 403, 404, 413, 422, 500), {"type": "string", "format": "binary"}),
    ("head", "/api/v3/files/{task_id}/{name}"): ((400, 401, 403, 404, 413, 422, 500), {"type": "string", "format": "binary"}),
}  # fmt: skip
PUBLIC = {"/api/v1/health", "/api/v1/limits", "/api/v3/files/{task_id}/{name}"}  # no key (files: a signature)
MEDIA = {"/v1/videos/{video_id}/content": "video/mp4", "/api/v3/files/{task_id}/{name}": "video/mp4"}


def _bodies() -> dict[str, dict]:
    """Request bodies per create route, from the routes' own pydantic models where they have one."""
    from yingxi.server.ark import CreateTask
    from yingxi.server.videos import CreateVideo

    def schema(model) -> dict:
        return model.model_json_schema(ref_template="#/components/schemas/{model}")

    multipart = {"type": "object", "additionalProperties": True,
                 "properties": {"request": {"type": "string", "description": "the JSON body"}}}  # fmt: skip
    film = {"type": "object", "required": ["shots"], "additionalProperties": True,
            "properties": {"shots": {"type": "array", "items": {"type": "object"}}}}  # fmt: skip
    return {
        "/api/v3/contents/generations/tasks": {
            "application/json": schema(CreateTask), "multipart/form-data": multipart},
        "/v1/videos": {"application/json": schema(CreateVideo), "multipart/form-data": {
            "type": "object", "required": ["prompt"], "additionalProperties": True,
            "properties": {"prompt": {"type": "string"}, "input_reference": {"type": "string", "format": "binary"}}}},
        "/api/v1/films": {"application/json": film, "multipart/form-data": {
            "type": "object", "required": ["script"], "additionalProperties": True,
            "properties": {"script": {"type": "string"}}}},
    }  # fmt: skip


def _hoist(schema: dict, components: dict) -> dict:
    """Move a pydantic schema's $defs into components (their refs already point there)."""
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    return schema


def build(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                "description": "Authorization: Bearer YOUR_KEY (yingxi keys create)"}}  # fmt: skip
    bodies = _bodies()
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            statuses, success = ROUTES.get((method, path), ((400, 413, 422, 500), LIST))
            media = MEDIA.get(path, "application/json")
            op["responses"] = {"200": {"description": "OK", "content": {media: {"schema": success}}}}
            for status in statuses:
                op["responses"][str(status)] = {
                    "description": STATUS_TEXT[status],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            if 429 in statuses:
                op["responses"]["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
            op["security"] = [] if path in PUBLIC else [{"bearer": []}]
            if method == "post" and path in bodies:
                content = {kind: {"schema": _hoist(dict(s), schemas)} for kind, s in bodies[path].items()}
                op["requestBody"] = {"required": True, "content": content}
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return doc


def install(app: FastAPI) -> None:
    """Serve `build(app)` at the app's openapi_url (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
