"""One error shape for every API: {"error": {"code", "message", "param", "type"}} (Ark and OpenAI agree)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

# HTTP status -> (Ark code, OpenAI-style type) used when the raiser names no code.
DEFAULTS = {
    400: ("InvalidParameter", "invalid_request_error"),
    401: ("AuthenticationError", "authentication_error"),
    403: ("AccessDenied", "permission_error"),
    404: ("ResourceNotFound", "not_found_error"),
    405: ("MethodNotAllowed", "invalid_request_error"),
    409: ("InvalidAction", "invalid_request_error"),
    413: ("RequestTooLarge", "invalid_request_error"),
    415: ("UnsupportedMediaType", "invalid_request_error"),
    422: ("InvalidParameter", "invalid_request_error"),
    429: ("QuotaExceeded", "rate_limit_error"),
    500: ("InternalServiceError", "server_error"),
    503: ("ServiceUnavailable", "server_error"),
}


class ApiError(Exception):
    """Raised anywhere in a request; the app turns it into the error body with this status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 shot: int | None = None, retry_after: int | None = None):  # fmt: skip
        super().__init__(message)
        self.shot = shot  # the 1-based shot the error is about, so a client can show it beside that shot
        self.status = status
        self.message = message
        self.param = param
        self.code = code or DEFAULTS.get(status, DEFAULTS[400])[0]
        self.retry_after = retry_after  # seconds, sent as Retry-After (429)

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, param=self.param, code=self.code, shot=self.shot,
                              retry_after=self.retry_after)  # fmt: skip


def error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None, shot: int | None = None,
    retry_after: int | None = None,
) -> JSONResponse:  # fmt: skip
    default_code, kind = DEFAULTS.get(status, ("Error", "invalid_request_error"))
    body = {"error": {"code": code or default_code, "message": message, "param": param, "type": kind}}
    if shot is not None:  # a yingxi extension: which shot, for errors about one
        body["error"]["shot"] = shot
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    return JSONResponse(body, status_code=status, headers=headers or None)


def param_path(loc: tuple | list) -> str:
    """A validation error's location as the API's messages write it: ("content", 1, "role") ->
    "content[1].role", the same spelling the routes' own checks use."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out
