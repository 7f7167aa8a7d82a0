"""P2 (re-embedding through a frozen network): the lazily generated region LP against an
independent dense solve, solver failures, and the minimal-width search with its neighbours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from verifier.constructions.codebooks import codebook
from verifier.constructions.geometric import build_geometric
from verifier.convex.min_dimension import min_reembed_dim
from verifier.convex.reembed import reembed, solve_region
from verifier.convex.solver import LinearProgram, LPSolution, NotOptimal, SolverSettings, WarmHighs
from verifier.engine.runner import SpecRunner
from verifier.errors import LimitExceeded, SolverError
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.seeds import Stream, rng
from verifier.spec import load_spec_text


def random_frozen(n: int, n_rel: int, seed: int) -> tuple[OneLayerTransformer, BijectionFacts]:
    """A dense random network whose attention does not depend on e_s (W_Q = W_K = 0), so the
    forward pass is exactly piecewise affine in e_s and its Jacobian is the region's map."""
    facts = BijectionFacts(n, n_rel, seed=seed)
    cfg = ModelConfig(
        n_vocab=facts.n_vocab,
        n_ctx=2,
        d_model=6,
        d_head=3,
        n_heads=2,
        d_mlp=10,
        n_out=facts.n_attributes,
    )
    model = OneLayerTransformer(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("W_E", "W_pos", "W_V", "W_O", "W_in", "b_in", "W_out", "b_out", "W_U"):
            p = getattr(model, name)
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) / 2)
    return model, facts


