"""Multi-hop recall (docs/theory.md section 5): Gk, Ck, LBk, the budget claim and bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.checks import multihop
from verifier.constructions import widths
from verifier.constructions.chain import CHAIN, build_chain
from verifier.constructions.codebooks import codebook, coherence, smallest_code_dim
from verifier.constructions.cot import COT, build_cot, greedy_decode
from verifier.engine.runner import SpecRunner, run_spec
from verifier.errors import LimitExceeded, SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts
from verifier.limits import Limits
from verifier.spec import load_spec_text
from verifier.spec.formulas import SYMBOLS
from verifier.theory.multihop import lbk_bits
from verifier.theory.sizes import (
    CK_EMBEDDING_DIM,
    CK_MLP_WIDTH,
    CK_PARAMS,
    GK_EMBEDDING_DIM,
    GK_MLP_WIDTH,
    GK_PARAMS,
    SizeParams,
)

SMALL = settings(max_examples=12, deadline=None)


def brute_path(facts: ChainFacts, x: int, chain: list[int]) -> list[int]:
    """y_1..y_k by composing the single-hop bijections one at a time, in plain Python."""
    perms = BijectionFacts(facts.n_entities, facts.n_relations, facts.seed).perms
    out, y = [], x
    for r in chain:
        y = int(perms[r][y])
        out.append(y)
    return out


def minimal_codes(n: int, seed: int) -> np.ndarray:
    """The narrowest seeded Rademacher code with distinct codes (exact recall, margin > 0)."""
    return codebook("rademacher", n, smallest_code_dim("rademacher", n, 0.99, seed, 512).m, seed)


sizes = st.tuples(st.integers(4, 40), st.integers(1, 3), st.integers(1, 3), st.integers(0, 10_000))


# --- facts -------------------------------------------------------------------------------------


@SMALL
@given(sizes)
def test_queries_enumerate_every_chain_once_in_bounded_batches(case: tuple[int, ...]) -> None:
    n, r, k, seed = case
    facts = ChainFacts(n, r, k, seed)
    seen = set()
    for subjects, chains in facts.query_batches(7):
        assert len(subjects) <= 7
        answers = facts.answers(subjects, chains)
        for x, chain, y in zip(subjects.tolist(), chains.tolist(), answers.tolist(), strict=True):
            seen.add((x, tuple(chain)))
            assert y == brute_path(facts, x, chain)[-1]
    assert len(seen) == facts.n_queries == n * r**k


def test_single_hop_bijections_are_the_bijection_instances() -> None:
    facts = ChainFacts(50, 3, 2, seed=4)
    assert np.array_equal(facts.perms, BijectionFacts(50, 3, 4).perms)


def test_sequences_put_relations_first_then_subject_then_intermediates() -> None:
    facts = ChainFacts(10, 3, 3, seed=1)
    subjects, chains = np.array([4]), np.array([[2, 0, 1]])
    path = brute_path(facts, 4, [2, 0, 1])
    assert facts.tokens(subjects, chains).tolist() == [[12, 10, 11, 4]]
    assert facts.cot_tokens(subjects, chains).tolist() == [[12, 10, 11, 4, *path[:2]]]


# --- constructions -----------------------------------------------------------------------------


@SMALL
@given(sizes)
def test_gk_recalls_every_query(case: tuple[int, ...]) -> None:
    n, r, k, seed = case
    facts = ChainFacts(n, r, k, seed)
    codes = minimal_codes(n, seed)
    res = multihop.verify(facts, codes, CHAIN)
    assert res.correct == res.total == n * r**k
    assert res.margin == pytest.approx(1 - coherence(codes), abs=1e-9)
    assert res.attention_off_target == 0.0  # hard attention, exactly, in float64
    model, _ = build_chain(facts, codes)
    subjects, chains = facts.query_arrays(0, 5)
    predicted = model(facts.tokens(subjects, chains)).argmax(1).tolist()
    assert predicted == [
        brute_path(facts, x, c)[-1] for x, c in zip(subjects, chains.tolist(), strict=True)
    ]


@SMALL
@given(sizes)
def test_ck_decodes_every_intermediate_entity(case: tuple[int, ...]) -> None:
    n, r, k, seed = case
    facts = ChainFacts(n, r, k, seed)
    codes = minimal_codes(n, seed)
    model, _ = build_cot(facts, codes)
    subjects, chains = facts.query_arrays()
    decoded = greedy_decode(model, facts, subjects, chains)
    expected = [brute_path(facts, x, c) for x, c in zip(subjects, chains.tolist(), strict=True)]
    assert decoded.predictions.tolist() == expected
    assert float(decoded.margins.min()) == pytest.approx(1 - coherence(codes), abs=1e-9)
    res = multihop.verify(facts, codes, COT)
    assert (res.correct, res.step_correct) == (res.total, res.total * k)


def test_ck_stays_correct_at_k_6() -> None:
    """Longer than any chain in the construction's other tests and specs (k <= 4)."""
    facts = ChainFacts(24, 2, 6, seed=3)
    res = multihop.verify(facts, minimal_codes(24, 3), COT)
    assert res.correct == res.total == 24 * 2**6
    assert res.step_correct == res.total * 6
    assert res.attention_off_target == 0.0


