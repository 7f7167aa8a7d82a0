"""The one solver backend of every convex program (docs/theory.md section 6).

Programs are stated once, as :class:`LinearProgram` (``max c^T x`` over rows, equalities and a
box), or as a parametrised cvxpy problem that is re-solved (P1's batches). Each solver is
reached through one adapter here, which returns the primal point and the multipliers in one
sign convention (:class:`LPSolution`) or raises :class:`NotOptimal` in the solver's own words:

- :func:`highs_linprog`: HiGHS through scipy, sparse rows (P3);
- :class:`WarmHighs`: HiGHS through ``highspy``, rows appended between solves and each solve
  warm-started from the last basis (P2's working sets);
- :func:`cvxpy_lp` and :func:`solve_cvxpy`: any solver through cvxpy (Clarabel, the fallback;
  HiGHS for P1's parametrised batches).

:func:`first_optimal` is the fallback and status discipline: the solvers of
:class:`SolverSettings` are tried in order (the fallback runs only when the first one fails),
and the first answer with status ``optimal`` is returned. Any other outcome
(``optimal_inaccurate``, ``user_limit`` after a time-out, ``infeasible`` for a program that is
feasible by construction, a solver exception) is recorded as a
:class:`~verifier.errors.SolverFailure` in the solver's own words, and when every solver has
failed :class:`~verifier.errors.SolverError` carries the list. An ``optimal`` status is never a
verdict by itself: each program re-checks the primal and dual points it gets in float64.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias, TypeVar

import cvxpy as cp
import highspy
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from verifier.convex.highs_banner import silence_banner
from verifier.errors import SolverError, SolverFailure

SolverName = Literal["highs", "clarabel"]
SOLVERS: dict[str, str] = {"highs": "HIGHS", "clarabel": "CLARABEL"}  # ours -> cvxpy's
# what a solver may raise instead of returning a status (highspy raises RuntimeError)
SOLVER_EXCEPTIONS = (cp.error.SolverError, RuntimeError, ValueError, ArithmeticError)

T = TypeVar("T")
Matrix: TypeAlias = np.ndarray | sp.spmatrix | sp.sparray


class NotOptimal(Exception):
    """A solver ended with a status other than ``optimal``; ``reason`` says which, as it said."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def not_optimal(status: str, time_limit_s: float) -> NotOptimal:
    """The one wording of a failed solve: ``status <solver's words>, time limit <t> s``."""
    return NotOptimal(f"status {status}, time limit {time_limit_s:g} s")


@dataclass(frozen=True)
class SolverSettings:
    """Which LP solver answers, and for how long.

    Attributes:
        solver: tried first.
        fallback: try the other solver when the first fails (status or exception).
        time_limit_s: wall-clock limit of one solve, passed to the solver.
    """

    solver: SolverName = "highs"
    fallback: bool = True
    time_limit_s: float = 60.0

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver: expected one of {', '.join(SOLVERS)}, got {self.solver!r}")
        if not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s: expected > 0, got {self.time_limit_s}")

    def order(self) -> tuple[str, ...]:
        """Our solver names, in the order they are tried."""
        rest = tuple(s for s in SOLVERS if s != self.solver) if self.fallback else ()
        return (self.solver, *rest)


def first_optimal(
    attempt: Callable[[str], T], settings: SolverSettings, what: str
) -> tuple[T, str]:
    """``attempt(name)`` for each solver of ``settings`` in turn, until one answers.

    Args:
        attempt: solves the program with the named solver and returns its answer, or raises
            :class:`NotOptimal` (or one of :data:`SOLVER_EXCEPTIONS`).
        settings: solver order.
        what: names the program in the error (``P1 target 17``).

    Returns:
        The first answer and the name of the solver that gave it.

    Raises:
        SolverError: every solver failed; ``failures`` holds each one's status or exception.
    """
    failures: list[SolverFailure] = []
    for name in settings.order():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "may be inaccurate": we check
                return attempt(name), name
        except NotOptimal as exc:
            failures.append(SolverFailure(name, exc.reason))
        except SOLVER_EXCEPTIONS as exc:
            failures.append(SolverFailure(name, f"{type(exc).__name__}: {exc}"))
    raise SolverError(what, failures)


