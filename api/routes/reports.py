"""``/v1/verifications/{id}/report``: the report as an HTML page with its plots."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import Auth, JobDep
from api.report_page import CSP, render_page

router = APIRouter(prefix="/v1/verifications", tags=["reports"], dependencies=[Auth])

# The page is HTML; its errors are the API's JSON (FastAPI would document them as text/html).
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "the page"},
    400: {"content": _JSON_ERROR, "description": "a malformed id"},
    401: {"content": _JSON_ERROR, "description": "a token is set and the request lacks it"},
    404: {"content": _JSON_ERROR, "description": "no such verification"},
    422: {"content": _JSON_ERROR, "description": "a parameter out of its range"},
}


@router.get("/{verification_id}/report", response_class=HTMLResponse, responses=_RESPONSES)
def report_page(job: JobDep) -> HTMLResponse:
    """The report as an HTML page: verdicts, plots that fit the claims, and the spec."""
    return HTMLResponse(render_page(job), headers={"Content-Security-Policy": CSP})