def test_a_wrong_entity_code_is_caught_at_its_step() -> None:
    """A corrupted embedding row breaks the steps that read it, and the failure is reported."""
    facts = ChainFacts(16, 2, 2, seed=2)
    codes = minimal_codes(16, 2)
    codes[5] = codes[6]  # entities 5 and 6 now share a code: the decoder cannot tell them apart
    res = multihop.verify(facts, codes, COT)
    assert res.correct < res.total
    assert res.counterexample is not None
    x, chain, step = (res.counterexample[key] for key in ("subject", "chain", "step"))
    assert res.counterexample["expected"] == brute_path(facts, x, chain)[step - 1]


@SMALL
@given(sizes, st.integers(1, 24))
def test_registry_formulas_count_the_built_models(case: tuple[int, ...], m: int) -> None:
    n, r, k, seed = case
    facts = ChainFacts(n, r, k, seed)
    codes = codebook("rademacher", n, m, seed)
    subs = {SYMBOLS["N"]: n, SYMBOLS["R"]: r, SYMBOLS["k"]: k, SYMBOLS["m"]: m}
    for build, dim, width, params, built in (
        (build_chain, GK_EMBEDDING_DIM, GK_MLP_WIDTH, GK_PARAMS, CHAIN),
        (build_cot, CK_EMBEDDING_DIM, CK_MLP_WIDTH, CK_PARAMS, COT),
    ):
        model, layout = build(facts, codes)
        counted = (model.cfg.d_model, model.cfg.d_mlp, model.n_params())
        assert tuple(int(sp.Integer(e.subs(subs))) for e in (dim, width, params)) == counted
        sizes = built.size(SizeParams(n, r, m, hops=k))
        assert (sizes.d_model, sizes.d_mlp, sizes.params) == counted
        assert (layout.d_model, layout.d_mlp) == counted[:2]


# --- LBk ---------------------------------------------------------------------------------------


def brute_lbk(facts: ChainFacts) -> list[float]:
    """Per subject: reveal the full chain tree with Python sets, sum the last level's bits."""
    n, r_count, k = facts.n_entities, facts.n_relations, facts.hops
    bits = []
    for x in range(n):
        level, shallower = [x], set()
        for _ in range(k - 1):
            shallower |= set(level)
            level = [int(facts.perms[r][y]) for y in level for r in range(r_count)]
        new = set(level) - shallower
        free = n - len(shallower)
        bits.append(r_count * sum(math.log2(free - i) for i in range(len(new))))
    return bits


@SMALL
@given(sizes)
def test_lbk_is_the_exact_tree_sum(case: tuple[int, ...]) -> None:
    n, r, k, seed = case
    facts = ChainFacts(n, r, k, seed)
    value, expected = lbk_bits(facts), brute_lbk(facts)
    assert value.min_bits == pytest.approx(min(expected), rel=1e-12)
    assert value.avg_bits == pytest.approx(sum(expected) / n, rel=1e-12)
    assert value.avg_bits <= value.approx_bits + 1e-9 == r**k * math.log2(n) + 1e-9


