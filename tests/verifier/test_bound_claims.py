"""The ``bound`` claim end to end: evaluation, ``against``, limits/orders, and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from verifier.cli import app
from verifier.engine.runner import run_spec
from verifier.errors import SpecError
from verifier.spec import load_spec_text

HEAD = """\
name: case
instance: {kind: bijection, entities: 256, relations: 4, seed: 0}
claims:
"""
RECALL = """\
  - id: exact-recall
    check: construction
    construction: {name: geometric, codebook: rademacher, code_dim: 16}
"""


def run(claims: str) -> dict[str, tuple[str, str]]:
    report = run_spec(load_spec_text(HEAD + claims, file="case.spec.yaml"))
    return {r.key: (r.status, r.message) for r in report.results}


def test_lb1_against_a_construction_uses_its_params() -> None:
    report = run_spec(
        load_spec_text(
            HEAD
            + RECALL
            + """\
  - id: lb1
    check: bound
    theorem: LB1
    given: {precision_bits: 64}
    against: exact-recall
    expect: {measured_embedding_dim: ">= min_embedding_dim", bits_per_param: "< 1"}
"""
        )
    )
    result = next(r for r in report.results if r.key == "lb1")
    assert result.status == "passed"
    recall = next(r for r in report.results if r.key == "exact-recall")
    assert result.measured["measured_params"] == recall.measured["params"]
    assert result.evidence["values"]["P"] == recall.measured["params"]


def test_refuted_bound_fails() -> None:
    out = run("""\
  - id: too-strong
    check: bound
    theorem: LB1
    given: {precision_bits: 16}
    expect: {min_embedding_dim: ">= R*log2(N)/16"}
""")
    assert out["too-strong"][0] == "failed"


def test_given_formula_and_default_symbols_in_expectations() -> None:
    out = run("""\
  - id: g1
    check: bound
    theorem: G1
    given: {delta: "1/N", gamma: 0.5}
    expect: {code_length: "== 8*log(N**3)", embedding_dim: "== R*m + R + m"}
""")
    assert out["g1"][0] == "passed", out


@pytest.mark.parametrize(
    "claim,match",
    [
        ("theorem: G9", r"claims.0.theorem: unknown theorem 'G9'; expected one of G1, LB1"),
        ("theorem: LB1\n    expect: {min_embedding_dim: '>= q*N'}", r"unknown symbol 'q'"),
        ("quantities: {x: 'N + zeta'}", r"quantities.x: .*unknown symbol 'zeta'"),
        ("theorem: LB1\n    given: {bits: 3}", r"given.bits: unknown given; expected one of"),
        ("theorem: LB1\n    expect: {measured_params: '> 0'}", r"unknown measure"),
        ("theorem: G1\n    limit: 'params / N'", r"limit: expected an expectation on limit"),
        ("theorem: G1\n    order: 'params ~ N'", r"expected '<formula> = <class>"),
        ("theorem: G1\n    versus: [G1]", r"versus: expected distinct theorems"),
        ("quantities: {N: '2'}", r"quantities.N: expected a new identifier"),
        ("against: nothing\n    theorem: G1", r"refers to claim 'nothing'"),
    ],
    ids=[
        "unknown-theorem",
        "undefined-symbol",
        "undefined-symbol-in-quantity",
        "unknown-given",
        "measured-without-against",
        "limit-without-expectation",
        "bad-order",
        "duplicate-versus",
        "quantity-shadows-symbol",
        "unknown-against",
    ],
)
def test_bad_bound_claims_are_spec_errors_with_line(claim: str, match: str) -> None:
    text = HEAD + "  - id: b\n    check: bound\n    " + claim + "\n"
    with pytest.raises(SpecError, match=match) as info:
        load_spec_text(text, file="case.spec.yaml")
    assert info.value.file == "case.spec.yaml" and info.value.line is not None


@pytest.mark.parametrize(
    "quantity,match",
    [
        ("(N - 300)**(1/3)", r"evaluates to \(.*j\) at N=256; expected a finite real number"),
        ("log(N - 300)", r"cannot be evaluated at N=256: math domain error"),
        ("exp(690)*N**5", r"evaluates to inf at N=256; expected a finite real number"),
        ("N**200", r"an integer above float64's range"),
        ("exp(N*10)", r"cannot be evaluated at N=256: math range error"),
    ],
    ids=["complex", "domain", "non-finite", "huge-int", "overflow"],
)
def test_bad_values_are_errors(quantity: str, match: str) -> None:
    out = run(
        f"  - id: q\n    check: bound\n    quantities: {{x: '{quantity}'}}\n"
        f"    expect: {{x: '> 0'}}\n"
    )
    status, message = out["q"]
    assert status == "error"
    assert re.search(match, message), message


def test_gamma_one_divides_by_zero() -> None:
    out = run(
        "  - id: g\n    check: bound\n    theorem: G1\n    given: {gamma: 1}\n"
        "    expect: {params: '>= 1'}\n"
    )
    assert out["g"][0] == "error" and "division by zero" in out["g"][1]


def test_missing_value_names_what_to_set() -> None:
    out = run("""\
  - id: bpp
    check: bound
    theorem: LB1
    given: {precision_bits: 8}
    expect: {bits_per_param: "< 1"}
