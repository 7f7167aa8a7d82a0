"""Service metadata: ``/healthz``, the spec language's schema, and the theorem registry."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from typing import Any

from fastapi import APIRouter

from api.deps import Auth, PoolDep, SettingsDep, StoreDep, ValidatorsDep
from api.errors import AUTH_ERROR
from api.models import Health
from api.store import STORE_ERRORS
from verifier import __version__

router = APIRouter(tags=["meta"])


@router.get("/healthz", response_model=Health)
def healthz(
    settings: SettingsDep, store: StoreDep, pool: PoolDep, validators: ValidatorsDep
) -> Health:
    """Liveness, worker count and queue state (the one route open without the token):
    ``degraded``, with the reasons, when no worker is alive (once they have been started:
    ``verifier serve`` starts them just after it listens) or the store cannot take a write."""
    alive = pool.alive() if pool is not None else 0
    reasons = []
    if settings.workers > 0 and alive == 0 and (pool is None or pool.started):
        reasons.append(f"no worker process is alive (of {settings.workers}): jobs wait queued")
    if (why := store.health()) is not None:
        reasons.append(why)
    try:
        jobs = store.counts()
    except STORE_ERRORS:
        jobs = {}
    return Health(
        status="degraded" if reasons else "ok",
        verifier_version=__version__,
        workers=settings.workers,
        workers_alive=alive,
        jobs=jobs,
        reasons=reasons,
        validators=validators.size,
        validators_ready=validators.ready,
    )


@router.get(
    "/v1/schema", response_model=dict[str, Any], dependencies=[Auth], responses={401: AUTH_ERROR}
)
def schema() -> dict[str, Any]:
    """JSON Schema of the spec language (the same as ``verifier schema``)."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


@functools.cache
def _schema_text() -> str:
    """``verifier schema``, written once by a child process and kept.

    The schema's enums are read from the construction registry, whose builders import torch;
    the API process imports none of the engine's numeric libraries, so a child writes it.
    """
    command = [sys.executable, "-m", "verifier.cli", "schema"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    return done.stdout


@router.get(
    "/v1/theorems",
    response_model=list[dict[str, Any]],
    dependencies=[Auth],
    responses={401: AUTH_ERROR},
)
def theorems() -> list[dict[str, Any]]:
    """The theorem registry (statements, parameter counts, bounds) as JSON."""
    from verifier.theory import registry_json  # sympy: on the first call, not at start-up

    return registry_json()