def test_lbk_at_one_hop_is_r_log2_n() -> None:
    value = lbk_bits(ChainFacts(64, 3, 1, seed=0))
    assert value.min_bits == pytest.approx(3 * 6.0) and value.avg_bits == pytest.approx(18.0)


# --- specs, budgets and bad input ----------------------------------------------------------------

SPEC = """\
name: mh
instance: {{kind: multi_hop, entities: {n}, relations: {r}, hops: {k}, cot: {cot}, seed: 2}}
claims:
  - id: c
    check: construction
    construction: {{name: {name}, code_dim: auto, margin: 0.01}}
    expect: {{accuracy: 1.0}}
"""


def test_construction_claim_dispatches_multi_hop_and_measures_everything() -> None:
    report = run_spec(load_spec_text(SPEC.format(n=32, r=2, k=3, cot="true", name="cot")))
    (result,) = report.results
    assert result.status == "passed", result.message
    measured: dict[str, Any] = result.measured
    d = measured["embedding_dim"]
    assert measured["decode_steps"] == 3 and measured["n_queries"] == 32 * 8
    assert d == 3 * measured["code_dim"] + 2 + 2
    assert measured["params"] == COT.size(SizeParams(32, 2, measured["code_dim"], hops=3)).params
    assert measured["dim_per_lbk_bit"] == pytest.approx(d / measured["lbk_bits_avg"])


def test_budget_claim_finds_the_depth_where_gk_stops_fitting() -> None:
    n, m = 32, smallest_code_dim("rademacher", 32, 0.99, 2, 512).m
    budget = CHAIN.size(SizeParams(n, 2, m, hops=2)).params  # Gk fits at k = 2 at its full m
    text = (
        SPEC.format(n=n, r=2, k=1, cot="COT", name="geometric")
        .replace("check: construction", "check: budget")
        .replace(
            "expect: {accuracy: 1.0}",
            f"budget: {{params: {budget}}}\n    max_hops: 4\n    expect: {{depth: '>= 1'}}",
        )
    )
    gk = run_spec(load_spec_text(text.replace("COT", "false"))).results[0]
    ck = run_spec(load_spec_text(text.replace("COT", "true"))).results[0]
    assert gk.measured["depth"] >= 2 and gk.measured["failed_at"] == gk.measured["depth"] + 1
    rows = gk.evidence["depths"]
    assert all(row["params"] <= budget for row in rows if row["code_dim"] > 0)
    assert not rows[-1]["solved"]
    assert ck.measured["depth"] == 4 and ck.measured["saturated"] is True


def test_too_many_queries_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("work started")

    monkeypatch.setattr(multihop, "verify", no_work)
    monkeypatch.setattr(widths, "smallest_code_dim", no_work)
    spec = load_spec_text(SPEC.format(n=1000, r=3, k=40, cot="false", name="chain"))
    with pytest.raises(LimitExceeded) as err:
        SpecRunner(spec, Limits()).preflight()
    count = f"{1000 * 3**40:,}"
    assert "max_queries = 4,000,000" in str(err.value) and count in str(err.value)
    with pytest.raises(LimitExceeded, match=r"is 8,000, over the limit max_queries = 1,000"):
        SpecRunner(
            load_spec_text(SPEC.format(n=1000, r=2, k=3, cot="true", name="cot")),
            Limits(max_queries=1000),
        ).preflight()


@pytest.mark.parametrize(
    ("instance", "key", "message"),
    [
        ("hops: 0", "instance.hops", "greater than or equal to 1 (got 0)"),
        ("hops: 2, chains: [[0, 5]]", "instance", "unknown relation 5; expected one of 0..2"),
        ("hops: 2, chains: [[0, 1, 2]]", "instance", "chains[0]: expected 2 relations (hops = 2)"),
        ("hops: 2, chains: [[0, 1], [0, 1]]", "instance", "chains[1]: repeats chains[0]"),
        ("hops: 2, chains: []", "instance.chains", "non-empty list of chains"),
        ("hops: 2, attributes: disjoint", "instance.attributes", "'shared'"),
    ],
)
def test_bad_instances_name_key_line_and_what_came(instance: str, key: str, message: str) -> None:
    text = f"""\
name: bad
instance: {{kind: multi_hop, entities: 16, relations: 3, {instance}}}
claims:
  - id: c
    check: construction
    construction: {{name: geometric}}
"""
    with pytest.raises(SpecError) as err:
        load_spec_text(text, file="bad.spec.yaml")
    assert err.value.line == 2 and err.value.key == key
    assert message in err.value.message


