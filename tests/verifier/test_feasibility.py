"""P1-P3 certificates against independent solves, brute force and forced solver failures."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import linprog

from verifier.constructions.codebooks import codebook
from verifier.constructions.geometric import build_geometric
from verifier.convex.codebook_margin import codebook_margin
from verifier.convex.reembed import reembed
from verifier.convex.solver import SolverSettings
from verifier.engine.runner import SpecRunner
from verifier.errors import LimitExceeded, SolverError
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits
from verifier.seeds import Stream, rng
from verifier.spec import load_spec_text


def linprog_margin(codes: np.ndarray, t: int, box: float) -> float:
    """Independent P1 solve of target t with scipy (variables v, gamma)."""
    n, m = codes.shape
    diff = np.delete(codes[t] - codes, t, axis=0)
    A_ub = np.hstack([-diff, np.ones((n - 1, 1))])
    res = linprog(
        np.r_[np.zeros(m), -1.0],
        A_ub=A_ub,
        b_ub=np.zeros(n - 1),
        bounds=[(-box, box)] * m + [(None, None)],
        method="highs",
    )
    assert res.status == 0
    return float(-res.fun)


@pytest.mark.parametrize("seed", range(4))
def test_p1_sandwich_contains_linprog(seed: int) -> None:
    g = np.random.default_rng(seed)
    n, m = int(g.integers(6, 40)), int(g.integers(2, 9))
    codes = g.standard_normal((n, m))
    res = codebook_margin(codes, box=0.7)
    exact = [linprog_margin(codes, t, 0.7) for t in range(n)]
    for cert in res.certificates:
        assert cert.lower - 1e-7 <= exact[cert.target] <= cert.upper + 1e-7
        assert cert.upper - cert.lower <= 1e-6  # the working set closed the gap
    assert res.margin_lower - 1e-7 <= min(exact) <= res.margin_upper + 1e-7


def vertex_enumeration_margin(codes: np.ndarray, t: int, box: float) -> float:
    """Brute force: the LP optimum is at a vertex; try every set of m+1 tight constraints."""
    m = codes.shape[1]
    diff = np.delete(codes[t] - codes, t, axis=0)
    # constraints a x <= b over x = (v, gamma)
    rows = [(np.r_[-d, 1.0], 0.0) for d in diff]
    for i in range(m):
        e = np.zeros(m + 1)
        e[i] = 1.0
        rows += [(e, box), (-e, box)]
    A = np.array([r for r, _ in rows])
    b = np.array([c for _, c in rows])
    best = -np.inf
    for idx in itertools.combinations(range(len(rows)), m + 1):
        sub = A[list(idx)]
        if abs(np.linalg.det(sub)) < 1e-12:
            continue
        x = np.linalg.solve(sub, b[list(idx)])
        if np.all(A @ x <= b + 1e-9):
            best = max(best, x[-1])
    return float(best)


def test_p1_matches_vertex_enumeration() -> None:
    codes = np.random.default_rng(3).standard_normal((6, 2))
    res = codebook_margin(codes, box=1.0)
    for cert in res.certificates:
        brute = vertex_enumeration_margin(codes, cert.target, 1.0)
        assert cert.lower - 1e-8 <= brute <= cert.upper + 1e-8


@pytest.mark.parametrize(("n", "m"), [(16, 3), (40, 5), (20, 6)])
def test_p1_infeasibility_matches_duplicates(n: int, m: int) -> None:
    """Rademacher codes are cube vertices: t is separable iff no other code equals it."""
    codes = codebook("rademacher", n, m, seed=n + m)
    res = codebook_margin(codes)
    for cert in res.certificates:
        duplicated = any(
            np.array_equal(codes[cert.target], codes[j]) for j in range(n) if j != cert.target
        )
        if duplicated:
            assert cert.upper < 1e-9  # the dual certificate proves margin 0
        else:
            assert cert.lower > 1e-6  # a checked primal point proves separation
    pigeonhole = n > 2**m
    assert (res.status(1e-6) == "infeasible") == (pigeonhole or res.margin_upper < 1e-9)


def test_p1_lower_bound_beats_g1_point() -> None:
    codes = codebook("rademacher", 64, 12, seed=1)
    res = codebook_margin(codes)
    gram = codes @ codes.T
    np.fill_diagonal(gram, -np.inf)
    assert res.margin_lower >= 1 - gram.max() - 1e-12


def test_solver_timeout_is_an_error_not_a_pass() -> None:
    codes = codebook("rademacher", 64, 16, seed=0)
    settings = SolverSettings("highs", fallback=True, time_limit_s=1e-9)
    with pytest.raises(SolverError, match=r"highs: status user_limit.*clarabel: status user_limit"):
        codebook_margin(codes, settings=settings)


def test_solver_exception_falls_back_then_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    codes = codebook("rademacher", 32, 8, seed=0)
    real = cp.Problem.solve
    calls: list[str] = []

    def broken(self: cp.Problem, *args: object, **kwargs: object) -> object:
        calls.append(str(kwargs.get("solver")))
        if kwargs.get("solver") == "HIGHS":
            raise cp.error.SolverError("simulated HiGHS crash")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", broken)
    ok = codebook_margin(codes, settings=SolverSettings("highs", fallback=True))
    assert ok.solvers == ("clarabel",) and "HIGHS" in calls
    with pytest.raises(SolverError, match="simulated HiGHS crash"):
        codebook_margin(codes, settings=SolverSettings("highs", fallback=False))


SPEC = """
name: t
instance: {{kind: bijection, entities: {n}, relations: 2, seed: 1}}
claims:
  - id: c
    check: feasibility
    program: codebook_margin
    construction: {{name: geometric, codebook: rademacher, code_dim: {m}}}
    expect: {{status: feasible, margin: ">= 0.1"}}
