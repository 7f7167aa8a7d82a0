"""Dependencies, as ``Annotated`` aliases: settings, limits, the store, the pool, the validators,
the token check."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security.http import HTTPAuthorizationCredentials, HTTPBase

from api.errors import ApiError
from api.settings import Settings
from api.store import Job, Store
from api.validator import Validators
from api.workers import WorkerPool
from verifier.limits import Limits

ID_REGEX = "^[0-9a-f]{32}$"
ID_PATTERN = re.compile(ID_REGEX)
CHALLENGES = ('Basic realm="verifier", charset="UTF-8"', 'Bearer realm="verifier"')


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


def get_validators(request: Request) -> Validators:
    """The validator processes started at startup."""
    validators: Validators = request.app.state.validators
    return validators


ValidatorsDep = Annotated[Validators, Depends(get_validators)]

# Two ways to send the token, both documented in OpenAPI: a header for programs, and Basic
# authentication (any user name, the token as password) for browsers, which ask for it on a
# 401 with this realm, keep it for the origin, and never put it in a URL or a log.
_BEARER = HTTPBase(
    scheme="bearer",
    scheme_name="token",
    description="Authorization: Bearer <VERIFIER_API_TOKEN>",
    auto_error=False,
)
_BASIC = HTTPBase(
    scheme="basic",
    scheme_name="browser",
    description="Basic authentication: any user name, VERIFIER_API_TOKEN as the password",
    auto_error=False,
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
BasicCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BASIC)]


def _token_of(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The token a Bearer header carries, or the password of a Basic one."""
    if credentials is None:
        return None
    scheme = credentials.scheme.lower()
    if scheme == "bearer":
        return credentials.credentials
    if scheme == "basic":
        try:
            pair = base64.b64decode(credentials.credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return pair.partition(":")[2]
    return None


def require_token(settings: SettingsDep, credentials: Credentials, _: BasicCredentials) -> None:
    """Every route but ``/healthz`` needs the token when ``VERIFIER_API_TOKEN`` is set."""
    if settings.token is None:
        return
    given = _token_of(credentials)
    if given is None or not hmac.compare_digest(given.encode(), settings.token.encode()):
        got = "no Authorization header" if credentials is None else "a wrong or malformed token"
        raise ApiError(
            401,
            "unauthorized",
            "expected Authorization: Bearer <token> (or Basic, with the token as password), "
            f"got {got}",
            headers={"WWW-Authenticate": CHALLENGES},
        )


Auth = Depends(require_token)  # router and route dependencies: every route but /healthz


def job_id(
    verification_id: Annotated[
        str,
        Path(description="32 lowercase hex digits", json_schema_extra={"pattern": ID_REGEX}),
    ],
) -> str:
    """Validate a job id before it is used anywhere (it never becomes a path)."""
    if not ID_PATTERN.fullmatch(verification_id):  # `$` alone lets a trailing newline by
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