""")
    assert out["bpp"][0] == "error"
    assert "bits_per_param needs P" in out["bpp"][1] and "`given:`" in out["bpp"][1]


def test_against_measure_that_does_not_exist() -> None:
    report = run_spec(
        load_spec_text(
            HEAD
            + RECALL
            + """\
  - id: b
    check: bound
    theorem: G1
    against: exact-recall
    expect: {measured_depth: "<= 3"}
"""
        )
    )
    result = next(r for r in report.results if r.key == "b")
    assert result.status == "error"
    assert "claim 'exact-recall' measured no 'depth'" in result.message


def test_limits_and_orders_decide() -> None:
    out = run("""\
  - id: ratio
    check: bound
    theorem: G1
    versus: [LB1]
    given: {precision_bits: 16}
    limit: "embedding_dim / LB1_min_embedding_dim"
    expect: {limit_finite: true}
  - id: theta
    check: bound
    theorem: LB1
    given: {precision_bits: 16}
    order: "min_embedding_dim = Theta(log(N))"
  - id: wrong-order
    check: bound
    theorem: G1
    order: "embedding_dim = o(log(N))"
""")
    assert out["ratio"][0] == "passed"
    assert out["theta"][0] == "passed"
    assert out["wrong-order"][0] == "failed"


UNDECIDABLE = (
    HEAD
    + """\
  - id: undecided
    check: bound
    theorem: G1
    limit: "code_dim / log(N)"
    expect: {limit: 16}
"""
)


def test_undecidable_limit_is_undecided_and_exits_1(tmp_path: Path) -> None:
    report = run_spec(load_spec_text(UNDECIDABLE))
    [result] = report.results
    assert result.status == "undecided"
    assert "ceiling" in result.message
    assert not report.passed
    path = tmp_path / "undecided.spec.yaml"
    path.write_text(UNDECIDABLE)
    cli = CliRunner().invoke(app, ["check", str(path), "--no-progress"])
    assert cli.exit_code == 1, cli.output
    assert "undecided" in cli.output


def test_swept_against_is_matched_point_by_point() -> None:
    report = run_spec(
        load_spec_text(
            HEAD
            + """\
  - id: recall
    check: construction
    construction: {name: geometric, codebook: rademacher, code_dim: 16}
    sweep: {N: [64, 128]}
  - id: same
    check: bound
    against: recall
    sweep: {N: [64, 128]}
    quantities: {d: "N"}
    expect: {measured_fact_params: "== N*measured_embedding_dim"}
"""
        )
    )
    assert [r.status for r in report.results if r.claim_id == "same"] == ["passed", "passed"]
    with pytest.raises(SpecError, match="expected this claim to have the same sweep"):
        load_spec_text(
            HEAD
            + """\
  - id: recall
    check: construction
    construction: {name: geometric, codebook: rademacher, code_dim: 16}
    sweep: {N: [64, 128]}
  - id: other
    check: bound
    theorem: G1
    against: recall
"""
        )
