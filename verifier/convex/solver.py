"""Solver choice and status discipline for every convex program (docs/theory.md section 6).

One backend, :func:`first_optimal`, serves P1, P2 and P3: the solvers of
:class:`SolverSettings` are tried in order (the fallback runs only when the first one fails),
and the first answer with status ``optimal`` is returned. Any other outcome
(``optimal_inaccurate``, ``user_limit`` after a time-out, ``infeasible`` for a program that is
feasible by construction, a solver exception) is recorded as a
:class:`~verifier.errors.SolverFailure` in the solver's own words, and when every solver has
failed :class:`~verifier.errors.SolverError` carries the list. An ``optimal`` status is never a
verdict by itself: each program re-checks the primal and dual points it gets in float64.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import cvxpy as cp

from verifier.convex.highs_banner import silence_banner
from verifier.errors import SolverError, SolverFailure

SolverName = Literal["highs", "clarabel"]
SOLVERS: dict[str, str] = {"highs": "HIGHS", "clarabel": "CLARABEL"}  # ours -> cvxpy's
# what a solver may raise instead of returning a status (highspy raises RuntimeError)
SOLVER_EXCEPTIONS = (cp.error.SolverError, RuntimeError, ValueError, ArithmeticError)

T = TypeVar("T")


class NotOptimal(Exception):
    """A solver ended with a status other than ``optimal``; ``reason`` says which, as it said."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


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
        raise NotOptimal(f"status {problem.status}{detail}, time limit {time_limit_s:g} s")


def solve(problem: cp.Problem, settings: SolverSettings, what: str) -> str:
    """Solve a cvxpy ``problem`` (DPP problems re-use their canonicalisation) to ``optimal``
    with the first solver that manages it; the name of that solver.

    Raises:
        SolverError: every solver failed.
    """

    def attempt(name: str) -> None:
        solve_cvxpy(problem, name, settings.time_limit_s)

    return first_optimal(attempt, settings, what)[1]
