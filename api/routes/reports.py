"""The report as a page and as downloads, and the job list for a browser.

- ``/v1/verifications/{id}/report``: the HTML page with its plots;
- ``/v1/verifications/{id}/report.json``, ``/junit.xml``, ``/spec.yaml``: the report as JSON
  (what ``verifier check --json`` writes for one spec), as JUnit XML (``verifier check
  --junit``'s writer), and the spec as submitted, each as a download;
- ``/``: the jobs, newest first, a page at a time, each linking to its report page.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.deps import Auth, JobDep, StoreDep
from api.errors import JOB_ERRORS, ApiError, documented, on_html_route
from api.report_page import CSP, render_list, render_page
from api.store import Job, JobStatus
from verifier.engine.report import Report

router = APIRouter(prefix="/v1/verifications", tags=["reports"], dependencies=[Auth])
home = APIRouter(dependencies=[Auth], include_in_schema=False)

MAX_ID = 2**63 - 1  # SQLite's INTEGER: cursors above it do not exist

_RESPONSES = on_html_route(
    {
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "the page"},
        **JOB_ERRORS,
        400: documented("a malformed id"),
    }
)


def _download(job: Job, suffix: str) -> dict[str, str]:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", job.spec_name).strip("-") or "spec"
    return {"Content-Disposition": f'attachment; filename="{stem}{suffix}"'}


def _finished(job: Job) -> Report:
    if job.report is None:
        raise ApiError(
            409, "conflict", f"expected a finished verification with a report, got {job.status}"
        )
    return Report.model_validate(job.report)


def _file_responses(
    media_type: str, schema: dict[str, str], what: str, needs_report: bool = True
) -> dict[Any, Any]:
    responses: dict[Any, Any] = {
        200: {"content": {media_type: {"schema": schema}}, "description": what},
        **JOB_ERRORS,
        400: documented("a malformed id"),
    }
    if needs_report:
        responses[409] = documented("the verification has no report yet (queued or running)")
    return on_html_route(responses)


@router.get("/{verification_id}/report", response_class=HTMLResponse, responses=_RESPONSES)
def report_page(job: JobDep) -> HTMLResponse:
    """The report as an HTML page: verdicts, times, downloads, plots that fit the claims
    (training curves among them), provenance, a legend, and the spec."""
    return HTMLResponse(render_page(job), headers={"Content-Security-Policy": CSP})


@router.get(
    "/{verification_id}/report.json",
    response_class=JSONResponse,
    responses={
        **JOB_ERRORS,
        200: {"description": "the report (as `verifier check --json` writes one spec's)"},
        409: documented("the verification has no report yet (queued or running)"),
    },
)
def report_json(job: JobDep) -> JSONResponse:
    """The report as JSON, as a download."""
    report = _finished(job)
    return JSONResponse(report.model_dump(mode="json"), headers=_download(job, ".report.json"))


@router.get(
    "/{verification_id}/junit.xml",
    response_class=Response,
    responses=_file_responses(
        "application/xml", {"type": "string"}, "JUnit XML: one testcase per claim result"
    ),
)
def report_junit(job: JobDep) -> Response:
    """The report as JUnit XML (one testsuite, one testcase per claim result), as a download."""
    from verifier.cli import junit_xml  # the CLI's writer; imported on the first download

    report = _finished(job)
    return Response(
        junit_xml([report]), media_type="application/xml", headers=_download(job, ".junit.xml")
    )


@router.get(
    "/{verification_id}/spec.yaml",
    response_class=Response,
    responses=_file_responses(
        "application/yaml",  # a mapping, as YAML text (or the JSON text it was submitted as)
        {"type": "object", "description": "the spec as submitted; see GET /v1/schema"},
        "the spec as submitted",
        needs_report=False,
    ),
)
def spec_yaml(job: JobDep) -> Response:
    """The spec as submitted, as a download."""
    return Response(
        job.spec_text, media_type="application/yaml", headers=_download(job, ".spec.yaml")
    )


@home.get("/", response_class=HTMLResponse)
def job_list(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100, description="page size")] = 20,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="cursor from `next`")] = None,
    status: Annotated[JobStatus | None, Query(description="only jobs in this state")] = None,
) -> HTMLResponse:
    """The jobs for a browser: newest first, a page at a time, each linking to its page."""
    jobs, total = store.list_jobs(limit + 1, before, status)
    next_url = None
    if len(jobs) > limit:
        jobs = jobs[:limit]
        next_url = f"/?limit={limit}&before={jobs[-1].seq}" + (
            f"&status={status}" if status else ""
        )
    return HTMLResponse(
        render_list(jobs, total, next_url, status), headers={"Content-Security-Policy": CSP}
    )
