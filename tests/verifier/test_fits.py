"""The growth-law selector (verifier/engine/fits.py): synthetic data, and growth on swept specs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from verifier.engine.fits import (
    LAWS,
    MIN_POINTS,
    Law,
    fit_all,
    judge_growth,
    parse_growth,
    predict,
    select_law,
)
from verifier.engine.runner import SpecRunner, run_spec
from verifier.errors import LimitExceeded, SpecError
from verifier.limits import Limits
from verifier.render.plots import growth_png, write_plots
from verifier.spec import load_spec_text

# x ranges where the laws are meant to be told apart: sizes over decades, depths over 1..8
SIZES = np.array([2.0**e for e in range(2, 20, 2)])  # 4 .. 2^18
DEPTHS = np.arange(1.0, 9.0)

TRUTH: dict[Law, tuple[np.ndarray, tuple[float, float]]] = {
    "constant": (SIZES, (7.0, 0.0)),
    "logarithmic": (SIZES, (10.0, 5.0)),
    "linear": (SIZES, (40.0, 2.0)),  # an intercept: y = 2x alone is also a power law
    "polynomial": (SIZES, (2.0, 1.5)),
    "exponential": (DEPTHS, (3.0, 0.7)),
}


def noisy(law: Law, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points of a known law with multiplicative Gaussian noise of relative size ``noise``."""
    x, coef = TRUTH[law]
    y = predict(law, coef, x)
    g = np.random.default_rng(seed)
    return x, y * (1 + noise * g.standard_normal(len(x)))


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selector_picks_the_true_law_under_noise(law: Law, seed: int) -> None:
    x, y = noisy(law, 0.03, seed)
    assert select_law(x, y) == law
    verdict = judge_growth(x, y, law, [o for o in LAWS if o != law])
    assert verdict.verdict == "passed", verdict.reason


@pytest.mark.parametrize("law", ["logarithmic", "linear", "polynomial", "exponential"])
def test_a_wrong_law_fails(law: Law) -> None:
    x, y = noisy(law, 0.03, 7)
    wrong: Law = "constant" if law != "constant" else "linear"
    verdict = judge_growth(x, y, wrong, [law])
    assert verdict.verdict == "failed"
    assert law in verdict.reason


def test_log_and_small_power_cannot_be_told_apart_over_a_narrow_range() -> None:
    x = np.array([64.0, 96, 128, 192, 256])
    y = 10 + 5 * np.log(x)
    y = y * (1 + 0.02 * np.random.default_rng(3).standard_normal(len(x)))
    assert select_law(x, y) is None
    verdict = judge_growth(x, y, "logarithmic", ["polynomial"])
    assert verdict.verdict == "undecided"
    assert "polynomial" in verdict.reason


def test_pure_noise_is_undecided_between_growth_laws() -> None:
    x = SIZES[:6]
    y = 50 * (1 + 0.3 * np.random.default_rng(5).standard_normal(len(x)))
    assert judge_growth(x, y, "logarithmic", ["linear", "polynomial"]).verdict == "undecided"


@pytest.mark.parametrize("n", range(MIN_POINTS))
def test_too_few_points_is_undecided_never_passed(n: int) -> None:
    x = [2.0**e for e in range(4, 4 + n)]
    y = [10 + 5 * math.log(v) for v in x]  # exact logarithmic data
    verdict = judge_growth(x, y, "logarithmic", ["linear"])
    assert verdict.verdict == "undecided"
    assert f"at least {MIN_POINTS}" in verdict.reason


def test_repeats_at_one_x_count_once() -> None:
    x = [16.0, 16, 16, 32, 32, 32, 64, 64, 64]  # 3 distinct x, three seeds each
    y = [10 + 5 * math.log(v) + d for v in x[::3] for d in (-0.1, 0, 0.1)]
    assert judge_growth(x, y, "logarithmic", ["linear"]).verdict == "undecided"


def test_exact_flat_data_is_constant_and_nothing_else() -> None:
    x, y = DEPTHS[:5], np.full(5, 67.0)  # CoT's d: the same at every depth
    assert judge_growth(x, y, "constant", [o for o in LAWS if o != "constant"]).verdict == "passed"
    assert judge_growth(x, y, "linear", ["constant"]).verdict == "undecided"
    assert select_law(x, y) == "constant"


def test_bootstrap_intervals_cover_the_true_coefficients() -> None:
    x, y = noisy("linear", 0.02, 11)
    [fit] = fit_all(x, y, ["linear"], seed=4)
    assert fit.b_interval[0] <= 2.0 <= fit.b_interval[1]
    assert fit.b_interval[0] < fit.b < fit.b_interval[1]
    assert fit.b_interval[1] - fit.b_interval[0] < 0.2  # 2% noise: a tight slope
    [exp] = fit_all(*noisy("exponential", 0.02, 11), ["exponential"], seed=4)
    assert exp.b_interval[0] <= 0.7 <= exp.b_interval[1]


def test_fits_are_least_squares_in_their_own_coordinates() -> None:
    x = SIZES
    [poly] = fit_all(x, 2.0 * x**1.5, ["polynomial"])
    assert poly.a == pytest.approx(2.0) and poly.b == pytest.approx(1.5)
    [log] = fit_all(x, 10 + 5 * np.log(x), ["logarithmic"])
    assert (log.a, log.b) == (pytest.approx(10.0), pytest.approx(5.0))
    assert log.train_error < 1e-12
    [skip] = fit_all(x, np.zeros_like(x), ["exponential"])
    assert skip.skipped == "exponential needs y > 0"


