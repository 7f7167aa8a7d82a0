"""Mechanism measures (docs/theory.md section 7) on models whose answers are known.

G1 (verifier/constructions/geometric.py) is geometric by construction: its subject rows are
exact superpositions, its MLP an exact relation-gated selector. Shuffling its subject rows
destroys the superposition (but not the MLP); a key-value memory built here is not a selector.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from verifier import mechanism as mech
from verifier.constructions.codebooks import codebook, coherence
from verifier.constructions.geometric import build_geometric
from verifier.instances import BijectionFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.recall import exact_recall


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


# --- G1: the answers are known -------------------------------------------------------------------


def test_g1_superposition_is_exact(g1: tuple[OneLayerTransformer, BijectionFacts]) -> None:
    model, facts = g1
    result = mech.superposition_r2(model, facts)
    assert result.value == pytest.approx(1.0, abs=1e-9)


def test_g1_probe_decodes_every_held_out_subject(
    g1: tuple[OneLayerTransformer, BijectionFacts],
) -> None:
    model, facts = g1
    assert mech.probe_accuracy(model, facts).value == 1.0


def test_g1_mlp_is_a_linear_gated_selector(g1: tuple[OneLayerTransformer, BijectionFacts]) -> None:
    model, facts = g1
    assert mech.selector_linearity(model, facts).value == pytest.approx(1.0, abs=1e-9)
    gated = mech.gated_fraction(model, facts)
    assert gated.value == 1.0 and gated.detail["dead"] == 0


def test_g1_interventions_all_succeed(g1: tuple[OneLayerTransformer, BijectionFacts]) -> None:
    model, facts = g1
    result = mech.intervention_success(model, facts)
    assert result.value == 1.0
    assert result.detail["interventions"] == (N - N // 2) * R


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


# --- controls: the measures must drop ------------------------------------------------------------


def test_shuffled_embeddings_lose_the_superposition(
    g1: tuple[OneLayerTransformer, BijectionFacts], shuffled: OneLayerTransformer
) -> None:
    _, facts = g1
    assert mech.superposition_r2(shuffled, facts).value < 0.2  # type: ignore[operator]
    assert mech.probe_accuracy(shuffled, facts).value < 0.05  # type: ignore[operator]
    assert mech.intervention_success(shuffled, facts).value < 0.05  # type: ignore[operator]
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
    assert mech.superposition_r2(model, facts).value < 0.2  # type: ignore[operator]


# --- underdetermined fits report a reason, not a number ------------------------------------------


def test_too_few_subjects_are_underdetermined(
    g1: tuple[OneLayerTransformer, BijectionFacts],
) -> None:
    model, _ = g1
    small = BijectionFacts(64, R, seed=0)  # N/2 = 32 < R*24 + 1; N < 100 for gating
    codes = codebook("rademacher", 64, M, seed=0)
    model, _ = build_geometric(small, codes)
    for fn in (mech.superposition_r2, mech.intervention_success, mech.gated_fraction):
        result = fn(model, small)
        assert result.value is None and result.underdetermined
    new = mech.new_bijections(small, 1)
    probe = mech.transfer_accuracy(model, small, new, "probe")
    assert probe.value is None and "N > R*d + 1 = 73" in (probe.underdetermined or "")
    assert "N/2 > R*d + 1 = 193" in (mech.fit_requirement("superposition_r2", 384, 4, 48) or "")
    assert mech.fit_requirement("superposition_r2", 388, 4, 48) is None
    assert mech.fit_requirement("gated_fraction", 512, 1, 8) is not None
