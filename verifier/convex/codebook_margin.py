"""P1, codebook separability (docs/theory.md section 6), with a checked primal/dual sandwich.

For each target t: ``gamma_t = max gamma  s.t.  (a_t - a_j)^T v >= gamma  (j != t),
|v|_inf <= B``, whose dual is ``min_{lambda in simplex} B || sum_j lambda_j (a_t - a_j) ||_1``.
The constraints depend only on the target, so N programs cover all N*R facts; the margin of
the codebook is ``min_t gamma_t``. ``B`` defaults to ``max |a_{j,i}|``, the G1 selector's bound
(docs/theory.md section 3), so ``v = a_t`` is feasible and ``gamma_t >= 1 - max_j <a_t, a_j>``.

Algorithm: each target's LP is solved over a working set of its nearest competitors (largest
``<a_t, a_j>``), every constraint is then checked by one matrix product, and violated ones join
(:mod:`verifier.convex.working_set`). The bounds are recomputed here in float64: the lower
bound is ``min_j (a_t - a_j)^T v`` at the solver's ``v`` clipped into the box (or at the G1
point ``a_t B / max|a_t|``, whichever is larger); the upper bound is the dual objective at the
solver's multipliers projected onto the simplex. Both are valid whatever the solver's accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from verifier.convex.sandwich import Status, sandwich_status
from verifier.convex.solver import SolverSettings
from verifier.convex.working_set import Program, WorkingSetLP, WorkingSetResult

ProgressFn = Callable[[int, int], None]  # (targets done, total)
_GRAM_ROWS = 1024  # row block of the crowding order's Gram matrix


@dataclass(frozen=True)
class TargetCertificate:
    """The checked sandwich of one target: ``lower <= gamma_t <= upper``.

    Attributes:
        target: t.
        lower: ``min_j (a_t - a_j)^T v`` at the checked primal point ``v``.
        upper: ``B || sum_j lambda_j (a_t - a_j) ||_1`` at the checked dual point.
        v: the primal point ``(m,)``, inside the box.
        support: competitors j with ``lambda_j > 0`` (largest first, at most 8) and their weights.
        rows: constraints in the final working set (of ``n - 1``).
        rounds: solves for this target.
    """

    target: int
    lower: float
    upper: float
    v: np.ndarray
    support: list[tuple[int, float]]
    rows: int
    rounds: int

    def as_evidence(self) -> dict[str, object]:
        """JSON-ready summary (the point itself is left out)."""
        return {
            "target": self.target,
            "lower": self.lower,
            "upper": self.upper,
            "dual_support": [[j, w] for j, w in self.support],
            "rows_used": self.rows,
            "rounds": self.rounds,
        }


@dataclass(frozen=True)
class CodebookMarginResult:
    """P1 over a codebook: per-target sandwiches and the codebook's margin interval.

    Attributes:
        box: B.
        n_codes: n (targets in the full program).
        code_dim: m.
        certificates: one per solved target, in solve order.
        complete: every target was solved (False after an early stop on a certified failure).
        max_violation: the solver's worst raw infeasibility (box or constraint) before repair.
        solvers: solver names that answered.
        solves: LP solves made.
    """

    box: float
    n_codes: int
    code_dim: int
    certificates: list[TargetCertificate]
    complete: bool
    max_violation: float
    solvers: tuple[str, ...] = field(default=())
    solves: int = 0

    @property
    def margin_lower(self) -> float:
        """A certified lower bound on ``min_t gamma_t`` (0 bounds every unsolved target)."""
        lows = [c.lower for c in self.certificates]
        if not self.complete:
            lows.append(0.0)
        return float(min(lows))

    @property
    def margin_upper(self) -> float:
        """A certified upper bound on ``min_t gamma_t``."""
        return float(min(c.upper for c in self.certificates))

    def status(self, min_margin: float) -> Status:
        """feasible: margin >= min_margin is certified; infeasible: margin < min_margin is."""
        return sandwich_status(self.margin_lower, self.margin_upper, min_margin)

    def tightest(self) -> TargetCertificate:
        """The certificate of the smallest upper bound (the codebook's bottleneck)."""
        return min(self.certificates, key=lambda c: (c.upper, c.lower))

    def loosest_lower(self) -> TargetCertificate:
        """The certificate with the smallest lower bound."""
        return min(self.certificates, key=lambda c: (c.lower, c.upper))


def crowding_order(codes: np.ndarray) -> np.ndarray:
    """Targets sorted by ``max_{j != t} <a_t, a_j>``, most crowded first (blocked Gram)."""
    n = codes.shape[0]
    crowd = np.empty(n)
    for start in range(0, n, _GRAM_ROWS):
        gram = codes[start : start + _GRAM_ROWS] @ codes.T  # (block, n)
        rows = np.arange(gram.shape[0])
        gram[rows, rows + start] = -np.inf
        crowd[start : start + gram.shape[0]] = gram.max(axis=1)
    return np.argsort(-crowd, kind="stable")


@dataclass(frozen=True)
class TargetRows:
    """P1's rows for target t over ``x = (v, gamma)``: ``gamma - (a_t - a_j)^T v <= 0``.

    Row j is competitor j; row t (``a_t - a_t = 0``) is not a constraint and never violated.
    """

    diff: np.ndarray  # (n, m): a_t - a_j
    t: int

    @property
    def n_rows(self) -> int:
        return int(self.diff.shape[0])

    def slack(self, x: np.ndarray) -> np.ndarray:
        s = self.diff @ x[:-1] - x[-1]
        s[self.t] = np.inf
        return np.asarray(s)

    def rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        G = np.empty((len(idx), self.diff.shape[1] + 1))
        G[:, :-1] = -self.diff[idx]
        G[:, -1] = 1.0
        return G, np.zeros(len(idx))


class CodebookMarginLP:
    """P1's per-target program, built once (DPP) and re-solved for batches of targets.

    Args:
        codes: ``(n, m)`` float64 attribute codes.
        box: B; defaults to ``max |a_{j,i}|``.
        settings: solver order and time limit.
        initial_rows: nearest competitors in each target's first working set (default m + 1).
        add_rows: violated constraints added per round (default m + 1).
        max_rounds: solves per target before its (still valid) sandwich is returned.
        batch: targets per cvxpy solve.
    """

    def __init__(
        self,
        codes: np.ndarray,
        box: float | None = None,
        settings: SolverSettings | None = None,
        initial_rows: int | None = None,
        add_rows: int | None = None,
        max_rounds: int = 30,
        batch: int = 16,
    ) -> None:
        self.codes = np.ascontiguousarray(codes, dtype=np.float64)
        if self.codes.ndim != 2 or self.codes.shape[0] < 2 or self.codes.shape[1] < 1:
            raise ValueError(f"codes: expected shape (n >= 2, m >= 1), got {self.codes.shape}")
        self.n, self.m = self.codes.shape
        self.box = float(np.abs(self.codes).max()) if box is None else float(box)
        if not self.box > 0:
            raise ValueError(f"box: expected B > 0, got {self.box}")
        self.initial_rows = min(self.n - 1, initial_rows or self.m + 1)
        self.add_rows = add_rows or self.m + 1
        self.max_rounds = max_rounds
        objective = np.zeros(self.m + 1)
        objective[-1] = 1.0  # maximise gamma
        self.lp = WorkingSetLP(
            objective, settings or SolverSettings(), "P1 codebook margin", batch=batch
        )

    def program(self, t: int) -> Program:
        """Target t's rows, box and nearest competitors."""
        a_t, B = self.codes[t], self.box
        diff = a_t - self.codes  # (n, m)
        rows = TargetRows(diff, t)
        l1 = np.abs(diff).sum(axis=1)
        l1[t] = np.inf
        gamma_hi = B * float(l1.min())  # gamma <= (a_t - a_j)^T v <= B ||a_t - a_j||_1
        lo = np.concatenate([np.full(self.m, -B), [0.0]])  # gamma* >= 0: v = 0 is feasible
        hi = np.concatenate([np.full(self.m, B), [gamma_hi]])
        closeness = self.codes @ a_t
        closeness[t] = -np.inf
        k0 = self.initial_rows
        initial = np.argpartition(-closeness, k0 - 1)[:k0] if k0 < self.n - 1 else None
        if initial is None:
            initial = np.delete(np.arange(self.n), t)
        return Program(rows, lo, hi, initial)

    def targets(self, ts: Sequence[int]) -> list[tuple[TargetCertificate, float]]:
        """Solve targets ``ts``; each gives its certificate and the solver's raw violation."""
        programs = [self.program(int(t)) for t in ts]
        results = self.lp.solve_many(programs, self.add_rows, self.max_rounds)
        return [self._certify(int(t), p, r) for t, p, r in zip(ts, programs, results, strict=True)]

    def _certify(
        self, t: int, program: Program, res: WorkingSetResult
    ) -> tuple[TargetCertificate, float]:
        assert isinstance(program.oracle, TargetRows)
        diff, B = program.oracle.diff, self.box
        mask = np.ones(self.n, dtype=bool)
        mask[t] = False
        others = diff[mask]  # (n-1, m)
        v_raw, g_raw = res.x[:-1], res.x[-1]
        violation = max(
            float(np.maximum(np.abs(v_raw) - B, 0.0).max()),
            float(np.maximum(g_raw - others @ v_raw, 0.0).max()),
            max(-float(g_raw), 0.0),
        )
        # lower bound: min over every competitor at a point inside the box
        v = np.clip(v_raw, -B, B)
        lower = float((others @ v).min())
        a_t = self.codes[t]
        peak = float(np.abs(a_t).max())
        if peak > 0:  # the G1 point v = a_t B / max|a_t|
            v_g1 = a_t * (B / peak)
            lower_g1 = float((others @ v_g1).min())
            if lower_g1 > lower:
                v, lower = v_g1, lower_g1
        # upper bound: the dual objective at lambda projected onto the simplex, and the
        # working set's weak-duality bound; both valid, keep the smaller
        upper = res.upper
        lam = res.y
        if lam.sum() > 0:
            lam = lam / lam.sum()
            upper = min(upper, B * float(np.abs(lam @ diff[res.rows]).sum()))
        order = np.argsort(-lam)[:8]
        support = [(int(res.rows[i]), float(lam[i])) for i in order if lam[i] > 0]
        cert = TargetCertificate(
            target=t,
            lower=lower,
            upper=float(upper),
            v=v,
            support=support,
            rows=len(res.rows),
            rounds=res.rounds,
        )
        return cert, violation


def codebook_margin(
    codes: np.ndarray,
    box: float | None = None,
    settings: SolverSettings | None = None,
    *,
    stop_below: float | None = None,
    targets: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
    lp: CodebookMarginLP | None = None,
) -> CodebookMarginResult:
    """P1 over every target (or ``targets``), with the checked sandwich per target.

    Args:
        codes: ``(n, m)`` codes.
        box: B; defaults to ``max |a_{j,i}|``.
        settings: solver order and time limit.
        stop_below: stop at the first target whose certified upper bound is below this (the
            margin is then certified below it); targets go most crowded first.
        targets: solve only these (in this order); the result is then not complete.
        progress: called after each target.
        lp: a prepared :class:`CodebookMarginLP` (to share its cvxpy problems).

    Raises:
        SolverError: a solve did not end ``optimal``, with the solver's words.
    """
    lp = lp or CodebookMarginLP(codes, box, settings)
    if targets is not None:
        order = np.asarray(targets, dtype=np.int64)
    elif stop_below is not None:
        order = crowding_order(lp.codes)
    else:
        order = np.arange(lp.n)
    certs: list[TargetCertificate] = []
    worst_violation = 0.0
    stopped = False
    # with stop_below, the first (most crowded) targets go alone: one certified failure ends it
    step = 1 if stop_below is not None else lp.lp.batch
    done = 0
    while done < len(order) and not stopped:
        chunk = order[done : done + step]
        for cert, violation in lp.targets([int(t) for t in chunk]):
            certs.append(cert)
            worst_violation = max(worst_violation, violation)
            stopped = stopped or (stop_below is not None and cert.upper < stop_below)
        done += len(chunk)
        if stop_below is not None:
            step = min(2 * step, lp.lp.batch)
        if progress is not None:
            progress(done, len(order))
    complete = not stopped and targets is None
    return CodebookMarginResult(
        box=lp.box,
        n_codes=lp.n,
        code_dim=lp.m,
        certificates=certs,
        complete=complete,
        max_violation=worst_violation,
        solvers=tuple(sorted(lp.lp.solvers)),
        solves=lp.lp.solves,
    )