@dataclass(frozen=True)
class LinearProgram:
    """``max c^T x  s.t.  A x <= b,  E x = e,  lo <= x <= hi`` in float64.

    Attributes:
        c: objective ``(n,)``.
        A: inequality rows ``(k, n)``, dense or scipy sparse.
        b: ``(k,)``.
        lo, hi: the box ``(n,)``; entries may be infinite.
        E: equality rows ``(q, n)`` or None.
        e: ``(q,)`` or None (zeros).
    """

    c: np.ndarray
    A: Matrix
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    E: Matrix | None = None
    e: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of variables."""
        return int(self.c.shape[0])

    def e_or_zeros(self) -> np.ndarray:
        """The equalities' right-hand side, ``(q,)``."""
        assert self.E is not None
        return np.zeros(self.E.shape[0]) if self.e is None else self.e


@dataclass(frozen=True)
class LPSolution:
    """A solver's answer, unchecked.

    Attributes:
        x: primal point ``(n,)``.
        y: multipliers of the rows ``A x <= b`` of ``max c^T x`` (``>= 0`` at an exact
            optimum), ``(k,)``.
        mu: multipliers of ``E x = e`` ``(q,)`` (empty without equalities); their sign
            convention differs between solvers, so a bound built from them tries both.
    """

    x: np.ndarray
    y: np.ndarray
    mu: np.ndarray


LPAdapter = Callable[[LinearProgram, float], LPSolution]  # (program, time limit in s)


def highs_linprog(lp: LinearProgram, time_limit_s: float, method: str = "highs") -> LPSolution:
    """HiGHS through :func:`scipy.optimize.linprog` (``method``: ``highs``, ``highs-ds`` or
    ``highs-ipm``), presolve on.

    Raises:
        NotOptimal: any status but optimal, with HiGHS's message.
    """
    res = linprog(
        0.0 - lp.c,  # minimise -c^T x (0.0 - keeps the zero costs +0.0)
        A_ub=lp.A,
        b_ub=lp.b,
        A_eq=lp.E,
        b_eq=None if lp.E is None else lp.e_or_zeros(),
        bounds=np.stack([lp.lo, lp.hi], axis=1),
        method=method,
        options={"time_limit": time_limit_s, "presolve": True},
    )
    if res.status != 0 or res.x is None:
        raise not_optimal(f"{res.status} ({res.message})", time_limit_s)
    # marginals are d(min -c^T x)/d(rhs): the multipliers of max c^T x are their negatives
    mu = -np.asarray(res.eqlin.marginals) if lp.E is not None else np.zeros(0)
    return LPSolution(np.asarray(res.x, dtype=np.float64), -np.asarray(res.ineqlin.marginals), mu)


def solve_cvxpy(problem: cp.Problem, name: str, time_limit_s: float) -> None:
    """Solve a cvxpy ``problem`` with solver ``name`` (ours) to status ``optimal``.

    Raises:
        NotOptimal: any other status, with the time limit named.
    """
    if name == "highs":
        silence_banner()
    problem.solve(solver=SOLVERS[name], time_limit=time_limit_s)  # type: ignore[no-untyped-call]
    if problem.status != cp.OPTIMAL:
        detail = " (time limit reached)" if problem.status == cp.USER_LIMIT else ""
        raise not_optimal(f"{problem.status}{detail}", time_limit_s)


def cvxpy_lp(lp: LinearProgram, time_limit_s: float, name: str = "clarabel") -> LPSolution:
    """``lp`` as a cvxpy problem solved by solver ``name`` (ours).

    Raises:
        NotOptimal: any status but optimal.
    """
    x = cp.Variable(lp.n)
    rows: cp.Constraint = cp.Constant(lp.A) @ x <= lp.b
    constraints = [rows]
    eqs: cp.Constraint | None = None
    if lp.E is not None:
        eqs = cp.Constant(lp.E) @ x == lp.e_or_zeros()
        constraints.append(eqs)
    problem = cp.Problem(cp.Maximize(lp.c @ x), [*constraints, x >= lp.lo, x <= lp.hi])
    solve_cvxpy(problem, name, time_limit_s)
    mu = np.zeros(0) if eqs is None else np.asarray(eqs.dual_value, dtype=np.float64)
    return LPSolution(
        np.asarray(x.value, dtype=np.float64),
        np.asarray(rows.dual_value, dtype=np.float64),
        mu,
    )


