"""The one solver backend of the convex programs (verifier/convex/solver.py): solvers in order,
structured failures, no error text to parse; and the one working-set loop
(verifier/convex/working_set.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from verifier.constructions.codebooks import codebook
from verifier.convex.associative import associative_width
from verifier.convex.codebook_margin import codebook_margin
from verifier.convex.solver import (
    LinearProgram,
    LPSolution,
    NotOptimal,
    SolverSettings,
    WarmHighs,
    first_optimal,
    highs_linprog,
    solve_lp,
)
from verifier.convex.working_set import WorkingSet, dual_bound, grow
from verifier.errors import SolverError, SolverFailure
from verifier.facts.bijections import BijectionFacts


def test_first_optimal_falls_back_and_records_each_failure() -> None:
    tried: list[str] = []

    def attempt(name: str) -> float:
        tried.append(name)
        if name == "highs":
            raise NotOptimal("status infeasible")
        return 1.0

    assert first_optimal(attempt, SolverSettings(), "toy") == (1.0, "clarabel")
    assert tried == ["highs", "clarabel"]

    def broken(name: str) -> float:
        if name == "highs":
            raise ValueError("bad input")
        raise NotOptimal("status user_limit")

    with pytest.raises(SolverError) as err:
        first_optimal(broken, SolverSettings(), "toy")
    assert err.value.what == "toy"
    assert err.value.failures == (
        SolverFailure("highs", "ValueError: bad input"),
        SolverFailure("clarabel", "status user_limit"),
    )
    copy = pickle.loads(pickle.dumps(err.value))  # crosses worker processes intact
    assert copy.failures == err.value.failures and str(copy) == str(err.value)


def test_no_fallback_tries_one_solver() -> None:
    def fails(name: str) -> None:
        raise NotOptimal(f"status infeasible from {name}")

    with pytest.raises(SolverError) as err:
        first_optimal(fails, SolverSettings("clarabel", fallback=False), "x")
    assert err.value.failures == (SolverFailure("clarabel", "status infeasible from clarabel"),)


def test_every_program_reports_structured_failures() -> None:
    settings = SolverSettings("highs", fallback=True, time_limit_s=1e-9)
    with pytest.raises(SolverError) as p1:
        codebook_margin(codebook("rademacher", 32, 8, seed=0), settings=settings)
    with pytest.raises(SolverError) as p3:
        associative_width(BijectionFacts(8, 1, seed=1), 4, 6, seed=1, settings=settings)
    for err in (p1.value, p3.value):
        assert [f.solver for f in err.failures] == ["highs", "clarabel"]
        assert all(f.reason.startswith("status ") for f in err.failures)


# --- the backend's adapters on small programs, and the working-set loop -------------------


def polygon(k: int) -> tuple[np.ndarray, np.ndarray]:
    """``k`` tangents of the unit circle, ``G (k, 2) x <= 1``: a regular k-gon around it."""
    theta = 2 * np.pi * np.arange(k) / k
    return np.stack([np.cos(theta), np.sin(theta)], axis=1), np.ones(k)


def polygon_lp(rows: np.ndarray | None = None, k: int = 64) -> LinearProgram:
    """``max x_1 + x_2`` over the k-gon (or its ``rows``) in the box ``[-2, 2]^2``."""
    G, h = polygon(k)
    if rows is not None:
        G, h = G[rows], h[rows]
    return LinearProgram(np.ones(2), G, h, np.full(2, -2.0), np.full(2, 2.0))


def test_fallback_answers_after_a_real_highs_time_out() -> None:
    lp = polygon_lp()

    def timed_out_highs(program: LinearProgram, time_limit_s: float) -> LPSolution:
        return highs_linprog(program, 1e-9)  # HiGHS itself stops at its time limit

    sol, solver = solve_lp(lp, SolverSettings(), "toy", highs=timed_out_highs)
    assert solver == "clarabel"
    reference = highs_linprog(lp, 60.0)  # HiGHS with time to answer
    assert float(np.ones(2) @ sol.x) == pytest.approx(float(np.ones(2) @ reference.x), abs=1e-6)
    with pytest.raises(SolverError) as err:
        solve_lp(lp, SolverSettings(fallback=False), "toy", highs=timed_out_highs)
    assert [f.solver for f in err.value.failures] == ["highs"]
    assert "Time limit reached" in err.value.failures[0].reason  # HiGHS's words, not ours


def test_infeasible_program_is_reported_by_every_solver() -> None:
    # x_1 <= -1 with x_1 >= 0 in the box: no point at all
    lp = LinearProgram(np.ones(1), np.ones((1, 1)), np.array([-1.0]), np.zeros(1), np.ones(1))
    for highs in (None, WarmHighs()):
        with pytest.raises(SolverError) as err:
            solve_lp(lp, SolverSettings(), "empty box", highs=highs)
        assert err.value.what == "empty box"
        assert [f.solver for f in err.value.failures] == ["highs", "clarabel"]
        assert all(f.reason.startswith("status ") for f in err.value.failures)
        assert all("infeasible" in f.reason.lower() for f in err.value.failures)


def test_warm_highs_appends_rows_and_agrees_with_a_cold_solve() -> None:
    warm = WarmHighs()
    for k in (4, 9, 64):  # rows only grow: the first rows of each call are the previous ones
        rows = np.arange(k)
        lp = polygon_lp(rows)
        hot, cold = warm(lp, 60.0), highs_linprog(lp, 60.0)
        assert hot.x == pytest.approx(cold.x, abs=1e-9)
        assert hot.y == pytest.approx(cold.y, abs=1e-9)
        assert dual_bound(lp.c, np.asarray(lp.A), lp.b, hot.y, lp.lo, lp.hi) >= (
            float(lp.c @ hot.x) - 1e-9
        )
    with pytest.raises(ValueError, match="equality rows"):
        warm(LinearProgram(np.ones(1), np.ones((1, 1)), np.ones(1), -np.ones(1), np.ones(1),
                           E=np.ones((1, 1))), 1.0)  # fmt: skip


def solve_rows(rows: np.ndarray) -> np.ndarray:
    """The working set's LP, solved for real (HiGHS); its point."""
    return solve_lp(polygon_lp(rows), SolverSettings(), "polygon")[0].x


