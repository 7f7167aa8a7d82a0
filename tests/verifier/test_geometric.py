"""G1 (docs/theory.md section 3) through the real forward pass: exact recall, margin = 1 - mu,
and locality of the subject table."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.constructions.codebooks import (
    codebook,
    coherence,
    raw_columns,
    smallest_code_dim,
)
from verifier.constructions.geometric import build_geometric
from verifier.facts.bijections import BijectionFacts
from verifier.measure.recall import exact_recall


def _build(n: int, r: int, seed: int, kind: str = "rademacher", disjoint: bool = False):  # type: ignore[no-untyped-def]
    facts = BijectionFacts(n, r, seed, disjoint)
    m = smallest_code_dim(kind, facts.n_attributes, 0.5, seed, 4096).m  # type: ignore[arg-type]
    codes = codebook(kind, facts.n_attributes, m, seed)  # type: ignore[arg-type]
    model, layout = build_geometric(facts, codes)
    return facts, codes, model, layout


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 80),
    r=st.integers(1, 5),
    seed=st.integers(0, 2**32),
    kind=st.sampled_from(["rademacher", "gaussian"]),
    disjoint=st.booleans(),
)
def test_g1_recalls_every_fact_with_margin_one_minus_coherence(
    n: int, r: int, seed: int, kind: str, disjoint: bool
) -> None:
    facts, codes, model, layout = _build(n, r, seed, kind, disjoint)
    result = exact_recall(model, facts.batches(97), facts.n_facts)
    assert result.total == n * r
    assert result.correct == n * r
    mu = coherence(codes)
    assert mu <= 0.5 + 1e-12
    # every attribute is some fact's answer (bijections), so the min margin is exactly 1 - mu
    assert math.isclose(result.margin, 1 - mu, abs_tol=1e-12)
    assert layout.d_model == r * layout.code_dim + r + layout.code_dim
    assert model.cfg.d_mlp == 2 * r * layout.code_dim


def test_logits_are_code_inner_products() -> None:
    facts, codes, model, _ = _build(50, 3, 4)
    tokens, targets = next(facts.batches(150))
    with torch.no_grad():
        logits = model(tokens).numpy()
    np.testing.assert_allclose(logits, codes[targets.numpy()] @ codes.T, atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(4, 60), r=st.integers(1, 4), seed=st.integers(0, 10_000), data=st.data())
def test_changing_one_subject_changes_exactly_its_answers(
    n: int, r: int, seed: int, data: st.DataObject
) -> None:
    facts, codes, model, layout = _build(n, r, seed)
    tokens, _ = next(facts.batches(n * r))
    with torch.no_grad():
        before = model(tokens).argmax(1)
        s = data.draw(st.integers(0, n - 1))
        other = data.draw(
            st.integers(0, n - 1).filter(lambda x: facts.perms[0, x] != facts.perms[0, s])
        )
        # write relation 0's slot of subject s to the code of another answer
        model.W_E[s, layout.slot(0)] = torch.from_numpy(codes[facts.perms[0, other]])
        after = model(tokens).argmax(1)
    subjects = tokens[:, 1]
    changed = (before != after).nonzero().flatten()
    assert set(subjects[changed].tolist()) == {s}
    # the one changed answer is (s, relation 0), which now answers pi_0(other)
    relation0 = ((subjects == s) & (tokens[:, 0] == n)).nonzero().flatten()
    assert changed.tolist() == relation0.tolist()
    assert int(after[relation0]) == int(facts.perms[0, other])


def test_too_narrow_codes_fail_and_name_a_fact() -> None:
    facts = BijectionFacts(256, 2, 0)
    codes = codebook("rademacher", 256, 4, 0)  # 16 sign patterns for 256 attributes
    model, _ = build_geometric(facts, codes)
    result = exact_recall(model, facts.batches(100), facts.n_facts)
    assert result.correct < result.total
    assert result.margin <= 0
    assert result.first_failure is not None


def test_code_search_is_the_smallest_width() -> None:
    for n, seed in [(40, 1), (90, 2), (200, 3)]:
        found = smallest_code_dim("rademacher", n, 0.5, seed, 512)
        widths = [
            m
            for m in range(1, found.m + 1)
            if coherence(codebook("rademacher", n, m, seed)) <= 0.5 + 1e-12
        ]
        assert widths == [found.m]
        assert found.evaluated < found.m  # the skip rule saved work


def test_codes_are_nested_and_seeded() -> None:
    wide = raw_columns("rademacher", 30, 150, 9)
    narrow = raw_columns("rademacher", 30, 70, 9)
    np.testing.assert_array_equal(wide[:, :70], narrow)
    assert not np.array_equal(raw_columns("rademacher", 30, 70, 10), narrow)
    np.testing.assert_allclose(np.linalg.norm(codebook("gaussian", 30, 20, 1), axis=1), 1.0)


def test_bijections_are_deterministic_permutations() -> None:
    a = BijectionFacts(100, 3, 5).perms
    b = BijectionFacts(100, 3, 5).perms
    np.testing.assert_array_equal(a, b)
    for row in a:
        assert sorted(row.tolist()) == list(range(100))
    # pinned values: the same seed gives the same bijections on every machine and release
    assert a[:, :6].tolist() == [
        [60, 59, 34, 95, 69, 73],
        [3, 53, 79, 80, 57, 94],
        [20, 68, 96, 22, 19, 97],
    ]
