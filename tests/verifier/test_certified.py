"""Certified recall agrees with the float64 brute force on every fact; the sign-code search
returns the width-by-width scan's smallest m."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from verifier.checks.construction import (
    BATCH,
    bijection_facts,
    bijection_width_cap,
    fact_tokens,
)
from verifier.constructions import codebooks
from verifier.constructions.chain import build_chain
from verifier.constructions.codebooks import (
    codebook,
    coherence,
    raw_columns,
    smallest_code_dim,
    violation_threshold,
)
from verifier.constructions.compact import build_compact
from verifier.constructions.cot import build_cot
from verifier.constructions.geometric import build_geometric
from verifier.constructions.registry import construction
from verifier.engine.runner import expand, run_spec
from verifier.errors import LimitExceeded
from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts, chain_facts
from verifier.limits import Limits
from verifier.measure.certified import (
    CertifiedRecall,
    Readout,
    ReadoutMlp,
    certified_recall,
    final_residual,
    gram_extremes,
    sign_gram_extremes,
)
from verifier.measure.queries import evaluate_queries, query_tokens
from verifier.measure.recall import exact_recall, margins_of
from verifier.model import OneLayerTransformer
from verifier.spec import BijectionInstance, load_spec_file, load_spec_text

pytestmark = pytest.mark.usefixtures("one_thread")
SPECS = Path(__file__).resolve().parents[2] / "specs"


def brute_force(
    model: OneLayerTransformer, facts: BijectionFacts
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every fact's float64 margin and strongest rival through the full logits, in order."""
    with torch.inference_mode():
        pairs = [margins_of(model(t), y) for t, y in facts.batches(BATCH)]
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def brute_margins(model: OneLayerTransformer, facts: BijectionFacts) -> torch.Tensor:
    return brute_force(model, facts)[0]


def certify(
    model: OneLayerTransformer, facts: BijectionFacts, codes: np.ndarray, cap: int | None = None
) -> CertifiedRecall | None:
    blocks = model_blocks(model, codes, facts.n_relations)
    return certified_recall(
        model,
        Readout(codes, blocks),
        facts.batches(BATCH),
        lambda idx: fact_tokens(facts, idx),
        facts.n_facts,
        resolve_cap=cap,
    )


def model_blocks(model: OneLayerTransformer, codes: np.ndarray, n_rel: int) -> tuple[slice, ...]:
    """G1 reads the last m rows; the compact model reads every subject slot."""
    m, d = codes.shape[1], model.cfg.d_model
    if d == n_rel * m + n_rel + m:
        return (slice(d - m, d),)
    return tuple(slice(r * m, (r + 1) * m) for r in range(n_rel))


def assert_agrees(model: OneLayerTransformer, facts: BijectionFacts, codes: np.ndarray) -> None:
    """Accuracy, the set of failures, the first failure and the margin are the brute force's."""
    cert = certify(model, facts, codes)
    assert cert is not None
    margins, rivals = brute_force(model, facts)
    failures = np.flatnonzero(~(margins > 0).numpy())
    np.testing.assert_array_equal(cert.failures, failures)
    assert cert.result.correct == facts.n_facts - len(failures)
    assert cert.margin_exact
    first = int(failures[0]) if len(failures) else None
    assert cert.result.first_failure == first
    if first is not None:
        assert cert.result.first_failure_prediction == int(rivals[first])
    low = float(margins.min())
    assert math.isclose(cert.result.margin, low, rel_tol=0, abs_tol=1e-12)
    assert cert.result.worst_index is not None
    assert math.isclose(float(margins[cert.result.worst_index]), low, abs_tol=1e-12)


