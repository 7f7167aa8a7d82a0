"""Reports: one :class:`ClaimResult` per claim (per sweep point), rendered as a table or JSON.

A claim passes when every expectation holds, judged by the method it names. ``xfail`` claims
that fail are ``xfailed`` (expected); ones that pass are ``xpassed``, which counts as a failure,
since the spec's statement was wrong. A report passes when no result is failed, xpassed,
error or undecided.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["passed", "failed", "error", "undecided", "xfailed", "xpassed"]
OK_STATUSES: frozenset[str] = frozenset({"passed", "xfailed"})


class ExpectationResult(BaseModel):
    """One expectation against its measurement."""

    measure: str
    expected: str
    measured: Any = None
    ok: bool | None = None
    bound: float | None = None
    tol: float | None = None  # an equality's tolerance (absolute and relative)
    detail: str = ""


class ClaimResult(BaseModel):
    """The verdict on one claim (or one sweep point of it)."""

    key: str = Field(description="claim id, with the sweep point: exact-recall[N=1024]")
    claim_id: str
    check: str
    point: dict[str, Any] | None = None
    status: Status
    method: str | None = None
    measured: dict[str, Any] = Field(default_factory=dict)
    expectations: list[ExpectationResult] = Field(default_factory=list)
    evidence: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    xfail: str | None = None
    file: str = ""
    line: int | None = None
    duration_s: float = 0.0
    reused: bool = Field(False, description="taken from the verdict cache, not verified now")
    verified_at: str | None = Field(None, description="when a reused result was verified (UTC)")

    @property
    def ok(self) -> bool:
        """Passed, or failed as expected."""
        return self.status in OK_STATUSES

    def failure_text(self) -> str:
        """Expectation against measurement, one line each, for failing results."""
        lines = [f"{self.file}:{self.line}: claim {self.key!r} {self.status}"]
        if self.message:
            lines.append(f"  {self.message}")
        for e in self.expectations:
            if e.ok is not True:
                bound = f" (bound = {e.bound:.6g})" if e.bound is not None else ""
                lines.append(
                    f"  {e.measure}: expected {e.expected}{bound}, measured {fmt(e.measured)}"
                    + (f" - {e.detail}" if e.detail else "")
                )
        if "counterexample" in self.evidence:
            lines.append(f"  counterexample: {self.evidence['counterexample']}")
        return "\n".join(lines)


class Report(BaseModel):
    """Every claim result of one spec."""

    spec: str
    file: str = ""
    spec_hash: str
    verifier_version: str
    results: list[ClaimResult]
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        """Every result ok."""
        return all(r.ok for r in self.results)

    @property
    def status(self) -> Literal["passed", "failed", "error"]:
        """error if any result errored, failed if any other is not ok, else passed."""
        if any(r.status == "error" for r in self.results):
            return "error"
        return "passed" if self.passed else "failed"


_KEY_MEASURES = ("accuracy", "margin", "code_dim", "embedding_dim", "status", "params")


def fmt(value: Any) -> str:
    """Compact text for a measured value."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"[{fmt(value[0])}, {fmt(value[1])}]"
    return str(value)


def key_measures(result: ClaimResult, limit: int = 4) -> str:
    """The measures shown in the table: expected ones first, then the usual suspects."""
    names = [e.measure for e in result.expectations if e.measure in result.measured]
    names += [n for n in _KEY_MEASURES if n in result.measured and n not in names]
    return ", ".join(f"{n}={fmt(result.measured[n])}" for n in names[:limit])
