"""The symbols and params theorems share: the instance's N, R, k, A, the given p, delta, gamma,
m, and the measured parameter count P; and the instance's values of them."""

from __future__ import annotations

from typing import Any

import sympy as sp

from verifier.spec.formulas import SYMBOLS
from verifier.theory.declarations import Param

N, R, k = SYMBOLS["N"], SYMBOLS["R"], SYMBOLS["k"]
m, p, delta = SYMBOLS["m"], SYMBOLS["p"], SYMBOLS["delta"]
A = sp.Symbol("A", positive=True, integer=True)  # attributes: N (shared) or R*N (disjoint)
gamma = sp.Symbol("gamma", positive=True)
P = sp.Symbol("P", positive=True, integer=True)

INSTANCE_PARAMS: tuple[Param, ...] = (
    Param(N, "entities", instance=True),
    Param(R, "relations", instance=True),
    Param(k, "hops (1 for a bijection instance)", instance=True),
    Param(A, "attributes: N (shared) or R*N (disjoint)", instance=True),
)
PRECISION = Param(p, "bits per stored parameter", given="precision_bits")
DELTA = Param(
    delta, "failure probability of the random codebook", given="delta", default=sp.Rational(1, 100)
)
GAMMA = Param(
    gamma,
    "target margin 1 - mu (coherence mu <= 1 - gamma)",
    given="gamma",
    default=sp.Rational(1, 2),
)
PARAM_COUNT = Param(P, "parameter count of the model", given="params", measured="params")


def instance_values(instance: Any) -> dict[str, int]:
    """N, R, k and A of a validated instance model."""
    n, r = int(instance.entities), int(instance.relations)
    disjoint = getattr(instance, "attributes", "shared") == "disjoint"
    return {"N": n, "R": r, "k": int(getattr(instance, "hops", 1)), "A": n * r if disjoint else n}


def instance_exprs(instance: Any, over: str) -> dict[str, sp.Expr]:
    """Instance values as exact sympy numbers, except ``over`` (left free) and A in it."""
    values: dict[str, sp.Expr] = {
        name: sp.Integer(v) for name, v in instance_values(instance).items() if name != over
    }
    disjoint = getattr(instance, "attributes", "shared") == "disjoint"
    if over in ("N", "R"):
        values["A"] = (values.get("N", N) * values.get("R", R)) if disjoint else values.get("N", N)
    return values


CODE_DIM = Param(m, "code width m", given="code_dim")
