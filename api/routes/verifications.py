"""``/v1/verifications``: submit a spec, read its job, list jobs, stream events, cancel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import JobDep, LimitsDep, SettingsDep, StoreDep, WriteAuth
from api.errors import ApiError
from api.models import (
    SPEC_JSON_EXAMPLE,
    SPEC_YAML_EXAMPLE,
    ErrorOut,
    Verification,
    VerificationPage,
    VerificationSummary,
)
from api.store import TERMINAL, JobStatus, QueueFull
from verifier import __version__
from verifier.errors import SpecError
from verifier.limits import Limits
from verifier.report import Report
from verifier.spec import Spec, load_spec_text

router = APIRouter(prefix="/v1/verifications", tags=["verifications"])

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON_TYPES = frozenset({"application/json"})

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a malformed id or body"},
    401: {"model": ErrorOut, "description": "a token is set and the request lacks it"},
    404: {"model": ErrorOut, "description": "no such verification"},
}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_big = f"expected a body of at most {limit:,} bytes (max_body_bytes)"
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"{too_big}, got {int(declared):,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"{too_big}, got more")
        chunks.append(chunk)
    return b"".join(chunks)


def spec_text_of(body: bytes, media_type: str) -> str:
    """The spec as YAML text: YAML bodies as sent, JSON bodies re-written as YAML."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"expected UTF-8 text, got a bad byte at offset {exc.start}", file="<request>"
        ) from None
    if media_type in YAML_TYPES:
        return text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"expected JSON, got {exc.msg}", file="<request>", line=exc.lineno
        ) from None
    if not isinstance(data, dict):
        raise SpecError(
            f"expected a JSON object with name, instance and claims, got {type(data).__name__}",
            file="<request>",
        )
    return yaml.safe_dump(data, sort_keys=False)


def prepare(text: str, limits: Limits) -> Spec:
    """Parse and preflight a spec: every limit is checked here, before anything is queued.

    Raises:
        SpecError: a malformed spec (file, line and key where known).
        LimitExceeded: work over a limit, naming it.
    """
    from verifier.run import SpecRunner  # loads the claim registry (new kinds need no change)

    try:
        spec = load_spec_text(text, file="<request>", max_bytes=limits.max_spec_bytes)
        SpecRunner(spec, limits).preflight()
    except RecursionError:
        raise SpecError("expected a spec, got nesting too deep to read", file="<request>") from None
    return spec


@router.post(
    "",
    status_code=202,
    response_model=Verification,
    responses={
        200: {"model": Verification, "description": "answered from a stored report (reuse)"},
        401: _ERRORS[401],
        413: {"model": ErrorOut, "description": "the body is over max_body_bytes"},
        415: {"model": ErrorOut, "description": "neither YAML nor JSON"},
        422: {"model": ErrorOut, "description": "a bad spec, or a spec over a limit"},
        429: {"model": ErrorOut, "description": "the queue is full; retry after Retry-After s"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {"schema": {"type": "string"}, "example": SPEC_YAML_EXAMPLE},
                "application/json": {
                    "schema": {"type": "object", "description": "a spec; see GET /v1/schema"},
                    "example": SPEC_JSON_EXAMPLE,
                },
            },
        }
    },
)
async def submit(
    request: Request,
    response: Response,
    settings: SettingsDep,
    limits: LimitsDep,
    store: StoreDep,
    _auth: WriteAuth,
    reuse: Annotated[
        bool, Query(description="answer from a stored report of the same spec and version")
    ] = True,
) -> Verification:
    """Submit a spec (YAML or JSON); 202 with the job, or 200 with a reused report."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in YAML_TYPES | JSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected Content-Type application/yaml or application/json, got {media_type!r}",
        )
    body = await read_body(request, settings.max_body_bytes)
    text = spec_text_of(body, media_type)
    spec = await run_in_threadpool(prepare, text, limits)
    spec_hash = spec.content_hash()
    stored = store.stored_report(spec_hash, __version__) if reuse else None
    if stored is not None:
        status: JobStatus = Report.model_validate(stored).status
        job = await run_in_threadpool(store.create_reused, spec.name, text, stored, status)
        response.status_code = 200
    else:
        try:
            job = await run_in_threadpool(
                store.create_job, spec.name, spec_hash, __version__, text, settings.max_queued
            )
        except QueueFull as exc:
            raise ApiError(
                429,
                "queue_full",
                f"{exc}; retry later",
                headers={"Retry-After": str(settings.retry_after_s)},
            ) from None
    response.headers["Location"] = f"/v1/verifications/{job.id}"
    return Verification.from_job(job)


@router.get("", response_model=VerificationPage)
def list_verifications(
    request: Request,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100, description="page size")] = 20,
    before: Annotated[int | None, Query(ge=1, description="cursor from `next`")] = None,
    status: Annotated[JobStatus | None, Query(description="only jobs in this state")] = None,
) -> VerificationPage:
    """List jobs, newest first, a page at a time."""
    jobs, total = store.list_jobs(limit + 1, before, status)
    more = len(jobs) > limit
    jobs = jobs[:limit]
    next_url = None
    if more:
        next_url = f"/v1/verifications?limit={limit}&before={jobs[-1].seq}"
        next_url += f"&status={status}" if status else ""
    return VerificationPage(
        items=[VerificationSummary.from_job(j) for j in jobs], total=total, next=next_url
    )


@router.get("/{verification_id}", response_model=Verification, responses=_ERRORS)
def get_verification(job: JobDep) -> Verification:
    """A job: status, progress, and the report once finished."""
    return Verification.from_job(job)


@router.delete(
    "/{verification_id}",
    status_code=202,
    response_model=Verification,
    responses={**_ERRORS, 409: {"model": ErrorOut, "description": "already finished"}},
)
def cancel_verification(_auth: WriteAuth, job: JobDep, store: StoreDep) -> Verification:
    """Cancel a job: a queued one at once, a running one within seconds."""
    if job.status in TERMINAL:
        raise ApiError(
            409,
            "conflict",
            f"expected a queued or running verification, got one already {job.status}",
        )
    updated = store.cancel(job.id)
    return Verification.from_job(updated or job)


_SSE_EXAMPLE = (
    'id: 2\nevent: status\ndata: {"status": "running"}\n\n'
    'id: 3\nevent: progress\ndata: {"progress": 0.5, "key": "exact", "message": "2048/4096 facts"}'
    '\n\nid: 9\nevent: verdict\ndata: {"status": "passed", "message": "1/1 claims ok"}\n\n'
)


@router.get(
    "/{verification_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "server-sent events: status, progress, then one verdict (last)",
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}
            },
        },
        **_ERRORS,
    },
)
async def stream_events(
    job: JobDep,
    store: StoreDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        int | None, Header(alias="Last-Event-ID", description="resume after this event")
    ] = None,
) -> StreamingResponse:
    """Stream a job's progress as server-sent events, ending with its verdict."""
    job_id, start_after = job.id, last_event_id or 0

    async def events() -> AsyncIterator[str]:
        after, deadline, quiet = start_after, time.monotonic() + settings.stream_max_s, 0.0
        while time.monotonic() < deadline:
            batch = await run_in_threadpool(store.events_after, job_id, after)
            for event in batch:
                after = event.id
                yield f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event.data)}\n\n"
                if event.type == "verdict":
                    return
            if batch:
                quiet = 0.0
                continue
            quiet += settings.poll_s
            if quiet >= 15.0:  # a comment line keeps proxies from closing an idle stream
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(settings.poll_s)
        yield 'event: timeout\ndata: {"message": "stream_max_s reached; reconnect"}\n\n'

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
