"""The app factory: routers, error handlers, and the store and worker pool's lifetime.

``create_app(settings)`` locks the data folder (one server per folder, :mod:`api.lock`), opens
the SQLite store, recovers jobs a dead server left running
(re-queued, or ``interrupted`` with a reason), starts the worker processes (with
``executor: ray`` they drive Ray tasks, :mod:`api.ray_runner`), and starts the validator
processes (:mod:`api.validator`), which import the engine behind the server: ``/healthz``
answers at once, and a POST waits for the first validator that is ready. Given
``listening`` (``verifier serve`` passes its uvicorn server's ``started``), the workers and
validators are started only once the socket listens, so their imports do not compete with
the server's own start for the CPU. Nothing this module imports reaches the spec language,
the engine or the numeric libraries (tests/api/test_startup.py). With a token set, the
OpenAPI document and ``/docs`` need it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors, lock
from api.ray_runner import RayConfig
from api.routes import docs, meta, reports, verifications
from api.settings import Settings
from api.store import Store
from api.validator import Validators
from api.workers import WorkerPool
from verifier import __version__
from verifier.limits import Limits

log = logging.getLogger(__name__)

RESTART_REASON = "the server stopped while the job was running"
LISTEN_POLL_S = 0.02  # how often the deferred start looks whether the socket listens


def ray_config(settings: Settings) -> RayConfig | None:
    """The workers' Ray connection, or None for the local executor."""
    if settings.executor != "ray":
        return None
    return RayConfig(settings.ray_address, settings.ray_task_retries, settings.poll_s)


def served_limits(limits: Limits, settings: Settings) -> Limits:
    """The engine's limits as this server applies them: a claim's model path must resolve
    inside ``models_dir``, and with none configured every model path is refused."""
    folder = None if settings.models_dir is None else str(settings.models_dir.resolve())
    return limits.model_copy(update={"models_dir": folder, "models_dir_required": True})


def create_app(
    settings: Settings | None = None,
    limits: Limits | None = None,
    listening: Callable[[], bool] | None = None,
) -> FastAPI:
    """Build the app; the store opens when it starts serving, and the workers and validators
    start then too, or, given ``listening``, once it returns true (the socket listens)."""
    settings = settings or Settings()
    limits = served_limits(limits or Limits(), settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        folder = lock.acquire(settings.data_dir)  # one server per data folder (api/lock.py)
        try:
            async with _serving(app, settings, limits, listening):
                yield
        finally:
            lock.release(folder)

    app = FastAPI(
        title="verifier",
        version=__version__,
        summary="Declarative verification of geometric factual-recall claims",
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,  # served by api/routes/docs.py, behind the token
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings, app.state.limits = settings, limits
    errors.install(app)
    app.include_router(verifications.router)
    app.include_router(reports.router)
    app.include_router(reports.home)
    app.include_router(meta.router)
    app.include_router(docs.router)
    return app


@asynccontextmanager
async def _serving(
    app: FastAPI, settings: Settings, limits: Limits, listening: Callable[[], bool] | None
) -> AsyncIterator[None]:
    """Open the store, recover what a dead server left running, start workers and validators
    (at once, or once ``listening()`` is true)."""
    store = Store(settings.db_path)
    recovered = store.recover(settings.max_attempts, RESTART_REASON)
    for job_id, status in recovered.items():
        log.warning("job %s was running when the server stopped: now %s", job_id, status)
    pool = None
    if settings.workers > 0:
        pool = WorkerPool(
            store,
            limits,
            settings.workers,
            settings.job_timeout_s,
            settings.kill_grace_s,
            settings.max_attempts,
            settings.poll_s,
            ray_config(settings),
            str(settings.cache_dir.resolve()) if settings.cache_dir is not None else None,
        )
    validators = Validators(
        settings.validators,
        limits,
        settings.validate_timeout_s,
        settings.validator_ready_wait_s,
    )
    app.state.store, app.state.pool, app.state.validators = store, pool, validators

    async def start() -> None:
        while listening is not None and not listening():
            await asyncio.sleep(LISTEN_POLL_S)
        if pool is not None:
            pool.start()
        await validators.start()

    starting = asyncio.ensure_future(start()) if listening is not None else None
    if starting is None:
        await start()
    try:
        yield
    finally:
        if starting is not None and not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        await validators.stop()
        if pool is not None:
            pool.stop()
