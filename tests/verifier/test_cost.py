"""The cost model of preflight (verifier/engine/cost.py): how estimates scale, and the refusal
over max_job_flops / max_job_memory naming the claim and the setting."""

from __future__ import annotations

import pytest

from verifier.engine.cost import POINT_OVERHEAD, STOP_SHARE, Cost, lp_flops, search_values
from verifier.engine.runner import SpecRunner
from verifier.errors import LimitExceeded
from verifier.limits import Limits
from verifier.spec import load_spec_text

TRAINING = """\
name: cost
instance: {kind: bijection, entities: 64, relations: 2, seed: 0}
claims:
  - id: t
    check: training
    model: {d_model: 16, d_mlp: 64}
    optim: {lr: 3e-3, steps: STEPS}
    expect: {accuracy: ">= 0"}
"""


def estimate(text: str, limits: Limits | None = None) -> dict[str, Cost]:
    return SpecRunner(load_spec_text(text), limits or Limits()).estimate()


def training(steps: int = 100, extra: str = "") -> str:
    return TRAINING.replace("STEPS", str(steps)).replace("    expect:", extra + "    expect:")


def test_training_flops_grow_with_steps_replicates_and_sweep_points() -> None:
    base = estimate(training(100))["t"]
    assert base.flops > 0 and base.memory > 0
    work = base.flops - POINT_OVERHEAD
    assert estimate(training(200))["t"].flops - POINT_OVERHEAD == pytest.approx(2 * work, rel=0.01)
    replicated = estimate(training(100, "    seeds: [0, 1, 2, 3]\n"))["t"]
    assert replicated.flops - POINT_OVERHEAD == pytest.approx(4 * work, rel=1e-9)
    assert replicated.memory == pytest.approx(4 * base.memory, rel=1e-9)  # one stack
    swept = estimate(training(100, "    sweep: {seed: [0, 1, 2]}\n"))["t"]
    assert swept.flops == pytest.approx(3 * base.flops, rel=1e-9)
    assert swept.memory == pytest.approx(base.memory, rel=1e-9)  # points run one at a time


def test_a_forward_pass_costs_what_its_matmuls_do() -> None:
    # N R = 128 examples of 2 tokens; d = 16, d_mlp = 64, 64 outputs; 3 passes per step
    fwd = 2.0 * (2 * (4 * 16 * 16 + 2 * 16 * 64) + 16 * 64)
    expected = 100 * 3 * fwd * 128 + fwd * 128 + POINT_OVERHEAD
    assert estimate(training(100))["t"].flops == pytest.approx(expected, rel=1e-9)


def test_lp_and_search_counts() -> None:
    assert lp_flops(1000, 10) == 50 * 1000 * 10 * 10
    assert search_values(1, 1) == 2 and search_values(1, 1024) == 22


def test_over_max_job_flops_is_refused_naming_claim_estimate_and_setting() -> None:
    runner = SpecRunner(load_spec_text(training(100)), Limits(max_job_flops=10**6))
    with pytest.raises(LimitExceeded) as info:
        runner.preflight()
    said = str(info.value)
    assert info.value.name == "max_job_flops"
    assert "claim 't'" in said and "VERIFIER_MAX_JOB_FLOPS" in said
    assert f"{int(runner.estimate()['t'].flops):,}" in said


def test_over_max_job_memory_is_refused() -> None:
    runner = SpecRunner(load_spec_text(training(100)), Limits(max_job_memory=1000))
    with pytest.raises(LimitExceeded, match="max_job_memory"):
        runner.preflight()


def test_the_issue_specs_are_refused_with_default_limits() -> None:
    huge = training(100_000).replace("entities: 64, relations: 2", "entities: 100000, relations: 1")
    with pytest.raises(LimitExceeded, match="max_job_flops"):
        SpecRunner(load_spec_text(huge.replace("d_mlp: 64", "d_mlp: 16384")), Limits()).preflight()
    many = training(100_000, f"    seeds: {list(range(16))}\n")
    many = many.replace("entities: 64, relations: 2", "entities: 4096, relations: 1")
    with pytest.raises(LimitExceeded, match="max_job_flops"):
        SpecRunner(load_spec_text(many), Limits()).preflight()


def test_early_stopping_is_expected_near_the_claims_own_bound_and_refused_on_all_steps() -> None:
    full = estimate(training(1000))["t"]
    bounded = estimate(training(1000).replace('">= 0"}', '">= 0", steps_to_perfect: "<= 200"}'))
    t = bounded["t"]
    assert t.flops == full.flops  # the worst case, what limits judge: every step
    assert full.likely == full.flops  # no bound said: every step is expected
    work = full.flops - POINT_OVERHEAD
    share = STOP_SHARE * 200 / 1000  # the expected stop: STOP_SHARE of the claim's bound
    assert t.likely - POINT_OVERHEAD == pytest.approx(work * share, rel=0.02)


def test_claims_training_the_same_models_share_one_training_in_the_expected_figure() -> None:
    second = "  - id: u\n" + TRAINING.split("  - id: t\n")[1]
    both = estimate(training(100) + second.replace("STEPS", "100"))
    assert both["u"].flops == both["t"].flops  # alone (-k), each would train
    shared, own = (both[k].likely - POINT_OVERHEAD for k in ("u", "t"))
    assert 0 < shared < own / 50  # in one run the second only measures


CERTIFIED_100K = """\
name: c
instance: {kind: bijection, entities: 100000, relations: 4, seed: 7}
claims:
  - id: exact-100k
    check: construction
    construction: {name: geometric, codebook: rademacher, code_dim: auto, margin: 0.5}
    expect: {accuracy: 1.0}
"""


def test_certified_recall_is_priced_in_chunks_not_as_an_n_by_n_gram() -> None:
    cost = estimate(CERTIFIED_100K)["exact-100k"]
    assert cost.memory < 8 * 2**30  # the N x N Gram matrix alone would be 80 GB
    assert cost.memory > 2**30  # the model itself: W_E and W_U of 100,000 rows, float64
    assert cost.likely < cost.flops / 5  # most facts skip the N-wide unembedding
    SpecRunner(load_spec_text(CERTIFIED_100K), Limits()).preflight()  # admitted


def test_p3_nonzeros_match_the_programs_own_count() -> None:
    from verifier.convex.associative import p3_nonzeros as programs_own
    from verifier.engine.cost import p3_nonzeros

    for args in [(64, 32, 8, 5), (2048, 1024, 16, 399), (1, 1, 1, 0)]:
        assert p3_nonzeros(*args) == programs_own(*args)


LP_49M = """\
name: lp
instance: {kind: bijection, entities: 49000, relations: 1, seed: 0}
claims:
  - id: p1-49m
    check: feasibility
    program: codebook_margin
    construction: {name: geometric, codebook: rademacher, code_dim: 999}
    min_margin: 0.001
    expect: {status: feasible}
"""


def test_a_49m_entry_p1_just_under_max_lp_entries_is_refused_by_its_work() -> None:
    assert Limits().max_lp_entries > 48_999 * 1_000  # every per-program limit passes
    runner = SpecRunner(load_spec_text(LP_49M), Limits())
    with pytest.raises(LimitExceeded) as info:
        runner.preflight()
    said = str(info.value)
    assert info.value.name == "max_job_flops"
    assert "claim 'p1-49m'" in said and "VERIFIER_MAX_JOB_FLOPS" in said
    assert f"{int(runner.estimate()['p1-49m'].flops):,}" in said  # one LP per target: 49,000
