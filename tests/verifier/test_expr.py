"""The formula whitelist: what parses, what is refused, and that refusal executes nothing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from verifier.errors import FormulaError
from verifier.spec.formulas import parse_comparison, parse_formula


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("20*R*log(N)", {"N": 4096, "R": 8}, 20 * 8 * math.log(4096)),
        ("R*log2(N)/16 - 2", {"N": 1024, "R": 4}, 4 * 10 / 16 - 2),
        ("ceil(8*ln(N**2/delta))", {"N": 100, "delta": 0.01}, math.ceil(8 * math.log(1e6))),
        ("max(N, 2**R) + min(1, k)", {"N": 3, "R": 3, "k": 5}, 9),
        ("sqrt(m) * exp(0) - floor(2.5)", {"m": 16}, 2),
        ("log(N, 2)", {"N": 8}, 3),
        ("-d + +d", {"d": 7}, 0),
        ("0.1 * 3", {}, 0.30000000000000004),
    ],
)
def test_formulas_evaluate(text: str, values: dict[str, float], expected: float) -> None:
    assert parse_formula(text).evaluate(values) == pytest.approx(expected, rel=1e-12)


def test_decimal_constants_are_exact_rationals() -> None:
    import sympy as sp

    assert parse_formula("0.1").expr == sp.Rational(1, 10)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("__import__('os').system('touch PWNED')", "not allowed"),
        ("open('x')", "unknown function 'open'"),
        ("N.real", "Attribute is not allowed"),
        ("(1).__class__.__bases__", "Attribute is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("foo * N", "unknown symbol 'foo'"),
        ("N[0]", "Subscript is not allowed"),
        ("'text'", "the constant 'text' is not allowed"),
        ("[N, R]", "List is not allowed"),
        ("N if R else k", "IfExp is not allowed"),
        ("log(N, base=2)", "keyword argument is not allowed"),
        ("10**10**10", "overflows"),
        ("1/0", "division by zero"),
        ("sqrt(-1)", "undefined"),
        ("log(N", "not valid syntax"),
        ("N" + "+N" * 300, "characters"),
        ("sqrt(1, 2)", "takes 1 argument"),
    ],
)
def test_refused(text: str, fragment: str) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    assert fragment in str(info.value)


def test_refused_formula_executes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FormulaError):
        parse_comparison(">= __import__('os').system('touch PWNED')")
    with pytest.raises(FormulaError):
        parse_comparison('<= exec(\'open("PWNED", "w")\')')
    assert not (tmp_path / "PWNED").exists()


def test_comparison_operators() -> None:
    values = {"N": 10}
    assert parse_comparison("<= N").holds(10, values)
    assert not parse_comparison("< N").holds(10, values)
    assert parse_comparison("> N - 1").holds(10, values)
    assert parse_comparison("== 2*N/2").holds(10, values)
    assert parse_comparison("!= N").holds(9, values)
    with pytest.raises(FormulaError, match="expected '<op> formula'"):
        parse_comparison("N")


def test_non_finite_results_are_errors() -> None:
    with pytest.raises(FormulaError, match="cannot be evaluated"):
        parse_formula("2**N").evaluate({"N": 1e9})
    with pytest.raises(FormulaError, match="cannot be evaluated"):
        parse_formula("log(N - 4)").evaluate({"N": 2})
    with pytest.raises(FormulaError, match="has no value"):
        parse_formula("m * N").evaluate({"N": 2})
