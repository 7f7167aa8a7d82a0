"""Solver choice and status discipline for every convex program (docs/theory.md section 6).

A cvxpy status other than ``optimal`` (``optimal_inaccurate``, ``user_limit`` after a time-out,
``infeasible`` for a program that is feasible by construction, a solver exception) raises
:class:`~verifier.errors.SolverError` with the solver's own words. Solvers are tried in the
order of :class:`SolverSettings`; the fallback runs only when the first one fails.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import cvxpy as cp

from verifier.errors import SolverError

SolverName = Literal["highs", "clarabel"]
SOLVERS: dict[str, str] = {"highs": "HIGHS", "clarabel": "CLARABEL"}  # ours -> cvxpy's


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


def solve(problem: cp.Problem, settings: SolverSettings, what: str) -> str:
    """Solve ``problem`` to status ``optimal`` with the first solver that manages it.

    Args:
        problem: a cvxpy problem (DPP problems re-use their canonicalisation).
        settings: solver order and time limit.
        what: names the program in error messages (``P1 target 17``).

    Returns:
        The name of the solver that answered.

    Raises:
        SolverError: every solver failed; the message carries each solver's status or error.
    """
    failures: list[str] = []
    for name in settings.order():
        kwargs: dict[str, Any] = {"time_limit": settings.time_limit_s}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "may be inaccurate": we check
                problem.solve(solver=SOLVERS[name], **kwargs)  # type: ignore[no-untyped-call]
        except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        if problem.status == cp.OPTIMAL:
            return name
        detail = " (time limit reached)" if problem.status == cp.USER_LIMIT else ""
        failures.append(
            f"{name}: status {problem.status}{detail}, time limit {settings.time_limit_s:g} s"
        )
    raise SolverError(f"{what}: no solver returned an optimal answer: " + "; ".join(failures))