def bundled_points() -> list[tuple[str, BijectionInstance, str, str, int | str, float]]:
    """Every construction claim point on a bijection instance in the bundled specs (not full)."""
    points = []
    limits = Limits()
    for path in sorted(SPECS.rglob("*.spec.yaml")):
        if "full" in path.parts:
            continue
        spec = load_spec_file(path)
        if not isinstance(spec.instance, BijectionInstance):
            continue
        for claim in spec.claims:
            if claim.check_kind() != "construction":
                continue
            for point in expand(spec, claim, limits):
                c = point.claim.construction
                key = f"{path.name}:{point.key}"
                points.append((key, point.instance, c.name, c.codebook, c.code_dim, c.margin))
    return points


@pytest.mark.parametrize("point", bundled_points(), ids=lambda p: p[0])
def test_certificate_agrees_on_every_bundled_construction(
    point: tuple[str, BijectionInstance, str, str, int | str, float],
) -> None:
    _, instance, name, kind, code_dim, margin = point
    facts = bijection_facts(instance)
    if kind == "onehot":
        m = facts.n_attributes
    elif code_dim == "auto":
        cap = bijection_width_cap(name, instance, Limits())
        m = smallest_code_dim(kind, facts.n_attributes, 1 - margin, instance.seed, cap).m  # type: ignore[arg-type]
    else:
        m = int(code_dim)
    codes = codebook(kind, facts.n_attributes, m, instance.seed)  # type: ignore[arg-type]
    model, _ = construction(name).build(facts, codes)
    assert_agrees(model, facts, codes)


def g1(
    n: int, r: int, codes: np.ndarray, seed: int = 3
) -> tuple[OneLayerTransformer, BijectionFacts]:
    facts = BijectionFacts(n, r, seed)
    return build_geometric(facts, codes)[0], facts


def test_two_equal_codes_fail_exactly_their_facts() -> None:
    codes = codebook("rademacher", 200, 40, 1)
    codes[9] = codes[5]
    model, facts = g1(200, 3, codes)
    assert_agrees(model, facts, codes)
    cert = certify(model, facts, codes)
    assert cert is not None and len(cert.failures) == 2 * 3  # answers 5 and 9, every relation
    assert cert.result.margin == 0.0


def test_a_margin_of_exactly_zero_between_distinct_codes() -> None:
    # k_9 = k_5 + v with v orthogonal to k_5: logit_9 = logit_5 on answer 5, exactly
    rng = np.random.default_rng(0)
    codes = rng.integers(-1, 2, size=(64, 12)).astype(np.float64)
    codes[5, :] = [1, 1, 1, 0, 0, 0, 1, -1, 0, 0, 1, 1]
    codes[9] = codes[5]
    codes[9, 3] = 1.0
    model, facts = g1(64, 2, codes)
    margins = brute_margins(model, facts)
    assert float(margins.min()) <= 0.0
    assert_agrees(model, facts, codes)


@pytest.mark.parametrize("weight", ["W_E", "W_in", "W_out", "b_in", "W_O"])
def test_one_corrupted_weight(weight: str) -> None:
    codes = codebook("rademacher", 300, 48, 2)
    model, facts = g1(300, 3, codes)
    with torch.no_grad():
        param = getattr(model, weight)
        flat = param.view(-1)
        flat[int(torch.argmax(flat.abs()))] *= -3.0  # one entry that matters, sign flipped
    assert_agrees(model, facts, codes)


def test_a_non_finite_weight_fails_through_the_full_logits() -> None:
    codes = codebook("rademacher", 100, 32, 2)
    model, facts = g1(100, 2, codes)
    with torch.no_grad():
        model.W_E[7, 0] = math.nan
    cert = certify(model, facts, codes)
    assert cert is not None and 7 in cert.failures and 100 + 7 in cert.failures
    assert cert.result.correct == exact_recall(model, facts.batches(64), facts.n_facts).correct


def test_a_corrupted_unembedding_is_not_certified() -> None:
    codes = codebook("rademacher", 100, 32, 2)
    model, facts = g1(100, 2, codes)
    with torch.no_grad():
        model.W_U[-1, 3] += 1e-12
    assert certify(model, facts, codes) is None