"""


def test_claim_with_timed_out_solver_is_error() -> None:
    spec = load_spec_text(SPEC.format(n=64, m=16))
    runner = SpecRunner(spec, Limits(solver_time_limit_s=1e-9))
    result = runner.run().results[0]
    assert result.status == "error"
    assert "SolverError" in result.message and "user_limit" in result.message


def test_claim_passes_and_reports_sandwich() -> None:
    result = SpecRunner(load_spec_text(SPEC.format(n=64, m=16))).run().results[0]
    assert result.status == "passed", result.message
    low, up = result.evidence["sandwich"]
    assert low <= up + 1e-9 and result.measured["margin"] == low


def test_infeasible_expectation_gets_a_clear_message() -> None:
    result = SpecRunner(load_spec_text(SPEC.format(n=64, m=4))).run().results[0]
    assert result.status == "failed"
    assert result.measured["status"] == "infeasible"
    assert "cannot be separated" in result.message and "dual certificate" in result.message


def test_oversized_program_is_refused_before_solving() -> None:
    spec = load_spec_text(SPEC.format(n=4096, m=64))
    runner = SpecRunner(spec, Limits(max_lp_entries=10_000))
    with pytest.raises(LimitExceeded, match="max_lp_entries = 10,000"):
        runner.preflight()


def test_bad_status_word_is_a_spec_error() -> None:
    from verifier.errors import SpecError

    with pytest.raises(SpecError, match="expected one of feasible, infeasible"):
        load_spec_text(SPEC.format(n=64, m=16).replace("status: feasible", "status: feasable"))


def test_reembed_new_bijections_confirmed_by_forward_pass() -> None:
    facts = BijectionFacts(24, 2, seed=2)
    codes = codebook("rademacher", 24, 16, seed=2)
    model, _ = build_geometric(facts, codes)
    new = facts.with_perms(np.stack([rng(2, Stream.TRANSFER, r).permutation(24) for r in range(2)]))
    before = model.W_E.detach().clone()
    res = reembed(model, new, model.W_E.detach().numpy()[:24].copy(), margin=0.05)
    assert res.found and res.accuracy == 1.0 and res.margin >= 0.05 - 1e-9
    assert res.embeddings is not None and res.embeddings.shape == (24, model.cfg.d_model)
    assert bool((before == model.W_E).all())  # the caller's model is untouched
    # the returned copy really carries the embeddings the forward pass confirmed
    assert np.allclose(res.model.W_E.detach().numpy()[:24], res.embeddings)


def test_reembed_rejects_bad_shapes() -> None:
    facts = BijectionFacts(8, 1, seed=0)
    model, _ = build_geometric(facts, codebook("rademacher", 8, 4, seed=0))
    with pytest.raises(ValueError, match=r"start: expected shape \(8, "):
        reembed(model, facts, np.zeros((8, 3)), margin=0.1)


def test_reembed_reports_not_found_when_codes_coincide() -> None:
    """m = 12: two attributes share a code, so their logits tie in every embedding."""
    facts = BijectionFacts(24, 2, seed=2)
    codes = codebook("rademacher", 24, 12, seed=2)
    assert len({tuple(c) for c in codes}) < 24
    model, _ = build_geometric(facts, codes)
    new = facts.with_perms(np.stack([rng(2, Stream.TRANSFER, r).permutation(24) for r in range(2)]))
    res = reembed(model, new, model.W_E.detach().numpy()[:24].copy(), margin=0.05, max_rounds=2)
    assert not res.found and res.embeddings is None and res.accuracy < 1.0
    assert all(s.region_upper <= 1e-9 for s in res.subjects if not s.found)