# --- parsing and refusals --------------------------------------------------------------------

MEASURES = ("code_dim", "accuracy", "status")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"measure": "status", "over": "N", "law": "linear"}, "is a label, not a number"),
        ({"measure": "depth", "over": "N", "law": "linear"}, "unknown measure 'depth'"),
        ({"measure": "code_dim", "over": "R", "law": "linear"}, "expected a swept field (N)"),
        ({"measure": "code_dim", "over": "N", "law": "cubic"}, "law: expected one of"),
        ({"measure": "code_dim", "over": "N"}, "required key 'law' is missing"),
        ({"measure": "code_dim", "over": "N", "law": "linear", "factor": 0.5}, "factor"),
        (
            {"measure": "code_dim", "over": "N", "law": "linear", "against": ["linear"]},
            "against: expected laws other than 'linear'",
        ),
        ({"measure": "code_dim", "over": "N", "law": "linear", "fit": 1}, "unknown key 'fit'"),
    ],
)
def test_parse_growth_refuses_with_a_clear_message(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_growth(raw, MEASURES, ("status",), ["N"])


SPEC = """\
name: growth-case
instance: {{kind: bijection, entities: 64, relations: 1, seed: 1}}
claims:
  - id: c
    check: {check}
{body}
"""
G1 = "    construction: {name: geometric, codebook: rademacher, code_dim: auto, margin: 0.5}\n"


def test_growth_on_a_label_measure_is_refused_at_validation() -> None:
    body = (
        "    program: associative_width\n    embed_dim: 8\n    sweep: {N: [8, 16, 32, 64]}\n"
        "    expect:\n      growth: {measure: status, over: N, law: linear}\n"
    )
    with pytest.raises(SpecError) as err:
        load_spec_text(SPEC.format(check="feasibility", body=body), file="g.spec.yaml")
    text = err.value.render()
    assert "g.spec.yaml:" in text and "expect.growth" in text
    assert "'status' is a label, not a number" in text


def test_growth_without_a_sweep_is_refused_with_its_line() -> None:
    body = G1 + "    expect:\n      growth: {measure: code_dim, over: N, law: logarithmic}\n"
    with pytest.raises(SpecError) as err:
        load_spec_text(SPEC.format(check="construction", body=body), file="g.spec.yaml")
    assert "g.spec.yaml:8" in err.value.render()
    assert "needs a sweep" in err.value.render()


def test_a_grid_over_the_point_limit_is_refused_with_the_count() -> None:
    body = G1 + "    sweep: {N: [64, 128, 256], seed: [1, 2, 3, 4]}\n    expect: {accuracy: 1.0}\n"
    spec = load_spec_text(SPEC.format(check="construction", body=body), file="g.spec.yaml")
    with pytest.raises(LimitExceeded) as err:
        SpecRunner(spec, Limits(max_sweep_points=10))
    text = str(err.value)
    assert "is 12, over the limit max_sweep_points = 10" in text
    assert "N: 3 values x seed: 4 values" in text and "'c'" in text


def test_an_unknown_sweep_field_is_refused_naming_it() -> None:
    body = G1 + "    sweep: {depth: [1, 2]}\n    expect: {accuracy: 1.0}\n"
    spec = load_spec_text(SPEC.format(check="construction", body=body), file="g.spec.yaml")
    with pytest.raises(SpecError) as err:
        SpecRunner(spec)
    text = err.value.render()
    assert "g.spec.yaml:4" in text and "c.sweep.depth" in text
    assert "sweep field 'depth' is not an instance field" in text


# --- growth over a real sweep ----------------------------------------------------------------


def test_growth_result_on_a_swept_construction_and_its_plot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    body = (
        G1 + "    sweep: {N: [64, 128, 256, 512]}\n"
        "    expect:\n      accuracy: 1.0\n"
        "      growth: {measure: code_dim, over: N, law: logarithmic, against: [exponential]}\n"
    )
    spec = load_spec_text(SPEC.format(check="construction", body=body), file="g.spec.yaml")
    runner = SpecRunner(spec)
    assert runner.keys()[-1] == "c[growth]"
    report = runner.run()
    points, growth = report.results[:-1], report.results[-1]
    assert [r.key for r in points] == ["c[N=64]", "c[N=128]", "c[N=256]", "c[N=512]"]
    assert growth.key == "c[growth]" and growth.method == "empirical"
    [group] = growth.evidence["groups"]
    # the fit's data are the points' own measured code_dim values
    assert group["y"] == [float(r.measured["code_dim"]) for r in points]
    assert group["x"] == [64.0, 128.0, 256.0, 512.0]
    law_fit = next(f for f in group["fits"] if f["law"] == "logarithmic")
    lo, hi = law_fit["b_interval"]
    assert lo <= law_fit["b"] <= hi
    # the verdict is the fit selector's on the same data
    expected = judge_growth(group["x"], group["y"], "logarithmic", ["exponential"], seed=1)
    assert growth.status == expected.verdict
    png = growth_png(growth)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    [path] = write_plots([report], tmp_path)
    assert path.name == "growth-case__c-growth.png" and path.read_bytes() == png


def test_too_few_points_in_a_spec_is_undecided() -> None:
    body = (
        G1 + "    sweep: {N: [64, 128, 256]}\n"
        "    expect:\n      growth: {measure: code_dim, over: N, law: logarithmic}\n"
    )
    report = run_spec(load_spec_text(SPEC.format(check="construction", body=body)))
    growth = report.results[-1]
    assert growth.status == "undecided"
    assert "at least 4 distinct values" in growth.message
    assert not report.passed
