"""Service settings from ``VERIFIER_API_*`` environment variables (pydantic-settings).

The app reads them through the :func:`api.deps.get_settings` dependency, so tests override
them without touching the environment. Spec limits are the engine's own
(:class:`verifier.limits.Limits`, ``VERIFIER_*``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of one server (``VERIFIER_API_WORKERS=4`` and so on)."""

    model_config = SettingsConfigDict(env_prefix="VERIFIER_API_", extra="ignore")

    data_dir: Path = Path(".verifier/api")  # holds jobs.sqlite3 (jobs, events, reports)
    workers: int = Field(2, ge=0)  # worker processes; 0 queues jobs without running them
    token: str | None = None  # VERIFIER_API_TOKEN: when set, every route but /healthz needs it
    max_body_bytes: int = Field(256_000, ge=1)  # request body; larger bodies get 413
    body_idle_s: float = Field(10.0, gt=0)  # a body with no byte for this long gets 408
    max_queued: int = Field(256, ge=1)  # queued jobs; beyond this POST gets 429
    retry_after_s: int = Field(5, ge=1)  # Retry-After sent with 429
    job_timeout_s: float = Field(3600.0, gt=0)  # wall clock per job, then it is stopped
    kill_grace_s: float = Field(10.0, gt=0)  # after cancel/timeout, kill a worker that ignores it
    max_attempts: int = Field(2, ge=1)  # runs per job; past this a crashed run is `interrupted`
    poll_s: float = Field(0.1, gt=0)  # queue and event polling interval
    stream_max_s: float = Field(7200.0, gt=0)  # longest an event stream stays open
    max_streams: int = Field(64, ge=1)  # event streams open at once; beyond this 503
    executor: Literal["local", "ray"] = "local"  # where claim points run (ray: extra [ray])
    ray_address: str = "auto"  # ray.init address; "auto" joins the cluster started on this node
    ray_task_retries: int = Field(2, ge=0)  # re-runs of a task whose Ray worker died
    cache_dir: Path | None = None  # training checkpoints; None: no cache. On ray: a shared folder
    models_dir: Path | None = None  # model files claims may read (inside it only); None: none
    validators: int = Field(2, ge=0)  # spec-validating processes; 0 validates in-process
    validator_ready_wait_s: float = Field(60.0, gt=0)  # a POST before one is ready waits, then 503
    validate_timeout_s: float = Field(10.0, gt=0)  # one spec's parse and preflight, then refused

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self.data_dir / "jobs.sqlite3"
