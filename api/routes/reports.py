"""``/v1/verifications/{id}/report``: the report as an HTML page with its plots."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import Auth, JobDep
from api.errors import JOB_ERRORS, documented, on_html_route
from api.report_page import CSP, render_page

router = APIRouter(prefix="/v1/verifications", tags=["reports"], dependencies=[Auth])

_RESPONSES = on_html_route(
    {
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "the page"},
        **JOB_ERRORS,
        400: documented("a malformed id"),
    }
)


@router.get("/{verification_id}/report", response_class=HTMLResponse, responses=_RESPONSES)
def report_page(job: JobDep) -> HTMLResponse:
    """The report as an HTML page: verdicts, plots that fit the claims, and the spec."""
    return HTMLResponse(render_page(job), headers={"Content-Security-Policy": CSP})