def test_the_answer_written_negated_exercises_negative_beta() -> None:
    codes = codebook("gaussian", 150, 30, 4)
    model, facts = g1(150, 2, codes)
    with torch.no_grad():
        model.W_out[:, -30:] *= -1.0  # z = -k_t: beta = -1, every fact fails
    assert_agrees(model, facts, codes)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_float32_versus_float64_codes(kind: str) -> None:
    codes64 = codebook(kind, 400, 36, 5)  # type: ignore[arg-type]
    codes32 = codes64.astype(np.float32).astype(np.float64)
    for codes in (codes64, codes32):
        model, facts = g1(400, 2, codes)
        assert_agrees(model, facts, codes)


def test_compact_construction_pass_and_fail() -> None:
    for n, m in [(256, 40), (256, 8)]:  # m = 8: 256 codes over 256 sign patterns, ties
        facts = BijectionFacts(n, 3, 6)
        codes = codebook("rademacher", n, m, 6)
        model, _ = build_compact(facts, codes)
        assert_agrees(model, facts, codes)


def test_disjoint_attributes() -> None:
    facts = BijectionFacts(128, 3, 1, disjoint=True)
    codes = codebook("rademacher", facts.n_attributes, 44, 1)
    model, _ = build_geometric(facts, codes)
    assert_agrees(model, facts, codes)


def test_past_the_cap_the_margin_is_a_lower_bound() -> None:
    codes = codebook("onehot", 64, 64, 0)  # every fact has margin exactly 1: all tie
    model, facts = g1(64, 2, codes)
    cert = certify(model, facts, codes, cap=4)
    assert cert is not None and not cert.margin_exact
    true = float(brute_margins(model, facts).min())
    assert true - 1e-9 <= cert.result.margin <= true
    exact = certify(model, facts, codes)
    assert exact is not None and exact.margin_exact and exact.result.margin == true


def test_gram_extremes_of_sign_codes_are_exact_integers() -> None:
    codes = codebook("rademacher", 500, 50, 8)
    gram = gram_extremes(codes, torch.device("cpu"))
    signs = np.sign(codes)
    full = signs @ signs.T
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_array_equal(np.rint(gram.top * 50), full.max(axis=1))
    assert abs(gram.top.max() - coherence(codes)) < 1e-12


# --- the sign-code search ---------------------------------------------------------------------


def reference_search(n: int, tau: float, seed: int, max_m: int) -> tuple[int, float] | None:
    """The width-by-width scan with the Lipschitz skip (the search before witnesses)."""
    signs = raw_columns("rademacher", n, max_m, seed)
    m = 1
    while m <= max_m:
        mu = round(coherence(np.ascontiguousarray(signs[:, :m], dtype=np.float32)))
        excess = mu - tau * m
        if excess <= 1e-9:
            return m, mu / m
        m += max(1, math.ceil(excess / (1 + tau) - 1e-12))
    return None


@pytest.mark.parametrize("tau", [0.1, 0.3, 0.5, 0.75, 0.9])
def test_sign_search_matches_the_reference(tau: float) -> None:
    for n in [2, 3, 17, 64, 200, 700]:
        for seed in range(4):
            want = reference_search(n, tau, seed, 300)
            try:
                found = smallest_code_dim("rademacher", n, tau, seed, 300)
            except LimitExceeded:
                assert want is None
                continue
            assert (found.m, found.coherence) == want


def test_sign_search_matches_the_reference_at_a_few_thousand() -> None:
    for n, seed in [(2048, 7), (3000, 1)]:
        found = smallest_code_dim("rademacher", n, 0.5, seed, 600)
        assert (found.m, found.coherence) == reference_search(n, 0.5, seed, 600)


def test_violation_threshold_is_the_float_rule() -> None:
    for tau in [0.1, 0.3, 0.5, 1 / 3, 0.75, 0.9, 0.0]:
        for m in range(1, 200):
            p = violation_threshold(tau, m)
            assert p - tau * m > 1e-9 and not (p - 1) - tau * m > 1e-9


