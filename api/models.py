"""Request and response models of the HTTP API (typed, with examples, so OpenAPI documents each)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.store import Job, JobStatus
from verifier.engine.report import Report

_ID = "3f2b9c1e8d7a4b6c9e0f1a2b3c4d5e6f"
_HASH = "9a4c2f0e6d1b8a7c5e3f2d1c0b9a8f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6"

SPEC_JSON_EXAMPLE: dict[str, Any] = {
    "name": "tiny",
    "instance": {"kind": "bijection", "entities": 64, "relations": 2, "seed": 0},
    "claims": [
        {
            "id": "exact",
            "check": "construction",
            "construction": {
                "name": "geometric",
                "codebook": "rademacher",
                "code_dim": "auto",
                "margin": 0.5,
            },
            "expect": {"accuracy": 1.0, "margin": ">= 0.5"},
        }
    ],
}


class Progress(BaseModel):
    """How far a job is: overall fraction, and the claim (sweep point) being checked."""

    fraction: float = Field(ge=0, le=1, description="overall, over every claim point")
    key: str = Field(description="the claim point running now, e.g. exact[N=1024]")
    message: str


class Links(BaseModel):
    """Where to find the job, its event stream and its report page."""

    url: str
    events: str
    report: str


class VerificationSummary(BaseModel):
    """A job without its report (list entries)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": _ID,
                    "status": "running",
                    "spec_name": "tiny",
                    "spec_hash": _HASH,
                    "verifier_version": "0.1.0",
                    "created_at": "2025-01-01T00:00:00.000+00:00",
                    "started_at": "2025-01-01T00:00:00.100+00:00",
                    "finished_at": None,
                    "attempts": 1,
                    "reused": False,
                    "cancel_requested": False,
                    "message": "",
                    "progress": {"fraction": 0.4, "key": "exact", "message": "2048/4096 facts"},
                    "links": {
                        "url": f"/v1/verifications/{_ID}",
                        "events": f"/v1/verifications/{_ID}/events",
                        "report": f"/v1/verifications/{_ID}/report",
                    },
                }
            ]
        }
    )

    id: str = Field(description="32 lowercase hex digits")
    status: JobStatus
    spec_name: str
    spec_hash: str = Field(description="sha256 of the validated spec (canonical JSON)")
    verifier_version: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempts: int = Field(description="runs started (a crash can re-queue a running job)")
    reused: bool = Field(description="answered from a stored report of the same spec and version")
    cancel_requested: bool
    message: str = Field(description="why it ended: error, timeout, interruption, cancellation")
    progress: Progress
    links: Links

    @classmethod
    def from_job(cls, job: Job, **extra: Any) -> Any:
        """The response model of a stored job."""
        base = f"/v1/verifications/{job.id}"
        return cls(
            **{name: getattr(job, name) for name in _COPIED},
            progress=Progress(
                fraction=job.progress, key=job.progress_key, message=job.progress_message
            ),
            links=Links(url=base, events=f"{base}/events", report=f"{base}/report"),
            **extra,
        )


# the summary's fields that are a Job's under the same name (progress and links are built)
_COPIED = tuple(
    name for name in VerificationSummary.model_fields if name not in ("progress", "links")
)


class Verification(VerificationSummary):
    """A job with its report once it has one."""

    report: Report | None = Field(None, description="present once the job has finished a run")

    @classmethod
    def from_job(cls, job: Job, **extra: Any) -> Verification:
        """The response model of a stored job, with its report."""
        report = Report.model_validate(job.report) if job.report is not None else None
        result: Verification = super().from_job(job, report=report, **extra)
        return result


class VerificationPage(BaseModel):
    """One page of jobs, newest first."""

    items: list[VerificationSummary]
    total: int = Field(description="jobs matching the filter, over all pages")
    next: str | None = Field(description="URL of the next page, or null on the last one")


class ErrorOut(BaseModel):
    """Every error answer: a code word and a message saying what was expected and what came."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "limit_exceeded",
                    "message": "claim 'exact': N is 2,000,000, over the limit max_entities = "
                    "1,000,000 (set VERIFIER_MAX_ENTITIES to change it)",
                    "limit": "max_entities",
                    "line": None,
                    "key": None,
                },
                {
                    "error": "spec_error",
                    "message": "<request>:5: claims.0.chek: unknown key; check its spelling "
                    "against `verifier schema`",
                    "limit": None,
                    "line": 5,
                    "key": "claims.0.chek",
                },
            ]
        }
    )

    error: str = Field(description="spec_error, limit_exceeded, queue_full, not_found, ...")
    message: str
    line: int | None = Field(None, description="spec line, for spec errors")
    key: str | None = Field(None, description="dotted spec key, for spec errors")
    limit: str | None = Field(None, description="the limit's name, for limit errors")


class ClaimEstimate(BaseModel):
    """One claim's estimated work, before anything runs (verifier/engine/cost.py)."""

    claim: str
    flops: float = Field(
        description="floating-point operations over its points and replicates, at most (every "
        "training step, every fact through the full logits): what max_job_flops judges"
    )
    memory_bytes: float = Field(description="peak memory of its largest point")
    expected_flops: float = Field(
        description="the likely work: early stopping, shared trainings, certified recall"
    )


class DryRun(BaseModel):
    """A spec validated and preflighted, with its cost estimate; nothing was queued."""

    dry_run: Literal[True] = True
    spec_name: str
    spec_hash: str
    claims: list[ClaimEstimate]


class Health(BaseModel):
    """Liveness and queue state."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "verifier_version": "0.1.0",
                    "workers": 2,
                    "workers_alive": 2,
                    "jobs": {"queued": 0, "running": 1, "passed": 7},
                }
            ]
        }
    )

    status: Literal["ok", "degraded"] = Field(
        description="degraded: no worker alive (of some configured), or the store cannot write"
    )
    verifier_version: str
    workers: int = Field(description="configured worker processes")
    workers_alive: int
    jobs: dict[str, int] = Field(description="job count per status (empty if unreadable)")
    reasons: list[str] = Field(default_factory=list, description="why it is degraded")
    validators: int = Field(0, description="configured validator processes")
    validators_ready: int = Field(
        0, description="validator processes ready; a POST before the first waits for it"
    )
