"""Service metadata: ``/healthz``, the spec language's schema, and the theorem registry."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from fastapi import APIRouter

from api.deps import Auth, PoolDep, SettingsDep, StoreDep
from api.errors import ApiError
from api.models import ErrorOut, Health
from verifier import __version__
from verifier.spec import spec_schema

router = APIRouter(tags=["meta"])

# names under which verifier/theory/ may expose its registry's JSON form, in order of preference
_THEOREM_EXPORTS = ("registry_json", "theorems_json", "registry_as_json", "to_json")


def theorem_registry() -> Any | None:
    """The theorem registry's JSON form from :mod:`verifier.theory`, or None if it has none."""
    if importlib.util.find_spec("verifier.theory") is None:
        return None
    bounds = importlib.import_module("verifier.theory")
    for name in _THEOREM_EXPORTS:
        export = getattr(bounds, name, None)
        if callable(export):
            return export()
    return None


@router.get("/healthz", response_model=Health)
def healthz(settings: SettingsDep, store: StoreDep, pool: PoolDep) -> Health:
    """Liveness, worker count and queue state (the one route open without the token)."""
    return Health(
        status="ok",
        verifier_version=__version__,
        workers=settings.workers,
        workers_alive=pool.alive() if pool is not None else 0,
        jobs=store.counts(),
    )


_AUTH_ERROR: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "a token is set and the request lacks it"}
}


@router.get("/v1/schema", response_model=dict[str, Any], dependencies=[Auth], responses=_AUTH_ERROR)
def schema() -> dict[str, Any]:
    """JSON Schema of the spec language (the same as ``verifier schema``)."""
    return spec_schema()


@router.get(
    "/v1/theorems",
    response_model=Any,
    dependencies=[Auth],
    responses={
        **_AUTH_ERROR,
        404: {"model": ErrorOut, "description": "this version has no theorem registry"},
    },
)
def theorems() -> Any:
    """The theorem registry (statements, parameter counts, bounds) as JSON."""
    registry = theorem_registry()
    if registry is None:
        raise ApiError(404, "not_found", "this verifier version has no theorem registry")
    return registry
