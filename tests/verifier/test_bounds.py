"""The theorem registry (verifier/theory/__init__.py): every quantity against an independent numeric
computation, G1's counts against the model the construction builds, and the asymptotics."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
import sympy as sp
from typer.testing import CliRunner

from verifier import theory as bounds
from verifier.checks.construction import geometric_size
from verifier.cli import app
from verifier.constructions.codebooks import codebook
from verifier.constructions.geometric import build_geometric
from verifier.errors import SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.spec import BijectionInstance
from verifier.spec.formulas import SYMBOLS, parse_formula
from verifier.theory import (
    Param,
    Quantity,
    Theorem,
    get_theorem,
    limit_at_infinity,
    order_holds,
    register_theorem,
    split_order,
)
from verifier.theory import evaluate_expression as evaluate

LN2 = math.log(2)
Values = dict[str, float]


def log2_fact(n: float) -> float:
    return math.lgamma(n + 1) / LN2


def g1_code_length(v: Values) -> float:
    return 2 * math.log(v["N"] ** 2 / v["delta"]) / (1 - v["gamma"]) ** 2


def g1_sizes(v: Values) -> tuple[float, float, float]:
    """(d, w, params) of G1 at width m: counted tensor by tensor (docs/theory.md section 2)."""
    n, r, mm, a = v["N"], v["R"], v["m"], v["A"]
    d, w = r * mm + r + mm, 2 * r * mm
    tensors = [(n + r) * d, 2 * d, r * d, r * d, r * d, r * d, d * w, w, w * d, d, d * a]
    return d, w, sum(tensors)


def nlogn(v: Values) -> float:
    x = v["N"] * v["R"]
    return x * math.log(x)


# (theorem, quantity) -> independent computation from float inputs
INDEPENDENT: dict[tuple[str, str], Callable[[Values], float]] = {
    ("G1", "code_length"): g1_code_length,
    ("G1", "code_dim"): lambda v: math.ceil(g1_code_length(v)),
    ("G1", "embedding_dim"): lambda v: g1_sizes(v)[0],
    ("G1", "mlp_width"): lambda v: g1_sizes(v)[1],
    ("G1", "params"): lambda v: g1_sizes(v)[2],
    ("G1", "fact_params"): lambda v: v["N"] * g1_sizes(v)[0],
    ("G1", "mlp_params"): lambda v: (
        2 * g1_sizes(v)[0] * g1_sizes(v)[1] + g1_sizes(v)[1] + g1_sizes(v)[0]
    ),
    ("LB1", "bits"): lambda v: v["R"] * log2_fact(v["N"]),
    ("LB1", "min_params"): lambda v: v["R"] * log2_fact(v["N"]) / v["p"],
    ("LB1", "min_embedding_dim"): lambda v: v["R"] * log2_fact(v["N"]) / (v["N"] * v["p"]),
    ("LB1", "approx_min_embedding_dim"): lambda v: (
        v["R"] * (math.log2(v["N"]) - math.log2(math.e)) / v["p"]
    ),
    ("LB1", "bits_per_param"): lambda v: v["R"] * log2_fact(v["N"]) / v["P"],
    ("NLB24", "facts"): lambda v: v["N"] * v["R"],
    ("NLB24", "mlp_params"): lambda v: v["N"] * v["R"],
    ("BARNFIELD26", "memory_params"): nlogn,
    ("BARNFIELD26", "embedding_dim"): lambda v: math.sqrt(nlogn(v)),
    ("BARNFIELD26", "params"): lambda v: (
        (v["N"] + v["R"] + v["A"]) * math.sqrt(nlogn(v)) + nlogn(v)
    ),
}


def chain_sizes(v: Values, cot: bool) -> tuple[float, float, float]:
    """(d, d_mlp, params) of Gk (cot False) or Ck, docs/theory.md sections 2 and 5."""
    n, r, k, m = v["N"], v["R"], v["k"], v["m"]
    slots, blocks, heads, n_ctx = (r, 1, 1, 2 * k) if cot else (r**k, k, k, k + 1)
    d = slots * m + blocks * r + m + 2
    w = 2 * slots * m
    params = (n + r) * d + n_ctx * d + 4 * heads * d * max(r, 2) + 2 * d * w + w + d + d * n
    return d, w, params


INDEPENDENT.update(
    {
        ("Gk", "embedding_dim"): lambda v: chain_sizes(v, cot=False)[0],
        ("Gk", "mlp_width"): lambda v: chain_sizes(v, cot=False)[1],
        ("Gk", "params"): lambda v: chain_sizes(v, cot=False)[2],
        ("Gk", "fact_params"): lambda v: v["N"] * chain_sizes(v, cot=False)[0],
        ("Ck", "embedding_dim"): lambda v: chain_sizes(v, cot=True)[0],
        ("Ck", "mlp_width"): lambda v: chain_sizes(v, cot=True)[1],
        ("Ck", "params"): lambda v: chain_sizes(v, cot=True)[2],
        ("Ck", "decode_steps"): lambda v: v["k"],
        ("LBk", "bits"): lambda v: v["R"] ** v["k"] * math.log2(v["N"]),
        ("LBk", "min_embedding_dim"): lambda v: v["R"] ** v["k"] * math.log2(v["N"]) / v["p"],
        ("LBk", "depth_at_budget"): lambda v: (
            math.log(v["P"] / (v["N"] * v["m"])) / math.log(v["R"])
        ),
    }
)
BUILTIN = ("G1", "LB1", "NLB24", "BARNFIELD26", "Gk", "LBk", "Ck")
POINTS = [
    {"N": 2, "R": 2, "k": 3, "A": 2, "m": 3, "p": 8, "delta": 0.5, "gamma": 0.1, "P": 10},
    {
        "N": 256,
        "R": 4,
        "k": 2,
        "A": 256,
        "m": 29,
        "p": 16,
        "delta": 0.01,
        "gamma": 0.5,
        "P": 123_457,
    },
    {
        "N": 10**9,
        "R": 7,
        "k": 1,
        "A": 7 * 10**9,
        "m": 512,
        "p": 64,
        "delta": 1e-6,
        "gamma": 0.75,
        "P": 10**12,
    },
]


def test_every_builtin_quantity_has_an_independent_check() -> None:
    listed = {(t, q) for t in BUILTIN for q in get_theorem(t).quantity_names}
    assert listed == set(INDEPENDENT)


@pytest.mark.parametrize("point", POINTS, ids=lambda v: f"N={v['N']}")
@pytest.mark.parametrize("key", sorted(INDEPENDENT), ids=lambda k: f"{k[0]}.{k[1]}")
def test_quantity_matches_independent_computation(key: tuple[str, str], point: Values) -> None:
    theorem = get_theorem(key[0])
    supplied = frozenset(point) & {p.name for p in theorem.params}
    got = evaluate(theorem.resolved(supplied)[key[1]], point)
    want = INDEPENDENT[key]({k: float(v) for k, v in point.items()})
    assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12), (got, want)


def test_integer_counts_are_exact_ints_at_n_1e9() -> None:
    g1 = get_theorem("G1")
    point = {"N": 10**9 + 7, "R": 13, "A": 10**9 + 7, "m": 1021}
    got = evaluate(g1.resolved(frozenset(point))["params"], point)
    n, r, m = point["N"], point["R"], point["m"]
    d, w = r * m + r + m, 2 * r * m
    assert isinstance(got, int)
    assert got == (n + r) * d + 2 * d + 4 * d * r + 2 * d * w + w + d + d * n


def test_log2_factorial_at_1e9_uses_lgamma_not_n_factorial() -> None:
    lb1 = get_theorem("LB1")
    bits = evaluate(lb1.resolved(frozenset({"N", "R"}))["bits"], {"N": 10**9, "R": 1})
    # Stirling with the 1/(12N) term: exact to float precision at this N
    n = 1e9
    stirling = (n * math.log(n) - n + 0.5 * math.log(2 * math.pi * n) + 1 / (12 * n)) / LN2
    assert math.isclose(bits, stirling, rel_tol=1e-13)


def test_g1_default_code_width_is_the_union_bound() -> None:
    g1 = get_theorem("G1")
    resolved = g1.resolved(frozenset({"N", "R", "A"}))  # m, delta, gamma from defaults
    v = {"N": 4096, "R": 4, "A": 4096}
    m = 2 * math.log(4096**2 / 0.01) / 0.25
    assert math.isclose(evaluate(resolved["embedding_dim"], v), 4 * m + 4 + m, rel_tol=1e-12)
    assert evaluate(resolved["code_dim"], v) == math.ceil(m)


# --- consistency with the construction -----------------------------------------------------


@pytest.mark.parametrize("disjoint", [False, True], ids=["shared", "disjoint"])
@pytest.mark.parametrize("n,r,m", [(2, 1, 1), (5, 2, 3), (16, 3, 4), (64, 1, 7), (33, 4, 2)])
def test_g1_registry_counts_equal_the_built_model(n: int, r: int, m: int, disjoint: bool) -> None:
    facts = BijectionFacts(n_entities=n, n_relations=r, seed=3, disjoint=disjoint)
    codes = codebook("rademacher", facts.n_attributes, m, seed=3)
    model, layout = build_geometric(facts, codes)
    instance = BijectionInstance(
        kind="bijection", entities=n, relations=r, attributes="disjoint" if disjoint else "shared"
    )
    values = {**bounds.instance_values(instance), "m": m}
    resolved = get_theorem("G1").resolved(frozenset(values))
    counts = {
        q: evaluate(resolved[q], values)
        for q in ("embedding_dim", "mlp_width", "params", "fact_params", "mlp_params")
    }
    assert counts["params"] == model.n_params()
    assert counts["embedding_dim"] == layout.d_model == model.cfg.d_model
    assert counts["mlp_width"] == layout.d_mlp == model.cfg.d_mlp
    assert counts["fact_params"] == model.W_E[:n].numel()
    mlp = model.W_in.numel() + model.b_in.numel() + model.W_out.numel() + model.b_out.numel()
    assert counts["mlp_params"] == mlp
    assert geometric_size(instance, m) == (
        counts["embedding_dim"],
        counts["mlp_width"],
        counts["params"],
    )


# --- registry API ------------------------------------------------------------------------------


def test_register_theorem_validates_and_refuses_duplicates() -> None:
    n = SYMBOLS["N"]
    with pytest.raises(ValueError, match="already registered"):
        register_theorem(Theorem("G1", "dup", "user", bounds.INSTANCE_PARAMS, ()))
    with pytest.raises(ValueError, match="needs a citation"):
        Theorem("X1", "s", "literature", bounds.INSTANCE_PARAMS, ())
    with pytest.raises(ValueError, match="undeclared symbols"):
        Theorem("X1", "s", "user", (), (Quantity("q", n, "n"),))
    with pytest.raises(ValueError, match="expected letters and digits"):
        Theorem("X-1", "s", "user", (), ())
    z = sp.Symbol("z", positive=True)
    with pytest.raises(ValueError, match="cycle"):
        Theorem("X1", "s", "user", (Param(z, "z", default=z + 1),), ())


def test_unknown_theorem_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"unknown theorem 'G9'; expected one of G1, LB1"):
        get_theorem("G9")


def test_to_dict_has_text_and_latex() -> None:
    d = get_theorem("LB1").to_dict()
    assert d["source"] == "reconstruction"
    bits = next(q for q in d["quantities"] if q["name"] == "bits")
    assert "gamma(N + 1)" in bits["text"] and r"\Gamma" in bits["latex"]
    assert {s["name"]: s["set_by"] for s in d["symbols"]}["P"] == "given.params | against.params"
    assert get_theorem("NLB24").to_dict()["citation"].startswith("Nichani, Lee, Bietti (2024)")


def test_cli_theorems_json_and_text() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["theorems", "--json"])
    assert result.exit_code == 0
    entries = {t["id"]: t for t in json.loads(result.output)}
    assert set(BUILTIN) <= set(entries)
    assert entries["BARNFIELD26"]["source"] == "literature"
    text = runner.invoke(app, ["theorems"])
    assert text.exit_code == 0
    assert "min_embedding_dim = R*log(gamma(N + 1))/(N*p*log(2))" in text.output
    assert r"latex: \frac{R \log{\left(\Gamma\left(N + 1\right) \right)}}" in text.output


# --- evaluation errors -----------------------------------------------------------------------


def test_evaluate_rejects_complex_nonfinite_and_missing() -> None:
    n = SYMBOLS["N"]
    with pytest.raises(SpecError, match=r"evaluates to \(.*j\) at N=256; expected a finite"):
        evaluate(parse_formula("(N - 300)**(1/3)").expr, {"N": 256})
    with pytest.raises(SpecError, match="cannot be evaluated at N=256: math domain error"):
        evaluate(sp.log(n - 300), {"N": 256})
    with pytest.raises(SpecError, match="evaluates to inf"):
        evaluate(parse_formula("1e300*N*N").expr, {"N": 1e6})
    with pytest.raises(SpecError, match="math range error"):
        evaluate(sp.exp(n), {"N": 1e6})
    with pytest.raises(SpecError, match="needs N, which has no value"):
        evaluate(n + 1, {})


# --- asymptotics -------------------------------------------------------------------------------


def test_limits_are_classified() -> None:
    n = SYMBOLS["N"]
    assert limit_at_infinity(sp.log(n) / n, n).value == 0.0
    assert limit_at_infinity(n / sp.log(n), n).kind == "infinite"
    finite = limit_at_infinity(sp.loggamma(n + 1) / (n * sp.log(n)), n)
    assert finite.kind == "finite" and finite.value == 1.0
    osc = limit_at_infinity(sp.sin(n), n)
    assert osc.kind == "undecided" and (osc.low, osc.high) == (-1.0, 1.0)
    assert limit_at_infinity(n * SYMBOLS["R"], n).kind == "undecided"


def test_floor_and_ceiling_limits_are_never_decided() -> None:
    n = SYMBOLS["N"]
    # sympy's own answer here is oo, which is wrong (the expression is 0 or 1)
    parity = limit_at_infinity(n - 2 * sp.floor(n / 2), n)
    assert parity.kind == "undecided" and "floor" in parity.text
    assert limit_at_infinity(sp.ceiling(sp.log(n)) / sp.log(n), n).kind == "undecided"


@pytest.mark.parametrize(
    "cls,kind,value,want",
    [
        ("O", "finite", 0.0, True),
        ("Theta", "finite", 0.0, False),
        ("Theta", "finite", 2.0, True),
        ("Omega", "infinite", "oo", True),
        ("O", "infinite", "oo", False),
        ("o", "finite", 0.0, True),
        ("omega", "finite", 3.0, False),
    ],
)
def test_order_classes(cls: str, kind: bounds.LimitKind, value: float | str, want: bool) -> None:
    assert order_holds(cls, bounds.LimitResult(kind, value, "")) is want


def test_order_on_oscillation_uses_bounds_or_stays_undecided() -> None:
    osc = bounds.LimitResult("undecided", None, "", 1.0, 2.0)
    assert order_holds("Theta", osc) is True
    assert order_holds("o", osc) is None
    assert order_holds("O", bounds.LimitResult("undecided", None, "")) is None


def test_split_order() -> None:
    assert split_order("embedding_dim = Theta(R*log(N))") == ("embedding_dim", "Theta", "R*log(N)")
    with pytest.raises(SpecError, match="expected '<formula> = <class>"):
        split_order("embedding_dim ~ log(N)")


def test_lambdify_is_cached() -> None:
    expr = get_theorem("LB1").resolved(frozenset({"N", "R", "p"}))["min_embedding_dim"]
    before = bounds.compiled.cache_info()
    for n in (10, 100, 1000):
        evaluate(expr, {"N": n, "R": 2, "p": 8})
    after = bounds.compiled.cache_info()
    assert after.misses - before.misses <= 1
    assert after.hits - before.hits >= 2
    assert np.isfinite(evaluate(expr, {"N": 10**9, "R": 2, "p": 8}))
