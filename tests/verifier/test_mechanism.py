"""Mechanism measures (docs/theory.md section 7) on models whose answers are known.

G1 (verifier/constructions/geometric.py) and the compact construction (compact.py, docs/theory.md
3b) are geometric by construction: their subject rows are exact superpositions, their MLPs exact
relation-gated selectors, so every measure must score 1 on both. Shuffling the subject rows
destroys the superposition (but not the MLP); a key-value memory built here is not a selector.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from verifier.constructions.codebooks import codebook, coherence
from verifier.constructions.compact import build_compact
from verifier.constructions.geometric import build_geometric
from verifier.facts.bijections import BijectionFacts
from verifier.measure import mechanism as mech
from verifier.measure.recall import exact_recall
from verifier.model import ModelConfig, OneLayerTransformer


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small float64 fits: one thread avoids oversubscription on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


N, R, M = 256, 3, 24  # G1 code width 24: u_j spans 24 dims, so the fits need N/2 > 3*24 + 1


@pytest.fixture(scope="module")
def g1() -> tuple[OneLayerTransformer, BijectionFacts]:
    facts = BijectionFacts(N, R, seed=0)
    codes = codebook("rademacher", N, M, seed=0)
    assert coherence(codes) < 1  # distinct codes: G1 recalls every fact
    model, _ = build_geometric(facts, codes)
    assert exact_recall(model, facts.batches(4096), facts.n_facts).accuracy == 1.0
    return model, facts


@pytest.fixture(scope="module")
def shuffled(g1: tuple[OneLayerTransformer, BijectionFacts]) -> OneLayerTransformer:
    model, _ = g1
    out = copy.deepcopy(model)
    perm = np.random.default_rng(0).permutation(N)
    with torch.no_grad():
        out.W_E[:N] = model.W_E[:N][torch.from_numpy(perm)]
    return out


def key_value_memory(facts: BijectionFacts, d_key: int = 48, m: int = 24) -> OneLayerTransformer:
    """One MLP unit per fact: fires only for its own subject and relation, writes the answer.

    Residual: d_key key coordinates (random unit subject keys), R gates, an m-wide answer slot.
    Unit (s, r): ``ReLU(<k_s, x> + B (g_r - 1) - theta)`` with theta between the keys'
    coherence and 1, so it is a lookup table: not linear in e_s.
    """
    n, n_rel = facts.n_entities, facts.n_relations
    g = np.random.default_rng(1)
    keys = g.standard_normal((n, d_key))
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    gram = keys @ keys.T - 2 * np.eye(n)
    theta = (1 + gram.max()) / 2
    codes = codebook("rademacher", n, m, seed=2)
    d = d_key + n_rel + m
    cfg = ModelConfig(n + n_rel, 2, d, n_rel, 1, n * n_rel, n)
    model = OneLayerTransformer(cfg)
    w_e = np.zeros((n + n_rel, d))
    w_e[:n, :d_key] = keys
    w_e[n + np.arange(n_rel), d_key + np.arange(n_rel)] = 1
    w_v = np.zeros((d, n_rel))
    w_v[d_key + np.arange(n_rel), np.arange(n_rel)] = 1
    w_in = np.zeros((d, n * n_rel))
    w_out = np.zeros((n * n_rel, d))
    big_b = 4.0
    for r in range(n_rel):
        units = r * n + np.arange(n)
        w_in[:d_key, units] = keys.T
        w_in[d_key + r, units] = big_b
        w_out[units, d_key + n_rel :] = codes[facts.perms[r]] / (1 - theta)
    w_u = np.zeros((d, n))
    w_u[d_key + n_rel :] = codes.T
    with torch.no_grad():
        model.W_E.copy_(torch.from_numpy(w_e))
        model.W_V[0].copy_(torch.from_numpy(w_v))
        model.W_O[0].copy_(torch.from_numpy(w_v.T * 2))
        model.W_in.copy_(torch.from_numpy(w_in))
        model.b_in.fill_(-big_b - theta)
        model.W_out.copy_(torch.from_numpy(w_out))
        model.W_U.copy_(torch.from_numpy(w_u))
    return model


# --- G1 and compact: the answers are known ------------------------------------------------------

MEASURES = tuple(mech.MEASURES.values())  # the registry of built-in measures


@pytest.fixture(scope="module", params=["geometric", "compact"])
def known(request: pytest.FixtureRequest) -> tuple[OneLayerTransformer, BijectionFacts]:
    """G1 and the compact construction at R = 4, m = 7 (d = 39 and 32), Gaussian unit codes.

    At this size a probe that regresses the whole u_y from e_s scored 0.17 on the compact
    model (most of u_y is not in e_s); the component probe must score 1.
    """
    facts = BijectionFacts(512, 4, seed=0)
    codes = codebook("gaussian", 512, 7, seed=0)
    assert coherence(codes) < 1
    build = build_compact if request.param == "compact" else build_geometric
    model, _ = build(facts, codes)
    assert exact_recall(model, facts.batches(4096), facts.n_facts).accuracy == 1.0
    return model, facts


@pytest.mark.parametrize("measure", MEASURES, ids=lambda f: f.__name__)
def test_every_measure_scores_one_on_a_known_geometric_model(
    known: tuple[OneLayerTransformer, BijectionFacts], measure: object
) -> None:
    model, facts = known
    result = measure(model, facts)  # type: ignore[operator]
    assert result.underdetermined is None
    assert result.value >= 0.99


def test_probe_transfer_is_exact_on_a_known_geometric_model(
    known: tuple[OneLayerTransformer, BijectionFacts],
) -> None:
    model, facts = known
    new = mech.new_bijections(facts, transfer_seed=1)
    assert mech.transfer_accuracy(model, facts, new, "probe").value == 1.0


def test_compact_sizes_are_the_registry_formulas() -> None:
    from verifier.spec import BijectionInstance
    from verifier.theory import COMPACT, instance_values
    from verifier.theory import evaluate_expression as evaluate

    for n, r, m in ((64, 1, 5), (512, 4, 7), (100, 3, 12)):
        facts = BijectionFacts(n, r, seed=0)
        model, layout = build_compact(facts, codebook("gaussian", n, m, seed=0))
        inst = BijectionInstance(kind="bijection", entities=n, relations=r)
        values = {**instance_values(inst), "m": m}
        names = ("embedding_dim", "mlp_width", "params", "fact_params")
        size = {q: evaluate(COMPACT.quantity(q).expr, values) for q in names}
        assert size["embedding_dim"] == model.cfg.d_model == layout.d_model == r * m + r
        assert size["mlp_width"] == model.cfg.d_mlp == 2 * r * m
        assert size["params"] == model.n_params()
        assert size["fact_params"] == n * model.cfg.d_model


def test_g1_superposition_is_exact(g1: tuple[OneLayerTransformer, BijectionFacts]) -> None:
    model, facts = g1
    result = mech.superposition_r2(model, facts)
    assert result.value == pytest.approx(1.0, abs=1e-9)
    assert result.detail["folds"] == 8 and len(result.detail["fold_r2"]) == 8


def test_g1_mlp_is_a_linear_gated_selector(g1: tuple[OneLayerTransformer, BijectionFacts]) -> None:
    model, facts = g1
    assert mech.selector_linearity(model, facts).value == pytest.approx(1.0, abs=1e-9)
    gated = mech.gated_fraction(model, facts)
    assert gated.value == 1.0 and gated.detail["dead"] == 0
    rates = np.array(gated.detail["activation_rate"])  # (R, d_mlp): each unit per relation
    assert rates.shape == (R, 2 * R * M)
    for r in range(R):  # relation r's own units fire for about half the subjects, others never
        own = rates[r, 2 * r * M : 2 * (r + 1) * M]
        assert (
            own.min() > 0.2 and np.delete(rates[r], np.s_[2 * r * M : 2 * (r + 1) * M]).max() == 0
        )


def test_g1_interventions_all_succeed(g1: tuple[OneLayerTransformer, BijectionFacts]) -> None:
    model, facts = g1
    result = mech.intervention_success(model, facts)
    assert result.value == 1.0
    assert result.detail["interventions"] == N * R  # every subject, held out by its fold


def test_g1_probe_transfer_is_exact_and_random_is_chance(
    g1: tuple[OneLayerTransformer, BijectionFacts],
) -> None:
    model, facts = g1
    new = mech.new_bijections(facts, transfer_seed=1)
    assert not np.array_equal(new.perms, facts.perms)
    probe = mech.transfer_accuracy(model, facts, new, "probe")
    assert probe.value == 1.0 and probe.detail["margin"] > 0
    control = mech.transfer_accuracy(model, facts, new, "random", seed=1)
    assert control.value is not None and control.value <= 5 / N


def test_subject_override_reproduces_the_forward_pass(
    g1: tuple[OneLayerTransformer, BijectionFacts],
) -> None:
    model, facts = g1
    s, r = facts.fact_arrays()
    own = mech.logits_with_subjects(model, mech.subject_table(model, facts)[s], r, N)
    assert torch.equal(own, model(facts.tokens(s, r)))


@pytest.mark.parametrize("n_rel", [2, 4])
@pytest.mark.parametrize("build", [build_geometric, build_compact], ids=["geometric", "compact"])
def test_relation_gating_and_relu_necessity_are_one_on_the_constructions(
    build: object, n_rel: int
) -> None:
    """Each construction's unit fires for its own relation only, and its MLP is exactly one
    affine map per relation on the subjects that reach it."""
    facts = BijectionFacts(512, n_rel, seed=0)
    model, _ = build(facts, codebook("gaussian", 512, 7, seed=0))  # type: ignore[operator]
    gate = mech.relation_gating(model, facts)
    assert gate.value >= 0.99  # type: ignore[operator]
    assert gate.detail["raw"] == 1.0 and 0 < gate.detail["chance"] < 0.5
    relu = mech.relu_necessity(model, facts)
    assert relu.value >= 0.99  # type: ignore[operator]
    assert relu.detail["per_relation_recall"] >= 0.99
    assert min(relu.detail["per_relation_recall_by_relation"]) >= 0.99
    assert relu.detail["shared_recall"] <= 0.2  # one map for all relations cannot select


# --- controls: the measures must drop ------------------------------------------------------------


def affine_mlp(model: OneLayerTransformer) -> OneLayerTransformer:
    """``model`` with ``b_in`` raised until every unit fires for every query: an affine MLP."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        out.b_in.add_(10 * float(model.W_E.abs().sum(1).max() * model.W_in.abs().max() + 1))
    return out


