"""JSON error answers: every failure is ``{"error", "message", ...}``, never a stack trace."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.models import ErrorOut
from verifier.errors import LimitExceeded, SpecError

log = logging.getLogger(__name__)

_LIMIT_NAME = re.compile(r"over the limit (\w+)")
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "queue_full",
}


class ApiError(Exception):
    """An error with its HTTP status, code word and headers."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers


def error_response(
    status: int, body: ErrorOut, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON answer for an error."""
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def limit_name(message: str) -> str | None:
    """The limit a :class:`LimitExceeded` message names (``max_entities``), if any."""
    match = _LIMIT_NAME.search(message)
    return match.group(1) if match else None


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, ErrorOut(error=exc.error, message=exc.message), exc.headers
        )

    @app.exception_handler(SpecError)
    async def spec_error(_: Request, exc: SpecError) -> JSONResponse:
        body = ErrorOut(error="spec_error", message=exc.render(), line=exc.line, key=exc.key)
        return error_response(422, body)

    @app.exception_handler(LimitExceeded)
    async def limit_error(_: Request, exc: LimitExceeded) -> JSONResponse:
        body = ErrorOut(error="limit_exceeded", message=str(exc), limit=limit_name(str(exc)))
        return error_response(422, body)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            given = err.get("input")
            shown = repr(given)[:80] if isinstance(given, str | int | float) else None
            parts.append(
                f"{where}: {err.get('msg', 'invalid')}"
                + (f" (got {shown})" if shown is not None else "")
            )
        return error_response(422, ErrorOut(error="invalid_request", message="; ".join(parts)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 404 and message == "Not Found":
            message = "no such resource; see /docs for the API's routes"
        return error_response(
            exc.status_code,
            ErrorOut(error=code, message=message),
            dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        body = ErrorOut(error="internal", message="internal error; the server log has details")
        return error_response(500, body)
