"""Dependencies, as ``Annotated`` aliases: settings, limits, the store, the pool, write auth."""

from __future__ import annotations

import hmac
import re
from typing import Annotated

from fastapi import Depends, Header, Path, Request

from api.errors import ApiError
from api.settings import Settings
from api.store import Job, Store
from api.workers import WorkerPool
from verifier.limits import Limits

ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def get_settings(request: Request) -> Settings:
    """The app's settings (override in tests with ``app.dependency_overrides``)."""
    settings: Settings = request.app.state.settings
    return settings


def get_limits(request: Request) -> Limits:
    """The engine's limits, checked before a job is queued."""
    limits: Limits = request.app.state.limits
    return limits


def get_store(request: Request) -> Store:
    """The job store opened at startup."""
    store: Store = request.app.state.store
    return store


def get_pool(request: Request) -> WorkerPool | None:
    """The worker pool, or None when the app runs without workers."""
    pool: WorkerPool | None = request.app.state.pool
    return pool


SettingsDep = Annotated[Settings, Depends(get_settings)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
StoreDep = Annotated[Store, Depends(get_store)]
PoolDep = Annotated["WorkerPool | None", Depends(get_pool)]


def require_token(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
) -> None:
    """Writes need ``Authorization: Bearer <VERIFIER_API_TOKEN>`` when a token is set."""
    if settings.token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), settings.token.encode()
    ):
        got = "no Authorization header" if authorization is None else "a wrong or malformed token"
        raise ApiError(
            401,
            "unauthorized",
            f"expected Authorization: Bearer <token>, got {got}",
            headers={"WWW-Authenticate": "Bearer"},
        )


WriteAuth = Annotated[None, Depends(require_token)]


def job_id(
    verification_id: Annotated[str, Path(description="32 lowercase hex digits")],
) -> str:
    """Validate a job id before it is used anywhere (it never becomes a path)."""
    if not ID_PATTERN.match(verification_id):
        shown = repr(verification_id[:40]) + ("..." if len(verification_id) > 40 else "")
        raise ApiError(
            400, "bad_id", f"expected a verification id of 32 lowercase hex digits, got {shown}"
        )
    return verification_id


JobId = Annotated[str, Depends(job_id)]


def get_job(store: StoreDep, verification_id: JobId) -> Job:
    """The job with this id, or 404."""
    job = store.get(verification_id)
    if job is None:
        raise ApiError(404, "not_found", f"no verification with id {verification_id}")
    return job


JobDep = Annotated[Job, Depends(get_job)]