def relation_blind(model: OneLayerTransformer, facts: BijectionFacts) -> OneLayerTransformer:
    """``model`` with ``W_in`` blind to the relation: the directions along which the MLP input
    ``h1`` moves with the relation (uniform attention: a constant offset per relation) are
    projected out of ``W_in``, so every unit sees the same input under every relation."""
    first = [mech.mlp_at_queries(model, facts, r).h1 for r in range(facts.n_relations)]
    offsets = np.concatenate([h - first[0] for h in first[1:]])  # ((R - 1) N, d)
    basis = np.linalg.svd(offsets, full_matrices=False)[2]
    basis = basis[: np.linalg.matrix_rank(offsets)]  # (k, d) orthonormal rows
    out = copy.deepcopy(model)
    with torch.no_grad():
        w_in = out.W_in.detach().numpy()
        out.W_in.copy_(torch.from_numpy(w_in - basis.T @ (basis @ w_in)))
    return out


@pytest.mark.parametrize("n_rel", [2, 4])
def test_relation_gating_is_zero_on_relation_blind_mlps(n_rel: int) -> None:
    facts = BijectionFacts(512, n_rel, seed=0)
    model, _ = build_geometric(facts, codebook("gaussian", 512, 7, seed=0))
    affine = affine_mlp(model)
    pre = np.stack([mech.mlp_at_queries(affine, facts, r).pre for r in range(n_rel)])
    assert pre.min() > 0  # every unit on: the MLP is affine
    assert abs(mech.relation_gating(affine, facts).value) <= 0.1  # type: ignore[arg-type]
    assert abs(mech.relu_necessity(affine, facts).value) <= 0.01  # type: ignore[arg-type]
    blind = relation_blind(model, facts)
    pre = np.stack([mech.mlp_at_queries(blind, facts, r).pre for r in range(n_rel)])
    assert np.allclose(pre, pre[0]) and (pre > 0).any() and (pre <= 0).any()
    gate = mech.relation_gating(blind, facts)
    assert abs(gate.value) <= 0.1  # type: ignore[arg-type]
    assert mech.gated_fraction(blind, facts).value == 0.0