class WarmHighs:
    """HiGHS through ``highspy`` for a program whose rows only grow: each call appends the rows
    of ``lp.A`` it does not hold yet and warm-starts from the previous basis.

    ``c`` and the box are read on the first call (of a fresh model); ``lp.A`` must be dense and
    hold the rows of the previous calls first, unchanged; equalities are not supported. A
    failed solve (status or exception) drops the model, so the next call starts cold.
    """

    def __init__(self) -> None:
        self._model: highspy.Highs | None = None
        self._rows = 0

    def __call__(self, lp: LinearProgram, time_limit_s: float) -> LPSolution:
        """Solve ``lp``; raises :class:`NotOptimal` with HiGHS's status words."""
        if lp.E is not None:
            raise ValueError("WarmHighs: equality rows are not supported")
        try:
            return self._run(lp, time_limit_s)
        except (NotOptimal, *SOLVER_EXCEPTIONS):
            self._model = None  # a failed model is not warm-started again
            raise

    def _run(self, lp: LinearProgram, time_limit_s: float) -> LPSolution:
        if self._model is None:
            silence_banner()
            self._model = highspy.Highs()  # type: ignore[no-untyped-call]
            self._model.setOptionValue("output_flag", False)
            self._model.addVars(lp.n, lp.lo, lp.hi)
            cols = np.flatnonzero(lp.c)
            self._model.changeColsCost(
                len(cols), cols.astype(np.int32), 0.0 - lp.c[cols]
            )  # minimise -c^T x
            self._rows = 0
        hs = self._model
        A: np.ndarray = np.asarray(lp.A)
        new = A[self._rows :]
        if new.shape[0]:
            nz = new != 0
            starts = np.concatenate([[0], np.cumsum(nz.sum(axis=1))[:-1]]).astype(np.int32)
            cols = np.nonzero(nz)[1].astype(np.int32)
            hs.addRows(
                new.shape[0],
                np.full(new.shape[0], -np.inf),
                lp.b[self._rows :],
                int(nz.sum()),
                starts,
                cols,
                new[nz],
            )
            self._rows = A.shape[0]
        # HiGHS's clock runs over every run() of one model: the limit is set past its reading
        hs.setOptionValue("time_limit", hs.getRunTime() + float(time_limit_s))
        hs.run()
        status = hs.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise not_optimal(hs.modelStatusToString(status), time_limit_s)
        sol = hs.getSolution()
        y = -np.asarray(sol.row_dual, dtype=np.float64)  # min -c^T x: duals of <= rows are <= 0
        return LPSolution(np.asarray(sol.col_value, dtype=np.float64), y, np.zeros(0))


def solve_lp(
    lp: LinearProgram, settings: SolverSettings, what: str, highs: LPAdapter | None = None
) -> tuple[LPSolution, str]:
    """``lp`` solved to ``optimal`` by the first solver of ``settings`` that manages it.

    Args:
        highs: the HiGHS adapter (default :func:`highs_linprog`; a :class:`WarmHighs` to keep
            a basis between calls); Clarabel always runs through :func:`cvxpy_lp`.

    Returns:
        The answer (unchecked) and the name of the solver that gave it.

    Raises:
        SolverError: every solver failed.
    """
    adapters: dict[str, LPAdapter] = {
        "highs": highs or highs_linprog,
        "clarabel": functools.partial(cvxpy_lp, name="clarabel"),
    }
    return first_optimal(lambda name: adapters[name](lp, settings.time_limit_s), settings, what)


def solve(problem: cp.Problem, settings: SolverSettings, what: str) -> str:
    """Solve a cvxpy ``problem`` (DPP problems re-use their canonicalisation) to ``optimal``
    with the first solver that manages it; the name of that solver.

    Raises:
        SolverError: every solver failed.
    """

    def attempt(name: str) -> None:
        solve_cvxpy(problem, name, settings.time_limit_s)

    return first_optimal(attempt, settings, what)[1]