def full_slack(x: np.ndarray) -> np.ndarray:
    G, h = polygon(64)
    return np.asarray(h - G @ np.clip(x, -2.0, 2.0))


def test_working_set_loop_adds_violated_rows_until_none_is_left() -> None:
    ws = WorkingSet.start(np.array([16]), add=2, max_rounds=50, tol=1e-9)  # x_2 <= 1 only
    x = grow(ws, solve_rows, full_slack)
    assert ws.converged and 2 <= ws.rounds < 50 and len(ws.rows) < 64
    assert full_slack(x).min() >= -1e-9  # every row of the full program holds
    everything = solve_rows(np.arange(64))
    assert float(x.sum()) == pytest.approx(float(everything.sum()), abs=1e-7)
    assert 8 in ws.rows  # the tangent at 45 degrees, the optimum's row, had to join


def test_working_set_loop_stops_at_its_round_limit_unconverged() -> None:
    ws = WorkingSet.start(np.array([16]), add=1, max_rounds=1, tol=1e-9)
    x = grow(ws, solve_rows, full_slack)
    assert ws.rounds == 1 and not ws.converged and full_slack(x).min() < -1e-3
    assert list(ws.rows) == [16]  # nothing joins once the limit is reached


def test_float64_recheck_catches_a_point_that_violates_its_own_rows() -> None:
    """A solver's point that breaks a row it was given is never called converged: the
    row is not new, so the loop stops at once and says so."""
    ws = WorkingSet.start(np.arange(64), add=4, max_rounds=50, tol=1e-9)
    bad = np.array([1.0, 1.0])  # outside the polygon: violates the rows near 45 degrees

    grow(ws, lambda rows: bad, full_slack)
    assert ws.rounds == 1 and not ws.converged
    assert full_slack(bad)[8] < -0.4  # the violation the float64 re-check saw
    # a violation below the tolerance is not one
    tiny = WorkingSet.start(np.arange(64), add=4, max_rounds=50, tol=1e-9)
    on_edge = np.array([1.0, 0.0]) * (1 + 1e-12)
    grow(tiny, lambda rows: on_edge, full_slack)
    assert tiny.converged


def test_group_quota_adds_the_worst_rows_of_each_group() -> None:
    slack = np.array([-1.0, -3.0, 0.5, -2.0, 1.0, -0.5, -4.0, -5.0])  # two groups of 4
    ws = WorkingSet.start(np.array([7]), add=1, max_rounds=10, tol=1e-9, group=4)
    assert not ws.update(slack)
    # group 0: row 1 is its worst; group 1: row 7 (worst) is in the set, row 6 is next
    assert list(ws.rows) == [7, 1, 6]
    flat = WorkingSet.start(np.array([7]), add=2, max_rounds=10, tol=1e-9)
    assert not flat.update(slack) and list(flat.rows) == [7, 6, 1]
