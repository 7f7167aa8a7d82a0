"""The one solver backend of the convex programs (verifier/convex/solver.py): solvers in order,
structured failures, no error text to parse."""

from __future__ import annotations

import pickle

import pytest

from verifier.constructions.codebooks import codebook
from verifier.convex.associative import associative_width
from verifier.convex.codebook_margin import codebook_margin
from verifier.convex.solver import NotOptimal, SolverSettings, first_optimal
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
