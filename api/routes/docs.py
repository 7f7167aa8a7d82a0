"""``/openapi.json`` and ``/docs``, behind the token like every route but ``/healthz``.

FastAPI's own documentation routes take no dependencies, so the app turns them off and serves
them here. A browser that opened ``/docs`` with Basic authentication sends the same credentials
when the page fetches ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from api.deps import Auth

router = APIRouter(dependencies=[Auth], include_in_schema=False)


@router.get("/openapi.json")
def openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI document."""
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    """Swagger UI over ``/openapi.json``."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} - docs")
