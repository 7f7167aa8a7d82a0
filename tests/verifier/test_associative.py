"""P3 (the associative baseline) against independent solves, brute force and forced failures."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from verifier.convex.associative import (
    _LP,
    _equalities,
    _margin_rows,
    associative_width,
    dual_upper,
    features,
    neighbours,
)
from verifier.convex.min_dimension import min_width
from verifier.convex.solver import SolverSettings
from verifier.engine.runner import SpecRunner
from verifier.errors import LimitExceeded, SolverError
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits
from verifier.spec import load_spec_text


def dense_gamma(facts: BijectionFacts, d: int, w: int, seed: int, box: float = 1.0) -> float:
    """Independent P3 optimum: scipy HiGHS on the dense program over (vec W_out, gamma) with
    every margin row (no z variables, no working set)."""
    _, feats = features(facts, d, w, seed)
    rows, rhs = [], []
    for f, j in itertools.product(range(facts.n_facts), range(facts.n_attributes)):
        if j == feats.y[f]:
            continue
        du = feats.W_U[:, feats.y[f]] - feats.W_U[:, j]
        rows.append(np.r_[-np.outer(feats.Phi[f], du).ravel(), 1.0])
        rhs.append(feats.X[f] @ du)
    res = linprog(
        np.r_[np.zeros(w * d), -1.0],
        A_ub=np.array(rows),
        b_ub=np.array(rhs),
        bounds=[(-box, box)] * (w * d) + [(None, None)],
        method="highs",
    )
    assert res.status == 0
    return float(-res.fun)


@pytest.mark.parametrize(("n", "r", "d", "w"), [(8, 1, 4, 6), (8, 1, 4, 12), (6, 2, 3, 9)])
def test_sandwich_contains_independent_optimum(n: int, r: int, d: int, w: int) -> None:
    facts = BijectionFacts(n, r, seed=1)
    res = associative_width(facts, d, w, seed=1)
    gamma = dense_gamma(facts, d, w, seed=1)
    assert res.lower <= gamma + 1e-9 and gamma <= res.upper + 1e-12
    assert res.upper - res.lower < 1e-6  # solved to convergence: the sandwich is closed
    assert res.max_violation < 1e-6 and res.rows_used < n * r * (n - 1)


def test_brute_force_on_a_two_parameter_program() -> None:
    """w = 1, d = 2: W_out has two numbers; a grid over the box brackets the optimum."""
    facts = BijectionFacts(3, 1, seed=4)
    res = associative_width(facts, 2, 1, seed=4)
    _, feats = features(facts, 2, 1, seed=4)
    grid = np.linspace(-1.0, 1.0, 801)
    W = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)  # (G, 2)
    logits = (feats.X[None] + feats.Phi[None, :, :1] * W[:, None, :]) @ feats.W_U  # (G, F, n)
    rows = np.arange(facts.n_facts)
    gap = logits[:, rows, feats.y][:, :, None] - logits
    gap[:, rows, feats.y] = np.inf
    best = float(gap.min(axis=(1, 2)).max())
    step_bound = 2.0 / 800 * float(np.abs(feats.Phi).sum(axis=1).max()) * 4.0  # Lipschitz
    assert best <= res.upper + 1e-12  # no grid point beats the dual certificate
    assert res.lower >= best - 1e-9  # and the LP's W_out is at least as good as the grid
    assert res.upper - best <= step_bound


def test_dual_bound_holds_for_any_multipliers() -> None:
    """Weak duality as implemented: random ``y >= 0`` and ``mu`` never bound below the optimum."""
    facts = BijectionFacts(8, 1, seed=2)
    d, w = 4, 7
    _, feats = features(facts, d, w, seed=2)
    gamma = dense_gamma(facts, d, w, seed=2)
    F = facts.n_facts
    n_var = w * d + F * d + 1
    f, j = np.nonzero(~np.eye(8, dtype=bool)[feats.y])
    A, b = _margin_rows(feats, f, j, n_var)
    reach = np.abs(feats.Phi).sum(axis=1)
    lo = np.r_[np.full(w * d, -1.0), np.repeat(-reach, d), -50.0]
    hi = np.r_[np.full(w * d, 1.0), np.repeat(reach, d), 50.0]
    lp = _LP(A, b, _equalities(feats.Phi, d), lo, hi)
    g = np.random.default_rng(0)
    for _ in range(50):
        y = g.exponential(size=len(b)) * g.choice([0.0, 1.0], size=len(b))
        y /= y.sum()
        mu = g.standard_normal(F * d) * g.choice([0.0, 0.1, 1.0])
        assert dual_upper(lp, y, mu) >= gamma - 1e-12
    # a feasible point: W_out = 0, z = 0, gamma = the margin at zero; E x = 0 exactly
    x0 = np.r_[np.zeros(n_var - 1), float(feats.margins(np.zeros((w, d))).min())]
    assert np.all(A @ x0 <= b + 1e-12) and not np.any(lp.E @ x0)


def test_min_width_matches_scan_of_independent_solves() -> None:
    """The search's answer is the first width whose independent optimum reaches min_margin,
    whatever the starting guess."""
    facts = BijectionFacts(8, 1, seed=3)
    found = [min_width(facts, 4, 3, 1e-6, 64, guess=g) for g in (None, 1, 40)]
    widths = {s.width for s in found}
    assert len(widths) == 1
    answer = widths.pop()
    assert answer is not None
    gammas = {w: dense_gamma(facts, 4, w, 3) for w in range(max(1, answer - 3), answer + 1)}
    assert gammas[answer] >= 1e-6 and gammas[answer - 1] < 1e-6
    for s in found:
        assert s.at is not None and s.at.status(1e-6) == "feasible" and s.at.accuracy == 1.0
        assert s.below is not None and s.below.status(1e-6) == "infeasible"
        assert s.below.upper >= gammas[answer - 1] - 1e-12


def test_features_are_nested_in_width() -> None:
    """Width w's features are the first w of any wider network's (up to the last bit of the
    matrix product, whose kernel depends on the width)."""
    facts = BijectionFacts(8, 2, seed=5)
    _, small = features(facts, 4, 70, seed=5)
    _, large = features(facts, 4, 130, seed=5)
    assert np.allclose(small.Phi, large.Phi[:, :70], rtol=1e-14, atol=1e-14)
    assert np.array_equal(small.W_U, large.W_U) and np.allclose((small.W_U**2).sum(0), 1.0)


def test_hull_start_reaches_the_same_optimum_as_all_rows() -> None:
    facts = BijectionFacts(16, 1, seed=6)
    adj = neighbours(features(facts, 4, 1, seed=6)[1].W_U)
    assert adj.any(axis=1).all() and (adj == adj.T).all()
    hull = associative_width(facts, 4, 16, seed=6)
    every = associative_width(facts, 4, 16, seed=6, nearest=15)
    assert every.rows_used == 16 * 15 and every.rounds == 1
    assert abs(hull.lower - every.lower) < 1e-7 and abs(hull.upper - every.upper) < 1e-7


def test_solver_time_out_is_an_error_not_a_pass() -> None:
    facts = BijectionFacts(8, 1, seed=1)
    settings = SolverSettings("highs", fallback=True, time_limit_s=1e-9)
    with pytest.raises(SolverError, match=r"P3 associative width 6: .*highs: status .*clarabel"):
        associative_width(facts, 4, 6, seed=1, settings=settings)


def test_clarabel_answers_the_same_program() -> None:
    facts = BijectionFacts(8, 1, seed=1)
    highs = associative_width(facts, 4, 8, seed=1)
    clarabel = associative_width(facts, 4, 8, seed=1, settings=SolverSettings("clarabel"))
    assert clarabel.solver == "clarabel"
    assert clarabel.lower <= highs.upper + 1e-9 and highs.lower <= clarabel.upper + 1e-9


SPEC = """
name: t
instance: {{kind: bijection, entities: {n}, relations: 1, seed: 3}}
claims:
  - id: c
    check: feasibility
    program: associative_width
    embed_dim: 4
    width: {width}
    expect: {{status: feasible}}
"""


def test_claim_with_timed_out_solver_is_error() -> None:
    runner = SpecRunner(
        load_spec_text(SPEC.format(n=8, width="auto")), Limits(solver_time_limit_s=1e-9)
    )
    result = runner.run().results[0]
    assert result.status == "error"
    assert "SolverError" in result.message and "highs: status" in result.message
    assert "clarabel: status" in result.message


def test_oversized_p3_program_is_refused_before_solving() -> None:
    # 64 facts x d 4 x (4000 + 1) equality + 64 x 63 x 5 margin entries = 1,044,416
    runner = SpecRunner(
        load_spec_text(SPEC.format(n=64, width=4000)), Limits(max_lp_entries=1_000_000)
    )
    with pytest.raises(
        LimitExceeded, match=r"P3 program \(nonzeros\) is 1,044,416, over the limit max_lp_entries"
    ):
        runner.preflight()
    auto = SpecRunner(
        load_spec_text(SPEC.format(n=64, width="auto")), Limits(max_lp_entries=10_000)
    )
    with pytest.raises(
        LimitExceeded, match=r"at width 1 \(nonzeros\) is .* over the limit max_lp_entries = 10,000"
    ):
        auto.preflight()
