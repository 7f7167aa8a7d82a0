"""``/v1/verifications``: submit a spec, read its job, list jobs, stream events, cancel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Auth, JobDep, SettingsDep, StoreDep, ValidatorsDep
from api.errors import AUTH_ERROR, JOB_ERRORS, ApiError, documented
from api.intake import JSON_TYPES, YAML_TYPES
from api.models import (
    SPEC_JSON_EXAMPLE,
    ClaimEstimate,
    DryRun,
    Verification,
    VerificationPage,
    VerificationSummary,
)
from api.store import TERMINAL, Event, JobStatus, QueueFull
from verifier import __version__

router = APIRouter(prefix="/v1/verifications", tags=["verifications"], dependencies=[Auth])

MAX_ID = 2**63 - 1  # SQLite's INTEGER: cursors above it do not exist
# Event ids as sent back in Last-Event-ID: a header is text, and 18 digits stay below 2**63 - 1
EVENT_ID = r"^[0-9]{1,18}$"


async def read_body(request: Request, limit: int, idle_s: float = 10.0) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes, and with 408
    when no byte of it comes for ``idle_s`` seconds (a body that never finishes)."""
    declared = request.headers.get("content-length", "")
    too_big = f"expected a body of at most {limit:,} bytes (max_body_bytes)"
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"{too_big}, got {int(declared):,}")
    chunks, size = [], 0
    stream = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(stream), idle_s)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise ApiError(
                408,
                "body_timeout",
                f"expected the rest of the body within {idle_s:g} s (body_idle_s), got "
                f"{size:,} bytes and then nothing",
                headers={"Connection": "close"},
            ) from None
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"{too_big}, got more")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    status_code=202,
    response_model=Verification | DryRun,
    responses={
        200: {
            "model": Verification | DryRun,
            "description": "answered from a stored report (reuse), or the estimate (dry_run)",
        },
        401: AUTH_ERROR,
        413: documented("the body is over max_body_bytes"),
        408: documented("the body stopped arriving for body_idle_s"),
        415: documented("neither YAML nor JSON"),
        422: documented("a bad spec, or a spec over a limit"),
        429: documented("the queue is full; retry after Retry-After s"),
        503: documented("the validator process died; retry"),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                # a mapping either way (YAML text of one, or JSON); a body the schema accepts
                # can still break a rule it cannot state (a formula, a limit): 422
                "application/yaml": {
                    "schema": {"type": "object", "description": "a spec; see GET /v1/schema"},
                    "example": SPEC_JSON_EXAMPLE,
                },
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
    store: StoreDep,
    validators: ValidatorsDep,
    reuse: Annotated[
        bool,
        Query(
            description="answer from a stored report of the same spec and version, or join "
            "the same spec's job already queued or running"
        ),
    ] = True,
    dry_run: Annotated[
        bool,
        Query(
            description="validate and preflight only: 200 with each claim's estimated flops "
            "and peak memory; nothing is queued"
        ),
    ] = False,
) -> Verification | DryRun:
    """Submit a spec (YAML or JSON): 202 with a new job, or with the job of the same spec
    already queued or running (joined, with ``reuse``); 200 with a reused report, or with the
    cost estimate (``dry_run``)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in YAML_TYPES | JSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected Content-Type application/yaml or application/json, got {media_type!r}",
        )
    body = await read_body(request, settings.max_body_bytes, settings.body_idle_s)
    spec = await validators.prepare(body, media_type)  # a validator process: off the loop
    if dry_run:
        response.status_code = 200
        return DryRun(
            spec_name=spec.name,
            spec_hash=spec.spec_hash,
            claims=[
                ClaimEstimate(claim=k, flops=f, memory_bytes=m, expected_flops=e)
                for k, f, m, e in spec.estimate
            ],
        )
    try:
        job, how = await run_in_threadpool(
            store.submit,
            spec.name,
            spec.spec_hash,
            __version__,
            spec.text,
            settings.max_queued,
            reuse,
        )
    except QueueFull as exc:
        raise ApiError(
            429,
            "queue_full",
            f"{exc}; retry later",
            headers={"Retry-After": str(settings.retry_after_s)},
        ) from None
    response.status_code = 200 if how == "reused" else 202
    response.headers["Location"] = f"/v1/verifications/{job.id}"
    return Verification.from_job(job)


@router.get("", response_model=VerificationPage, responses={401: AUTH_ERROR, 422: JOB_ERRORS[422]})
def list_verifications(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100, description="page size")] = 20,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="cursor from `next`")] = None,
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


@router.get("/{verification_id}", response_model=Verification, responses=JOB_ERRORS)
def get_verification(job: JobDep) -> Verification:
    """A job: status, progress, and the report once finished."""
    return Verification.from_job(job)


@router.delete(
    "/{verification_id}",
    status_code=202,
    response_model=Verification,
    responses={**JOB_ERRORS, 409: documented("already finished")},
)
def cancel_verification(job: JobDep, store: StoreDep) -> Verification:
    """Cancel a job: a queued one at once, a running one within seconds."""
    if job.status in TERMINAL:
        raise ApiError(
            409,
            "conflict",
            f"expected a queued or running verification, got one already {job.status}",
        )
    updated = store.cancel(job.id)
    return Verification.from_job(updated or job)


_SSE_EVENT = {  # OpenAPI 3.1: the schema of a text/event-stream describes one event
    "type": "object",
    "description": "one server-sent event; `data` is JSON text",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string", "enum": ["status", "progress", "verdict", "timeout"]},
        "data": {"type": "string"},
    },
    "required": ["event", "data"],
}
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
            "content": {"text/event-stream": {"schema": _SSE_EVENT, "example": _SSE_EXAMPLE}},
        },
        **JOB_ERRORS,
        503: documented("max_streams event streams are open; retry after Retry-After s"),
    },
)
async def stream_events(
    request: Request,
    job: JobDep,
    store: StoreDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            pattern=EVENT_ID,
            description="resume after this event id (what the last event's `id:` said)",
        ),
    ] = "0",
) -> StreamingResponse:
    """Stream a job's progress as server-sent events, ending with its verdict.

    A stream resumed after the verdict (``Last-Event-ID`` at or past it, as a browser sends on
    reconnect) replays what it missed and closes once the job is final. At most
    ``max_streams`` streams are open at once; past that: 503 with Retry-After.
    """
    job_id, start_after = job.id, int(last_event_id)
    state = request.app.state
    open_now = getattr(state, "open_streams", 0)
    if open_now >= settings.max_streams:
        raise ApiError(
            503,
            "too_many_streams",
            f"{open_now} event streams are open, the limit max_streams is "
            f"{settings.max_streams}; retry later or poll the job",
            headers={"Retry-After": str(settings.retry_after_s)},
        )

    def line(event: Event) -> str:
        return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event.data)}\n\n"

    async def events() -> AsyncIterator[str]:
        state.open_streams = getattr(state, "open_streams", 0) + 1  # counted once it runs
        try:
            after, deadline, quiet = start_after, time.monotonic() + settings.stream_max_s, 0.0
            while time.monotonic() < deadline:
                batch = await run_in_threadpool(store.events_after, job_id, after)
                for event in batch:
                    after = event.id
                    yield line(event)
                    if event.type == "verdict":
                        return
                if batch:
                    quiet = 0.0
                    continue
                current = await run_in_threadpool(store.get, job_id)
                if current is None or current.status in TERMINAL:  # final: nothing more comes
                    for event in await run_in_threadpool(store.events_after, job_id, after):
                        yield line(event)  # written between the two reads
                    return
                quiet += settings.poll_s
                if quiet >= 15.0:  # a comment line keeps proxies from closing an idle stream
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(settings.poll_s)
            yield 'event: timeout\ndata: {"message": "stream_max_s reached; reconnect"}\n\n'
        finally:
            state.open_streams -= 1

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
