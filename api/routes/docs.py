"""``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, behind the token like every route
but ``/healthz``.

FastAPI's own documentation routes take no dependencies and load Swagger UI and ReDoc from a
CDN, so the app turns them off and serves them here, with the scripts and styles from the
``fastapi-offline`` package (under ``/docs/static/``): the pages work with no network. A browser
that opened ``/docs`` with Basic authentication sends the same credentials when the page fetches
the assets and ``/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from api.deps import Auth
from api.errors import ApiError

router = APIRouter(dependencies=[Auth], include_in_schema=False)

STATIC = Path(fastapi_offline.__file__).parent / "static"
ASSETS = {  # the only files served from it, with their media types
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


@router.get("/openapi.json")
def openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI document."""
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    """Swagger UI over ``/openapi.json``, its assets served by this app."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - docs",
        swagger_js_url="/docs/static/swagger-ui-bundle.js",
        swagger_css_url="/docs/static/swagger-ui.css",
        swagger_favicon_url="/docs/static/favicon.png",
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc over ``/openapi.json``, its script served by this app (no web fonts)."""
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url="/docs/static/redoc.standalone.js",
        redoc_favicon_url="/docs/static/favicon.png",
        with_google_fonts=False,
    )


@router.get("/docs/static/{name}")
def asset(name: str) -> FileResponse:
    """One of the Swagger UI and ReDoc files (:data:`ASSETS`); others are 404."""
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"expected one of {', '.join(ASSETS)}, got {name!r}")
    headers = {"Cache-Control": "max-age=86400"}
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=headers)
