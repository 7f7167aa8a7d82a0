"""``/v1/verifications/{id}/report``: the report as an HTML page with its plots."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import JobDep
from api.report_page import CSP, render_page
from api.routes.verifications import _ERRORS

router = APIRouter(prefix="/v1/verifications", tags=["reports"])


@router.get(
    "/{verification_id}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "the report page"}, **_ERRORS},
)
def report_page(job: JobDep) -> HTMLResponse:
    """The report as an HTML page: verdicts, plots that fit the claims, and the spec."""
    return HTMLResponse(render_page(job), headers={"Content-Security-Policy": CSP})