def test_construction_claims_report_the_certified_method() -> None:
    spec = load_spec_text(
        "name: t\ninstance: {kind: bijection, entities: 128, relations: 2, seed: 1}\n"
        "claims:\n  - id: g\n    check: construction\n"
        "    construction: {name: geometric, codebook: rademacher, code_dim: auto, margin: 0.5}\n"
        "    expect: {accuracy: 1.0, margin: '>= 0.5'}\n"
    )
    result = run_spec(spec).results[0]
    assert result.status == "passed" and result.method == "certified"
    assert result.evidence["certificate"]["margin"] == "exact"


def test_the_search_gives_the_gram_extremes_of_its_code() -> None:
    found = smallest_code_dim("rademacher", 900, 0.5, 3, 400)
    assert found.sign_extremes is not None
    codes = codebook("rademacher", 900, found.m, 3)
    signs = np.sign(codes)
    full = signs @ signs.T
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_array_equal(found.sign_extremes[0], full.max(axis=1))
    np.fill_diagonal(full, np.inf)
    np.testing.assert_array_equal(found.sign_extremes[1], full.min(axis=1))
    direct = gram_extremes(codes, torch.device("cpu"))
    given = sign_gram_extremes(codes, *found.sign_extremes)
    np.testing.assert_array_equal(direct.top, given.top)
    np.testing.assert_array_equal(direct.bottom, given.bottom)


@pytest.mark.parametrize("corrupt", [False, True])
def test_gk_queries_agree_with_the_brute_force(corrupt: bool) -> None:
    facts = chain_facts(96, 2, 3, 4, "all")
    codes = codebook("rademacher", 96, 40, 4)
    model, layout = build_chain(facts, codes)
    if corrupt:
        with torch.no_grad():
            model.W_E[5, layout.slot(0)] *= -1.0  # subject 5 on chain 0: answer negated
    cert = certified_recall(
        model,
        Readout(codes, (layout.answer,)),
        facts.batches(256),
        lambda idx: query_tokens(facts, idx),
        facts.n_queries,
        resolve_cap=None,
    )
    assert cert is not None
    with torch.inference_mode():
        pairs = [margins_of(model(t), y) for t, y in facts.batches(256)]
    margins = torch.cat([p[0] for p in pairs])
    np.testing.assert_array_equal(cert.failures, np.flatnonzero(~(margins > 0).numpy()))
    assert cert.result.margin == pytest.approx(float(margins.min()), abs=1e-12)
    assert bool(corrupt) == bool(len(cert.failures))
    brute = exact_recall(model, facts.batches(256), facts.n_queries)
    assert evaluate_queries(model, facts, False).correct == brute.correct


# --- chain-of-thought decoding (Ck) ------------------------------------------------------------


def assert_decodings_agree(
    model: OneLayerTransformer, facts: ChainFacts, codes: np.ndarray, answer: slice
) -> int:
    """Certified decoding reports what greedy decoding through the full logits does; returns
    the queries it certified."""
    cert = evaluate_queries(model, facts, True, readout=Readout(codes, (answer,)))
    brute = evaluate_queries(model, facts, True)
    assert cert.certified is not None and brute.certified is None
    assert (cert.total, cert.correct, cert.step_correct, cert.final_correct) == (
        brute.total,
        brute.correct,
        brute.step_correct,
        brute.final_correct,
    )
    assert cert.counterexample == brute.counterexample
    assert cert.margin == pytest.approx(brute.margin, abs=1e-12)
    return cert.certified


@pytest.mark.parametrize("corrupt", ["none", "negated", "equal-codes"])
def test_ck_decoding_agrees_with_greedy_decoding(corrupt: str) -> None:
    n, m, seed = 64, 32, 5
    facts = chain_facts(n, 2, 3, seed, "all")
    codes = codebook("rademacher", n, m, seed)
    if corrupt == "equal-codes":
        codes[9] = codes[5]  # steps answering 5 or 9 tie: margin 0, argmax the lower index
    model, layout = build_cot(facts, codes)
    if corrupt == "negated":
        with torch.no_grad():  # entity 5 through relation 0: answer negated, a wrong token fed back
            model.W_E[5, layout.slot(0)] *= -1.0
    certified = assert_decodings_agree(model, facts, codes, layout.answer)
    if corrupt == "none":
        assert certified == facts.n_queries
    else:
        assert 0 < certified < facts.n_queries


