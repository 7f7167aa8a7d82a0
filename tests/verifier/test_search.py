"""Minimal-resource searches (verifier/engine/search.py): doubling, bisection, both neighbours."""

from __future__ import annotations

import pytest

from verifier.bisection import find_minimum
from verifier.engine.runner import SpecRunner, run_spec
from verifier.errors import LimitExceeded, SpecError
from verifier.limits import Limits
from verifier.spec import load_spec_text


@pytest.mark.parametrize("threshold", [1, 2, 3, 7, 8, 9, 100, 1000])
@pytest.mark.parametrize("start", [1, 3])
def test_find_minimum_on_a_monotone_predicate(threshold: int, start: int) -> None:
    calls: list[int] = []

    def holds(v: int) -> bool:
        calls.append(v)
        return v >= threshold

    result = find_minimum(holds, start, 1000)
    assert result.minimum == max(threshold, start)
    assert result.below == (None if threshold <= start else threshold - 1)
    assert len(calls) == len(set(calls)) <= 2 * 10 + 2  # each value once, O(log max) values
    assert result.holds[result.minimum] is True
    if result.below is not None:
        assert result.holds[result.below] is False


def test_find_minimum_reports_not_found_up_to_max() -> None:
    result = find_minimum(lambda v: False, 1, 20)
    assert result.minimum is None and list(result.holds) == [1, 2, 4, 8, 16, 20]


SPEC = """\
name: search-case
instance: {{kind: bijection, entities: 128, relations: 2, seed: 3}}
claims:
  - id: smallest
    check: construction
    construction: {{name: geometric, codebook: rademacher, code_dim: 8}}
    minimize: {minimize}
    expect: {expect}
"""


def test_minimal_code_dim_by_search_and_its_neighbours_rechecked() -> None:
    text = SPEC.format(
        minimize="{field: code_dim, until: {accuracy: 1.0}, start: 1, max: 64}",
        expect="{accuracy: 1.0, minimum: '<= 64'}",
    )
    [result] = run_spec(load_spec_text(text)).results
    assert result.status == "passed", result.failure_text()
    search = result.evidence["search"]
    m = result.measured["minimum"]
    assert result.measured["code_dim"] == m == search["holds_at"]
    assert search["fails_at"] == m - 1
    # re-check both neighbours as plain claims, through the real forward pass
    for width, exact in ((m, True), (m - 1, False)):
        plain = SPEC.replace("    minimize: {minimize}\n", "").format(expect="{n_facts: 256}")
        plain = plain.replace("code_dim: 8", f"code_dim: {width}")
        [r] = run_spec(load_spec_text(plain)).results
        assert (r.measured["accuracy"] == 1.0) is exact


def test_search_range_over_a_limit_is_refused_before_work() -> None:
    text = SPEC.format(
        minimize="{field: code_dim, until: {accuracy: 1.0}, start: 1, max: 5000}", expect="{}"
    )
    runner = SpecRunner(load_spec_text(text), Limits(max_code_dim=4096))
    with pytest.raises(LimitExceeded, match="code_dim is 5,000, over the limit max_code_dim"):
        runner.preflight()


@pytest.mark.parametrize(
    ("minimize", "message"),
    [
        ("{field: depth, until: {accuracy: 1.0}}", "minimize field 'depth'"),
        ("{field: code_dim, until: {speed: 1.0}}", "minimize.until.speed: unknown measure"),
        ("{field: code_dim, until: {accuracy: 1.0}, start: 9, max: 4}", "expected max >= start"),
    ],
)
def test_bad_searches_are_refused(minimize: str, message: str) -> None:
    text = SPEC.format(minimize=minimize, expect="{}")
    with pytest.raises(SpecError, match=message):
        SpecRunner(load_spec_text(text)).preflight()


def test_a_searched_field_cannot_also_be_swept() -> None:
    text = SPEC.format(minimize="{field: code_dim, until: {accuracy: 1.0}}", expect="{}")
    text += "    sweep: {code_dim: [4, 8]}\n"
    with pytest.raises(SpecError, match="'code_dim' is searched, so it cannot be swept too"):
        load_spec_text(text)