def test_relation_gating_corrects_for_chance() -> None:
    """Units firing at random, independently of the relation, for 5% of 512 subjects: the raw
    graded gate is far from 0 (each relation samples its own subjects), the corrected one is
    near 0; units that fire for one relation only are 1 either way."""
    g = np.random.default_rng(0)
    noise = g.random((4, 512, 256)) < 0.05  # (R, N, units)
    gate = mech.corrected_gate(noise, seed=0)
    assert not isinstance(gate, str)
    assert gate[1]["raw"] > 0.2 and abs(gate[0]) <= 0.1  # raw 0.35, corrected 0.02
    own = np.zeros((4, 512, 256), dtype=bool)
    for r in range(4):  # unit i belongs to relation i % 4 and fires there for half the subjects
        own[r, :, r::4] = g.random((512, 64)) < 0.5
    gate = mech.corrected_gate(own, seed=0)
    assert not isinstance(gate, str)
    assert gate[1]["raw"] == 1.0 and gate[0] == 1.0
    assert isinstance(mech.corrected_gate(np.zeros((2, 8, 4), dtype=bool), seed=0), str)


def test_shuffled_embeddings_lose_the_superposition(
    g1: tuple[OneLayerTransformer, BijectionFacts], shuffled: OneLayerTransformer
) -> None:
    _, facts = g1
    assert mech.superposition_r2(shuffled, facts).value < 0.2  # type: ignore[operator]
    assert mech.probe_accuracy(shuffled, facts).value < 0.05  # type: ignore[operator]
    assert mech.intervention_success(shuffled, facts).value < 0.05  # type: ignore[operator]
    assert mech.functional_superposition(shuffled, facts).value < 0.05  # type: ignore[operator]
    new = mech.new_bijections(facts, transfer_seed=1)
    assert mech.transfer_accuracy(shuffled, facts, new, "probe").value < 0.05  # type: ignore[operator]