# --- the readout MLP (sparse W_in, W_out) and its distance bound ------------------------------


def noisy_g1(dense: bool) -> tuple[OneLayerTransformer, BijectionFacts, np.ndarray]:
    """G1 at N = 300; with ``dense`` every MLP weight gets noise (no zero left), so the
    readout MLP multiplies dense matrices and rounding differs from the model's order."""
    codes = codebook("rademacher", 300, 48, 2)
    model, facts = g1(300, 3, codes)
    if dense:
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for w in (model.W_in, model.W_out, model.b_in, model.b_out):
                w.add_(1e-3 * torch.randn(w.shape, generator=gen, dtype=w.dtype))
    return model, facts, codes


@pytest.mark.parametrize("dense", [False, True])
def test_the_readout_mlp_distance_covers_the_dense_mlp(dense: bool) -> None:
    model, facts, codes = noisy_g1(dense)
    blocks = model_blocks(model, codes, facts.n_relations)
    mlp = ReadoutMlp.of(model, blocks)
    assert mlp is not None
    assert (mlp.w_in.layout == torch.strided) == dense
    with torch.inference_mode():
        tokens, _ = next(iter(facts.batches(BATCH)))
        o, dist = mlp.readout(model.residual(tokens)[:, -1])
        ref = final_residual(model, tokens)[:, mlp.cols]
    gap = torch.linalg.vector_norm((o - ref).view(len(o), len(blocks), -1), dim=2).sum(dim=1)
    assert bool((gap <= dist).all())
    assert float(dist.max()) < 1e-9  # far below any margin the specs judge


@pytest.mark.parametrize("dense", [False, True])
def test_dense_mlp_weights_agree(dense: bool) -> None:
    model, facts, codes = noisy_g1(dense)
    assert_agrees(model, facts, codes)
    cert = certify(model, facts, codes)
    assert cert is not None and cert.certified > facts.n_facts // 2


def test_a_non_finite_mlp_weight_takes_the_dense_mlp() -> None:
    codes = codebook("rademacher", 100, 32, 2)
    model, facts = g1(100, 2, codes)
    with torch.no_grad():
        model.W_out[3, -1] = math.inf  # every fact's answer coordinate m - 1: inf or nan
    assert ReadoutMlp.of(model, model_blocks(model, codes, 2)) is None
    cert = certify(model, facts, codes)
    margins = brute_margins(model, facts)
    assert cert is not None and cert.certified == 0
    np.testing.assert_array_equal(cert.failures, np.flatnonzero(~(margins > 0).numpy()))
    assert cert.result.correct == exact_recall(model, facts.batches(64), facts.n_facts).correct


def test_sign_search_blocks_side_by_side_match_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(codebooks, "_SCAN_FLOATS", 1)  # 64-row blocks: many per scan
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # two blocks at a time, one thread each
    try:
        for n, tau, seed in [(700, 0.5, 1), (600, 0.3, 2)]:
            found = smallest_code_dim("rademacher", n, tau, seed, 400)
            assert (found.m, found.coherence) == reference_search(n, tau, seed, 400)
            assert found.sign_extremes is not None
            signs = np.sign(codebook("rademacher", n, found.m, seed))
            full = signs @ signs.T
            np.fill_diagonal(full, -np.inf)
            np.testing.assert_array_equal(found.sign_extremes[0], full.max(axis=1))
            np.fill_diagonal(full, np.inf)
            np.testing.assert_array_equal(found.sign_extremes[1], full.min(axis=1))
    finally:
        torch.set_num_threads(before)