def test_budget_claim_bad_input() -> None:
    base = """\
name: b
instance: {{kind: {kind}, entities: 16, relations: 2{extra}}}
claims:
  - id: c
    check: budget
    construction: {{name: geometric}}
    budget: {budget}
    expect: {{depth: ">= 1"}}
"""
    with pytest.raises(SpecError, match="expected params, embedding_dim or both"):
        load_spec_text(base.format(kind="multi_hop", extra=", hops: 1", budget="{}"))
    spec = load_spec_text(base.format(kind="bijection", extra="", budget="{params: 100}"))
    with pytest.raises(SpecError, match="expected a multi_hop instance, got kind 'bijection'"):
        SpecRunner(spec).preflight()
    listed = load_spec_text(
        base.format(kind="multi_hop", extra=", hops: 1, chains: [[0]]", budget="{params: 100}")
    )
    with pytest.raises(SpecError, match="expected instance chains: all"):
        SpecRunner(listed).preflight()


# --- the construction a claim names (the registry's chain and cot; geometric deprecated) --------

NAMED = """\
name: named
instance: {{kind: multi_hop, entities: 16, relations: 2, hops: 2, cot: {cot}, seed: 4}}
claims:
  - id: c
    check: construction
    construction: {{name: {name}, codebook: onehot}}
    expect: {{accuracy: 1.0}}
"""


@pytest.mark.parametrize(
    ("name", "cot", "label", "steps"), [("chain", "false", "Gk", 1), ("cot", "true", "Ck", 2)]
)
def test_a_claim_names_chain_or_cot_and_the_registry_builds_it(
    name: str, cot: str, label: str, steps: int
) -> None:
    (result,) = run_spec(load_spec_text(NAMED.format(name=name, cot=cot))).results
    assert result.status == "passed", result.message
    assert result.evidence["construction"] == label and "deprecated" not in result.evidence
    assert result.measured["decode_steps"] == steps
    built = CHAIN if name == "chain" else COT
    sizes = built.size(SizeParams(16, 2, 16, hops=2))  # onehot: m = N
    assert (result.measured["embedding_dim"], result.measured["params"]) == (
        sizes.d_model,
        sizes.params,
    )


@pytest.mark.parametrize(("cot", "resolved"), [("false", "chain"), ("true", "cot")])
def test_geometric_on_chains_is_a_deprecated_alias_picked_by_cot(cot: str, resolved: str) -> None:
    (old,) = run_spec(load_spec_text(NAMED.format(name="geometric", cot=cot))).results
    (new,) = run_spec(load_spec_text(NAMED.format(name=resolved, cot=cot))).results
    assert old.status == new.status == "passed"
    assert old.measured == new.measured  # the same construction, the same figures
    note = old.evidence["deprecated"]
    assert note.startswith("deprecated:") and f"{{name: {resolved}}}" in note
    assert "deprecated" in old.message and "deprecated" not in new.message


@pytest.mark.parametrize(
    ("name", "cot", "message"),
    [
        ("compact", "false", "expected one of chain, cot for a multi_hop instance, got 'compact'"),
        ("chain", "true", "expected instance cot: false or name 'cot', got cot: true"),
        ("cot", "false", "expected instance cot: true or name 'chain', got cot: false"),
    ],
)
def test_a_construction_of_another_kind_or_mode_is_refused_naming_the_key(
    name: str, cot: str, message: str
) -> None:
    spec = load_spec_text(NAMED.format(name=name, cot=cot), file="named.spec.yaml")
    with pytest.raises(SpecError) as err:
        SpecRunner(spec).preflight()
    assert err.value.key is not None and err.value.key.endswith("c.construction.name")
    assert message in str(err.value)