def dense_region_lp(
    model: OneLayerTransformer,
    facts: BijectionFacts,
    s: int,
    e0: np.ndarray,
    margin: float,
    box: float,
) -> float:
    """Independent solve: the region's affine maps from autograd Jacobians of the real forward
    pass at e0, every margin and sign row written out, scipy's linprog."""
    n, n_rel = facts.n_entities, facts.n_relations
    e = torch.from_numpy(e0).requires_grad_(True)

    def run(e_s: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = torch.tensor([[n + r, s]])
        h0 = model.embed(tokens).clone()
        h0[0, 1] = e_s + model.W_pos[1]
        h1 = h0[:, -1:] + model.attention(h0, last_only=True)
        pre = model.mlp_pre(h1)[0, 0]
        return ((h1 + model.mlp(h1)) @ model.W_U)[0, 0], pre

    A_ub, b_ub = [], []
    d = e0.shape[0]
    for r in range(n_rel):
        y = int(facts.answers(s, r))
        logits, pre = run(e, r)
        L = torch.autograd.functional.jacobian(lambda v, r=r: run(v, r)[0], e).numpy()
        P = torch.autograd.functional.jacobian(lambda v, r=r: run(v, r)[1], e).numpy()
        lv, pv = logits.detach().numpy() - L @ e0, pre.detach().numpy() - P @ e0
        assert np.abs(pre.detach().numpy()).min() > 1e-6  # e0 is inside one region
        for j in range(facts.n_attributes):
            if j != y:  # t - (L_y - L_j) e <= l_y - l_j
                A_ub.append(np.r_[-(L[y] - L[j]), 1.0])
                b_ub.append(lv[y] - lv[j])
        sign = np.where(pre.detach().numpy() > 0, -1.0, 1.0)
        for u in range(P.shape[0]):
            A_ub.append(np.r_[sign[u] * P[u], 0.0])
            b_ub.append(-sign[u] * pv[u])
    res = linprog(
        np.r_[np.zeros(d), -1.0],
        A_ub=np.array(A_ub),
        b_ub=np.array(b_ub),
        bounds=[(-box, box)] * d + [(None, margin)],
        method="highs",
    )
    assert res.status == 0
    return float(-res.fun)


@pytest.mark.parametrize("seed", range(3))
def test_region_lp_matches_an_independent_dense_solve(seed: int) -> None:
    model, facts = random_frozen(12, 2, seed)
    e0 = model.W_E.detach().numpy()[0].copy()
    box = 3.0
    reference = dense_region_lp(model, facts, 0, e0, margin=50.0, box=box)
    ours = solve_region(model, facts, 0, e0, margin=50.0, box=box)
    assert ours.violation <= 1e-7  # every row of the full program holds at the point
    assert ours.x[-1] == pytest.approx(reference, abs=1e-6)
    assert reference - 1e-9 <= ours.upper <= reference + 1e-6  # the checked dual bound
    assert ours.rows <= ours.n_rows


def test_region_lp_uses_a_working_set_on_g1() -> None:
    """At N = 256 only part of the R (N - 1 + d_mlp) rows reaches the solver."""
    facts = BijectionFacts(256, 2, seed=1)
    model, _ = build_geometric(facts, codebook("rademacher", 256, 12, seed=1))
    e0 = model.W_E.detach().numpy()[3].copy() + 0.01  # off the ReLU boundaries
    ours = solve_region(model, facts, 3, e0, margin=0.05, box=2.0)
    assert ours.violation <= 1e-7 and ours.rows < ours.n_rows / 2


def new_facts_of(facts: BijectionFacts, seed: int) -> BijectionFacts:
    perms = [
        rng(seed, Stream.TRANSFER, r).permutation(facts.n_entities)
        for r in range(facts.n_relations)
    ]
    return facts.with_perms(np.stack(perms))


def test_p2_timeout_is_an_error_not_a_pass() -> None:
    facts = BijectionFacts(16, 2, seed=0)  # 16 distinct codes at m = 8
    model, _ = build_geometric(facts, codebook("rademacher", 16, 8, seed=0))
    start = model.W_E.detach().numpy()[:16].copy()
    settings = SolverSettings("highs", fallback=True, time_limit_s=1e-9)
    with pytest.raises(SolverError, match=r"highs: status Time limit.*clarabel: status user_limit"):
        reembed(model, new_facts_of(facts, 0), start, margin=0.05, settings=settings)


def test_p2_falls_back_to_clarabel_when_highs_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = BijectionFacts(16, 2, seed=0)  # 16 distinct codes at m = 8
    model, _ = build_geometric(facts, codebook("rademacher", 16, 8, seed=0))
    start = model.W_E.detach().numpy()[:16].copy()

    def fails(self: WarmHighs, lp: LinearProgram, time_limit_s: float) -> LPSolution:
        raise NotOptimal("status simulated failure")

    monkeypatch.setattr(WarmHighs, "_run", fails)
    res = reembed(model, new_facts_of(facts, 0), start, margin=0.05)
    assert res.solvers == ("clarabel",) and res.solves > 0
    # interior-point points are judged like any other: by the forward pass
    assert res.found == (res.accuracy == 1.0) and res.accuracy > 0.9
    with pytest.raises(SolverError, match="highs: status simulated failure"):
        reembed(
            model,
            new_facts_of(facts, 0),
            start,
            margin=0.05,
            settings=SolverSettings("highs", fallback=False),
        )


SPEC = """
name: t
instance: {kind: bijection, entities: 16, relations: 2, seed: 0}
claims:
  - id: c
    check: feasibility
    program: reembed
    construction: {name: geometric, codebook: rademacher, code_dim: 8}
    min_margin: 0.05
    expect: {status: feasible, accuracy: 1.0}
"""


def test_p2_claim_with_timed_out_solver_is_error() -> None:
    runner = SpecRunner(load_spec_text(SPEC), Limits(solver_time_limit_s=1e-9))
    result = runner.run().results[0]
    assert result.status == "error" and "SolverError" in result.message


def test_min_reembed_dim_reports_both_neighbours() -> None:
    facts = BijectionFacts(16, 2, seed=4)
    new = new_facts_of(facts, 4)
    search = min_reembed_dim(facts, new, "rademacher", 4, min_margin=0.05, max_m=16)
    assert search.m is not None and search.at is not None and search.below is not None
    assert search.at.status == "feasible" and search.at.result is not None
    assert search.at.result.accuracy == 1.0 and search.at.result.margin >= 0.05 - 1e-9
    assert search.at.d_model == 2 * search.m + 2 + search.m
    assert search.below.m == search.m - 1 and search.below.status in ("impossible", "not_found")
    for at in search.tried.values():
        if at.status == "impossible":  # the P1 certificate, re-solved independently
            assert at.certificate is not None and at.certificate.upper <= 0
            codes = codebook("rademacher", 16, at.m, seed=4)
            t, box = at.certificate.target, float(np.abs(codes).max())
            diff = np.delete(codes[t] - codes, t, axis=0)
            res = linprog(
                np.r_[np.zeros(at.m), -1.0],
                A_ub=np.hstack([-diff, np.ones((15, 1))]),
                b_ub=np.zeros(15),
                bounds=[(-box, box)] * at.m + [(None, None)],
                method="highs",
            )
            assert res.status == 0 and -res.fun <= 1e-9
    # 16 codes need m >= 4 = log2 16 to be distinct: every smaller width is impossible
    assert search.m >= 4


def test_p2_search_over_the_limit_is_refused_before_solving() -> None:
    spec = load_spec_text(SPEC.replace("code_dim: 8", "code_dim: auto"))
    with pytest.raises(LimitExceeded, match="max_lp_entries"):
        SpecRunner(spec, Limits(max_lp_entries=100)).preflight()


LP_TRANSFER = """
name: t
instance: {kind: bijection, entities: 64, relations: 2, seed: 5}
claims:
  - id: gd
    check: training
    model: {d_model: 12, d_mlp: 48, heads: 1}
    optim: {lr: 2e-2, steps: 400}
    expect: {accuracy: 1.0}
  - id: moved
    check: transfer
    from: gd
    method: lp
    expect: {accuracy: ">= 0"}
"""


@pytest.mark.usefixtures("one_thread")
def test_lp_transfer_over_the_limit_is_refused_before_p2() -> None:
    """One subject's program: R (N - 1 + d_mlp) rows x (d + 1) columns = 2 * 111 * 13."""
    runner = SpecRunner(load_spec_text(LP_TRANSFER), Limits(max_lp_entries=2 * 111 * 13 - 1))
    moved = runner.run().results[1]
    assert moved.status == "error" and "max_lp_entries" in moved.message
    assert "2,886" in moved.message
