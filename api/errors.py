"""JSON error answers: every failure is ``{"error", "message", ...}``, never a stack trace.

An exception no handler knows is answered by :class:`CatchAll` (500, JSON) without re-raising
it, so the server keeps the connection open as HTTP/1.1 promises; Starlette's own last-resort
handler re-raises, and uvicorn then drops a keep-alive connection without ``Connection: close``.
A 405 names every method the path has (``Allow``), not only the first route's. A storage fault
(a full disk, a removed data folder) is a 503 with its reason and ``Retry-After``.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.models import ErrorOut
from api.store import StoreUnavailable, store_error_reason
from verifier.errors import LimitExceeded, SpecError

log = logging.getLogger(__name__)

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
    503: "unavailable",
}
STORAGE_RETRY_AFTER_S = 5  # Retry-After of a 503 for a storage fault
_INTERNAL = ErrorOut(error="internal", message="internal error; the server log has details")


Headers = Mapping[str, str | Sequence[str]]  # a sequence: the header once per value
Responses = dict[int | str, dict[str, Any]]  # a route's OpenAPI ``responses``


def documented(description: str) -> dict[str, Any]:
    """The OpenAPI entry of one error answer: an :class:`ErrorOut` JSON body."""
    return {"model": ErrorOut, "description": description}


AUTH_ERROR = documented("a token is set and the request lacks it")
JOB_ERRORS: Responses = {  # the errors of a route on one verification, ``/{verification_id}``
    400: documented("a malformed id or body"),
    401: AUTH_ERROR,
    404: documented("no such verification"),
    422: documented("a parameter out of its range"),
}
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def on_html_route(responses: Responses) -> Responses:
    """``responses`` for a route whose answer is HTML: its errors are still the API's JSON,
    which FastAPI would document as ``text/html`` from a ``model``, so the schema is named."""
    return {
        status: {"content": _JSON_ERROR, "description": entry["description"]}
        if "model" in entry
        else entry
        for status, entry in responses.items()
    }


class ApiError(Exception):
    """An error with its HTTP status, code word and headers."""

    def __init__(self, status: int, error: str, message: str, headers: Headers | None = None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers


def error_response(status: int, body: ErrorOut, headers: Headers | None = None) -> JSONResponse:
    """The JSON answer for an error (a header given several values is sent once for each:
    browsers read one authentication challenge per ``WWW-Authenticate`` line)."""
    response = JSONResponse(body.model_dump(), status_code=status)
    for name, value in (headers or {}).items():
        for one in [value] if isinstance(value, str) else value:
            response.headers.append(name, one)
    return response


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
        body = ErrorOut(error="limit_exceeded", message=str(exc), limit=exc.name)
        return error_response(422, body)

    async def storage_error(request: Request, exc: Exception) -> JSONResponse:
        store = getattr(request.app.state, "store", None)
        reason = store_error_reason(exc, store.path if store is not None else None)
        log.warning("storage error: %s", reason)  # once per request, no traceback
        body = ErrorOut(error="storage_unavailable", message=f"{reason}; retry")
        return error_response(503, body, {"Retry-After": str(STORAGE_RETRY_AFTER_S)})

    app.add_exception_handler(sqlite3.Error, storage_error)
    app.add_exception_handler(StoreUnavailable, storage_error)

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
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code
        headers: dict[str, str | Sequence[str]] = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 404 and message == "Not Found":
            message = "no such resource; see /docs for the API's routes"
        if exc.status_code == 405:
            allowed = allowed_methods(request, str(headers.get("Allow", "")))
            headers["Allow"] = ", ".join(allowed)
            message = f"expected one of {', '.join(allowed)}, got {request.method}"
        return error_response(exc.status_code, ErrorOut(error=code, message=message), headers)

    app.add_middleware(CatchAll)


_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def allowed_methods(request: Request, given: str = "") -> list[str]:
    """Every method the app documents at this request's path, plus those Starlette named."""
    methods = {m.strip() for m in given.split(",") if m.strip()}
    paths: dict[str, dict[str, object]] = request.app.openapi().get("paths", {})
    for template, operations in paths.items():
        if re.fullmatch(re.sub(r"\{[^/}]+\}", "[^/]+", template), request.url.path):
            methods |= {m.upper() for m in operations if m in _METHODS}
    return sorted(methods)


class CatchAll:
    """ASGI middleware: an unexpected exception becomes a JSON 500, and the connection lives.

    After the response has started nothing can be answered any more: the exception is logged
    and the stream ends there.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await error_response(500, _INTERNAL)(scope, receive, send)