def test_shuffled_embeddings_keep_the_selector(
    g1: tuple[OneLayerTransformer, BijectionFacts], shuffled: OneLayerTransformer
) -> None:
    """selector_linearity measures the MLP as a function of e_s, which shuffling leaves alone."""
    _, facts = g1
    assert mech.selector_linearity(shuffled, facts).value == pytest.approx(1.0, abs=1e-9)


def test_key_value_memory_is_not_a_selector() -> None:
    facts = BijectionFacts(N, 2, seed=0)
    model = key_value_memory(facts)
    assert exact_recall(model, facts.batches(4096), facts.n_facts).accuracy == 1.0
    assert mech.selector_linearity(model, facts).value < 0.3  # type: ignore[operator]
    gated = mech.gated_fraction(model, facts)
    assert gated.value == 0.0 and gated.detail["dead"] == N * 2  # every unit fires for 1/N
    # one subject per unit: a per-subject shuffle of the relation labels is as gated as the model
    assert "chance level is 1" in (mech.relation_gating(model, facts).underdetermined or "")
    assert mech.superposition_r2(model, facts).value < 0.2  # type: ignore[operator]


# --- underdetermined fits report a reason, not a number ------------------------------------------


def test_too_few_subjects_are_underdetermined(
    g1: tuple[OneLayerTransformer, BijectionFacts],
) -> None:
    model, _ = g1
    small = BijectionFacts(64, R, seed=0)  # 56 fit subjects < R*24 + 1; N < 100 for gating
    codes = codebook("rademacher", 64, M, seed=0)
    model, _ = build_geometric(small, codes)
    underdetermined = (
        mech.superposition_r2,
        mech.probe_accuracy,
        mech.functional_superposition,
        mech.intervention_success,
        mech.gated_fraction,
    )
    for fn in underdetermined:
        result = fn(model, small)
        assert result.value is None and result.underdetermined
    new = mech.new_bijections(small, 1)
    probe = mech.transfer_accuracy(model, small, new, "probe")
    assert probe.value is None and "N > R*d + 1 = 73" in (probe.underdetermined or "")
    # 8 folds: N - ceil(N/8) subjects fit R*d + 1 = 193 regressors
    why = mech.fit_requirement("superposition_r2", 221, 4, 48) or ""
    assert "R*d + 1 = 193" in why and "got 193 subjects" in why
    assert mech.fit_requirement("superposition_r2", 222, 4, 48) is None
    assert mech.fit_requirement("gated_fraction", 512, 1, 8) is not None
    for name in ("relation_gating", "relation_gating_init", "relu_necessity"):
        assert "R >= 2" in (mech.fit_requirement(name, 512, 1, 8) or "")
    assert "d + 1 = 49" in (mech.fit_requirement("relu_necessity", 48, 2, 48) or "")


