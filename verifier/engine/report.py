"""Reports: one :class:`ClaimResult` per claim (per sweep point), rendered as a table or JSON.

A claim passes when every expectation holds, judged by the method it names. ``xfail`` claims
that fail are ``xfailed`` (expected); ones that pass are ``xpassed``, which counts as a failure,
since the spec's statement was wrong. A report passes when it has results and none is failed,
xpassed, error or undecided.

In a notebook a :class:`Report` renders as its verdict table and plots (``_repr_html_``), and
converts to one row per result (:meth:`Report.to_records`, :meth:`Report.to_pandas`) or one row
per training step of each replicate (:meth:`Report.history_records`). :class:`Provenance`
records what decided the numbers (versions, device, CPU, training settings, git state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import pandas

Status = Literal["passed", "failed", "error", "undecided", "xfailed", "xpassed"]
OK_STATUSES: frozenset[str] = frozenset({"passed", "xfailed"})
STATUS_MEANINGS: dict[str, str] = {  # every Status: the legends and docs/verdicts.md read it
    "passed": "every expectation held, by the method named",
    "failed": "an expectation did not hold (whatever else could not be measured)",
    "undecided": "nothing failed, but some expectation could not be decided or measured",
    "error": "the claim could not be run (a bad spec value, a limit, a solver or internal error)",
    "xfailed": "failed as its xfail: reason says it would (counts as ok)",
    "xpassed": "marked xfail but passed: the spec's statement is out of date (counts as a failure)",
}
REUSED_MEANING = "the verdict was taken from the cache, verified earlier (its date is shown)"


class ExpectationResult(BaseModel):
    """One expectation against its measurement."""

    measure: str
    expected: str
    measured: Any = None
    ok: bool | None = None
    bound: float | None = None
    tol: float | None = None  # an equality's tolerance (absolute and relative)
    detail: str = ""
    replicates: list[Any] | None = None  # each replicate's value (seeds: on a training claim)


class ReplicateHistory(BaseModel):
    """One training replicate's curve: ``(step, loss, accuracy)`` at a bounded resolution."""

    seed: int
    step: list[int] = Field(default_factory=list)
    loss: list[float] = Field(default_factory=list)  # mean cross-entropy over every example
    accuracy: list[float] = Field(default_factory=list)  # share of examples recalled exactly


class Provenance(BaseModel):
    """What decided the numbers: versions, the machine and the training settings."""

    verifier: str
    python: str
    torch: str | None = None
    numpy: str | None = None
    scipy: str | None = None
    cvxpy: str | None = None
    sympy: str | None = None
    device: str = "cpu"  # VERIFIER_DEVICE resolved: cpu or cuda (with the card's name)
    cpu: str = ""  # the CPU model
    train_threads: int = 1  # VERIFIER_TRAIN_THREADS
    train_order: int = 0  # VERIFIER_TRAIN_ORDER
    git_commit: str | None = None  # of the specs' working tree, where there is one
    git_dirty: bool | None = None
    host: str | None = None  # only when the user opts in
    platform: str = ""  # the operating system and C library, as platform.platform() says
    environment: dict[str, str] = Field(default_factory=dict)  # the VERIFIER_* settings given

    def rows(self) -> list[tuple[str, str]]:
        """``(name, value)`` per field as text, in field order (JUnit properties, tables)."""
        out = []
        for name, value in self.model_dump().items():
            if isinstance(value, dict):
                out += [(f"{name}.{k}", str(v)) for k, v in value.items()]
            elif value is not None:
                out.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
        return out


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
    history: list[ReplicateHistory] = Field(
        default_factory=list, description="training curves, one per replicate (training claims)"
    )

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
    provenance: Provenance | None = None

    @property
    def passed(self) -> bool:
        """Every result ok, and at least one result: a report that verifies nothing is no pass."""
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def status(self) -> Literal["passed", "failed", "error"]:
        """error if any result errored (or there is none), failed if any other is not ok."""
        if not self.results or any(r.status == "error" for r in self.results):
            return "error"
        return "passed" if self.passed else "failed"

    def to_records(self) -> list[dict[str, Any]]:
        """One flat row per result: spec, key, claim, check, method, status, ok, reused, when,
        duration, message, then ``point.<field>`` per sweep value and ``measured.<name>`` per
        measure (values as measured: numbers, words, or None)."""
        rows = []
        for r in self.results:
            row: dict[str, Any] = {
                "spec": self.spec,
                "key": r.key,
                "claim": r.claim_id,
                "check": r.check,
                "method": r.method,
                "status": r.status,
                "ok": r.ok,
                "reused": r.reused,
                "verified_at": r.verified_at,
                "duration_s": r.duration_s,
                "message": r.message,
            }
            row.update({f"point.{k}": v for k, v in (r.point or {}).items()})
            row.update({f"measured.{k}": v for k, v in r.measured.items()})
            rows.append(row)
        return rows

    def history_records(self) -> list[dict[str, Any]]:
        """One row per evaluated training step of each replicate: spec, key, claim, seed, step,
        loss, accuracy (float32 training accuracy), for plotting curves per seed."""
        return [
            {
                "spec": self.spec,
                "key": r.key,
                "claim": r.claim_id,
                "seed": h.seed,
                "step": step,
                "loss": loss,
                "accuracy": accuracy,
            }
            for r in self.results
            for h in r.history
            for step, loss, accuracy in zip(h.step, h.loss, h.accuracy, strict=True)
        ]

    def to_pandas(self) -> pandas.DataFrame:
        """:meth:`to_records` as a DataFrame (needs pandas: ``pip install 'verifier[pandas]'``).

        Raises:
            ImportError: pandas is not installed.
        """
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "Report.to_pandas: expected the pandas package (pip install 'verifier[pandas]'), "
                "got none"
            ) from None
        return pandas.DataFrame.from_records(self.to_records())

    def _repr_html_(self) -> str:
        """The verdict table and the plots, for Jupyter (:mod:`verifier.render.html`)."""
        from verifier.render.html import report_html  # matplotlib only when a notebook asks

        return report_html(self)


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
