"""The one working-set loop of every convex program with many rows (docs/theory.md section 6).

A program's rows ``G x <= h`` are too many to hand the solver at once. :class:`WorkingSet`
holds the rows that go to the solver and the one rule for growing them: after each solve the
caller evaluates *every* row in float64 at the solver's point (repaired into the box), and
:meth:`WorkingSet.update` adds the most violated rows not yet in the set, until no row is
violated beyond ``tol``, no violated row is new (the solver's own rows are violated: the point
is inaccurate, ``converged`` stays False), the caller's sandwich has decided, or ``max_rounds``
solves have been made. :func:`grow` drives one program; :class:`WorkingSetLP` drives batches.

``WorkingSetLP`` solves ``max c^T x  s.t.  G x <= h,  lo <= x <= hi``: the cvxpy problem of
each padded working-set size is built once with ``Parameter`` s (DPP) and re-solved, so programs
of the same shape (P1's targets) share one canonicalisation.

Certificates do not trust the solver: for any ``y >= 0`` on the working rows, weak duality gives
``max <= h_S^T y + sum_i max(r_i lo_i, r_i hi_i)`` with ``r = c - G_S^T y``, evaluated here in
float64; the caller turns the solver's primal point into a lower bound by its own substitution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import cvxpy as cp
import numpy as np

from verifier.convex.solver import SolverSettings, solve

MIN_ROWS = 32  # smallest padded working set

T = TypeVar("T")


@dataclass
class WorkingSet:
    """The rows of one program handed to the solver, and the rule that grows them.

    Attributes:
        rows: working row indices ``(k,)``, in the order they joined (the solver sees this
            order).
        add: violated rows added per round; with ``group`` set, per group.
        max_rounds: solves at most.
        tol: a row with slack below ``-tol`` is violated.
        group: rows ``g * group .. (g + 1) * group - 1`` form group g, and each group adds its
            own ``add`` worst rows (P3: one group per fact); None: ``add`` worst overall.
        rounds: solves made so far.
        converged: at the last update no row was violated.
    """

    rows: np.ndarray
    add: int
    max_rounds: int
    tol: float
    group: int | None = None
    rounds: int = 0
    converged: bool = field(default=False)

    @classmethod
    def start(
        cls, initial: np.ndarray, add: int, max_rounds: int, tol: float, group: int | None = None
    ) -> WorkingSet:
        """The first working set: ``initial``'s distinct rows, sorted."""
        return cls(np.unique(np.asarray(initial, dtype=np.int64)), add, max_rounds, tol, group)

    def update(self, slack: np.ndarray, decided: bool = False) -> bool:
        """Count a solve whose point gives ``slack = h - G x`` ``(n_rows,)`` over *every* row
        (float64, at the point repaired into the box); True when the loop stops, else the
        worst violated rows not yet in the set join it.

        ``decided``: the caller's certificate settles the question already (P3's sandwich).
        """
        self.rounds += 1
        violated = np.flatnonzero(slack < -self.tol)
        fresh = violated[~np.isin(violated, self.rows)]
        self.converged = violated.size == 0
        if decided or self.converged or fresh.size == 0 or self.rounds >= self.max_rounds:
            return True
        self.rows = np.concatenate([self.rows, self._worst(slack, fresh)])
        return False

    def _worst(self, slack: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        """The ``add`` most violated of ``fresh`` (per group when ``group`` is set)."""
        if self.group is None:
            return fresh[np.argsort(slack[fresh])[: self.add]]
        is_fresh = np.zeros(slack.shape[0], dtype=bool)
        is_fresh[fresh] = True
        table = np.where(is_fresh, slack, np.inf).reshape(-1, self.group)
        order = np.argsort(table, axis=1)[:, : self.add]  # (groups, add)
        take = np.take_along_axis(is_fresh.reshape(-1, self.group), order, axis=1)
        return np.asarray(np.nonzero(take)[0] * self.group + order[take], dtype=np.int64)


def grow(
    ws: WorkingSet,
    solve: Callable[[np.ndarray], T],
    slack: Callable[[T], np.ndarray],
    decided: Callable[[T], bool] | None = None,
) -> T:
    """The working-set loop of one program: ``solve(ws.rows)``, then ``ws.update`` with the
    float64 ``slack`` of every row at the answer, until it stops; the last answer.

    Args:
        solve: solves the program restricted to the given rows (raises
            :class:`~verifier.errors.SolverError` when no solver answers).
        slack: ``h - G x`` of every row at the answer's point, repaired into the box.
        decided: whether the answer already settles the caller's question.
    """
    while True:
        answer = solve(ws.rows)
        if ws.update(slack(answer), decided is not None and decided(answer)):
            return answer


class RowOracle(Protocol):
    """The rows ``G x <= h`` of a program, possibly never materialised in full."""

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        ...

    def slack(self, x: np.ndarray) -> np.ndarray:
        """``h - G x`` for every row, ``(n_rows,)``; negative entries are violations."""
        ...

    def rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(G[idx] (k, n), h[idx] (k,))``."""
        ...


@dataclass(frozen=True)
class WorkingSetResult:
    """The last round of a working-set solve.

    Attributes:
        x: the solver's primal point, unrepaired, ``(n,)``.
        rows: working row indices ``(k,)``; ``y`` are their duals.
        y: dual point on the working rows, clipped to ``>= 0``, ``(k,)``.
        upper: the float64 weak-duality bound from ``y`` (valid for the full program).
        solver_value: the objective the solver reported.
        rounds: solves made.
        solver: the solver that answered the last round.
        converged: no row of the full program is violated by ``x`` beyond ``tol``.
        min_slack: ``min(h - G x)`` over every row (negative: a violation).
    """

    x: np.ndarray
    rows: np.ndarray
    y: np.ndarray
    upper: float
    solver_value: float
    rounds: int
    solver: str
    converged: bool
    min_slack: float


def dual_bound(
    c: np.ndarray, G_S: np.ndarray, h_S: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> float:
    """Weak duality in float64: ``h_S^T y + sum_i max(r_i lo_i, r_i hi_i)``, ``r = c - G_S^T y``.

    Valid for every ``y >= 0`` (negative entries are clipped first); ``inf`` when a coordinate
    with an infinite bound has ``r_i != 0`` in that direction.
    """
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    r = c - G_S.T @ y
    with np.errstate(invalid="ignore"):
        box = np.maximum(np.where(r == 0, 0.0, r * lo), np.where(r == 0, 0.0, r * hi))
    return float(h_S @ y + box.sum())


@dataclass(frozen=True)
class Program:
    """One program of a batch: its rows, its box and its first working set."""

    oracle: RowOracle
    lo: np.ndarray
    hi: np.ndarray
    initial: np.ndarray


@dataclass
class _State:
    program: Program
    work: WorkingSet
    result: WorkingSetResult | None = None


_Block = tuple[cp.Parameter, cp.Parameter, cp.Parameter, cp.Parameter, cp.Variable, cp.Constraint]


class WorkingSetLP:
    """``max c^T x  s.t.  G x <= h,  lo <= x <= hi`` for many ``(G, h, lo, hi)`` of one shape.

    Programs are solved in batches of up to ``batch`` independent blocks per cvxpy problem
    (the objective is the sum of the blocks' objectives, so each block's optimum is its own
    program's), which spreads cvxpy's per-solve overhead over the batch.

    Args:
        c: objective ``(n,)``, the same for every program solved by this object.
        settings: solver order and time limit.
        what: label for error messages.
        batch: programs per solve.
    """

    def __init__(self, c: np.ndarray, settings: SolverSettings, what: str, batch: int = 1) -> None:
        self.c = np.asarray(c, dtype=np.float64)
        self.n = int(self.c.shape[0])
        self.settings = settings
        self.what = what
        self.batch = max(1, batch)
        self._cache: dict[tuple[int, int], tuple[cp.Problem, list[_Block]]] = {}
        self.solves = 0
        self.solvers: set[str] = set()

    def _problem(self, blocks: int, k: int) -> tuple[cp.Problem, list[_Block]]:
        if (blocks, k) not in self._cache:
            parts: list[_Block] = []
            constraints: list[cp.Constraint] = []
            objective: Any = 0
            for _ in range(blocks):
                G, h = cp.Parameter((k, self.n)), cp.Parameter(k)
                lo, hi = cp.Parameter(self.n), cp.Parameter(self.n)
                x = cp.Variable(self.n)
                rows = G @ x <= h
                constraints += [rows, x >= lo, x <= hi]
                objective = objective + self.c @ x
                parts.append((G, h, lo, hi, x, rows))
            self._cache[(blocks, k)] = (cp.Problem(cp.Maximize(objective), constraints), parts)
        return self._cache[(blocks, k)]

    def solve(
        self, program: Program, add: int, max_rounds: int = 20, tol: float = 1e-9
    ) -> WorkingSetResult:
        """One program; see :meth:`solve_many`."""
        return self.solve_many([program], add, max_rounds, tol)[0]

    def solve_many(
        self,
        programs: list[Program],
        add: int,
        max_rounds: int = 20,
        tol: float = 1e-9,
    ) -> list[WorkingSetResult]:
        """Solve each program over a working set grown by its ``add`` worst violations.

        A program stops when no row is violated by more than ``tol``, when no violated row is
        new, or after ``max_rounds`` solves; its bounds are valid in every case.

        Raises:
            SolverError: a solve did not end ``optimal``.
        """
        states = []
        for p in programs:
            first = p.initial if len(p.initial) else np.zeros(1, dtype=np.int64)  # row 0 at least
            states.append(_State(p, WorkingSet.start(first, add, max_rounds, tol)))
        pending = list(states)
        while pending:
            chunk, pending = pending[: self.batch], pending[self.batch :]
            self._round(chunk)
            pending = [s for s in chunk if s.result is None] + pending
        return [s.result for s in states if s.result is not None]

    def _round(self, chunk: list[_State]) -> None:
        k = max(MIN_ROWS, 1 << int(np.ceil(np.log2(max(len(s.work.rows) for s in chunk)))))
        blocks = 1 << int(np.ceil(np.log2(len(chunk))))
        problem, parts = self._problem(blocks, k)
        padded = []
        for i in range(blocks):
            s = chunk[min(i, len(chunk) - 1)]  # extra blocks repeat the last program
            G_S, h_S = s.program.oracle.rows(s.work.rows)
            pad = k - len(s.work.rows)
            G_pad = np.vstack([G_S, np.repeat(G_S[:1], pad, axis=0)]) if pad else G_S
            h_pad = np.concatenate([h_S, np.repeat(h_S[:1], pad)]) if pad else h_S
            G_p, h_p, lo_p, hi_p, _, _ = parts[i]
            G_p.value, h_p.value = G_pad, h_pad
            lo_p.value, hi_p.value = s.program.lo, s.program.hi
            padded.append((G_pad, h_pad))
        solver = solve(problem, self.settings, self.what)
        self.solves += 1
        self.solvers.add(solver)
        for i, s in enumerate(chunk):
            _, _, _, _, x, rows = parts[i]
            G_pad, h_pad = padded[i]
            lo, hi = s.program.lo, s.program.hi
            x_val = np.asarray(x.value, dtype=np.float64)
            y_pad = np.maximum(np.asarray(rows.dual_value, dtype=np.float64), 0.0)
            slack = s.program.oracle.slack(np.clip(x_val, lo, hi))
            min_slack = float(slack.min()) if slack.size else 0.0
            work = s.work.rows
            if s.work.update(slack):
                upper = dual_bound(self.c, G_pad, h_pad, y_pad, lo, hi)
                y = y_pad[: len(work)].copy()
                y[0] += y_pad[len(work) :].sum()  # padded rows duplicate row 0
                s.result = WorkingSetResult(
                    x=x_val,
                    rows=work,
                    y=y,
                    upper=upper,
                    solver_value=float(self.c @ x_val),
                    rounds=s.work.rounds,
                    solver=solver,
                    converged=s.work.converged,
                    min_slack=min_slack,
                )