# --- the cross-validated R^2 is close to the population value --------------------------------


def synthetic_table(
    n: int, n_rel: int, d: int, population_r2: float, seed: int
) -> tuple[OneLayerTransformer, BijectionFacts]:
    """A model whose subject rows are ``sum_r M_r u_{pi_r(s)} + noise`` with a known R^2.

    ``u_j`` are Gaussian columns of W_U; the noise variance is set so that, for a new subject,
    signal variance / total variance = ``population_r2``.
    """
    facts = BijectionFacts(n, n_rel, seed=seed)
    g = np.random.default_rng([seed, 99])
    u = g.standard_normal((n, d)) / np.sqrt(d)  # rows u_j
    maps = g.standard_normal((n_rel, d, d)) / np.sqrt(d)
    signal = sum(u[facts.perms[r]] @ maps[r].T for r in range(n_rel))
    signal_var = n_rel * float(np.mean(np.einsum("rij->ri", maps**2))) / d  # per coordinate
    noise_var = signal_var * (1 - population_r2) / population_r2
    rows = signal + g.standard_normal((n, d)) * np.sqrt(noise_var)
    cfg = ModelConfig(n + n_rel, 2, d, d, 1, 4, n)
    model = OneLayerTransformer(cfg)
    with torch.no_grad():
        model.W_E[:n] = torch.from_numpy(rows)
        model.W_U.copy_(torch.from_numpy(u.T))
    return model, facts


def test_cross_validated_r2_is_near_the_population_value() -> None:
    """K = 8 folds at N = 1024, R = 2, d = 64 (129 regressors): within 0.03 of 0.9, and
    closer than the half split, which fits the same regressors on half the subjects.

    (At N = 512 the 8-fold figure is 0.86 and the half split 0.80: still biased low, which the
    evidence's adjusted_r2, 0.90 there, shows.)"""
    values, halves = [], []
    for seed in range(3):
        model, facts = synthetic_table(1024, 2, 64, 0.9, seed)
        result = mech.superposition_r2(model, facts)
        assert result.value is not None
        values.append(result.value)
        halves.append(result.detail["half_split_r2"])
        assert abs(result.value - 0.9) <= 0.03
    assert abs(np.mean(values) - 0.9) < abs(np.mean(halves) - 0.9)
