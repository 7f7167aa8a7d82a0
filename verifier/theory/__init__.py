"""Theorem registry: capacity bounds as sympy formulas (docs/theory.md sections 3-5).

Each :class:`Theorem` has an id, a one-line statement, its assumptions, its parameters (sympy
symbols declared with assumptions, each set by the instance, a ``given:`` key, the ``against:``
claim's measurement, or a default), named quantities (sympy expressions) and a source label:
``reconstruction`` (docs/theory.md's own statements and constants), ``literature`` (with a
citation) or ``user`` (defined inline in a spec).

One concern per module:

- :mod:`~verifier.theory.declarations`: :class:`Param`, :class:`Quantity`, :class:`Theorem`.
- :mod:`~verifier.theory.symbols`: the shared symbols and params, an instance's values.
- :mod:`~verifier.theory.sizes`: section 2's parameter count and each construction's shapes,
  the only place they are written, evaluated exactly.
- :mod:`~verifier.theory.builtin`: the built-in theorems, in registry order.
- :mod:`~verifier.theory.registry`: lookup by id, :func:`register_theorem`, the JSON form.
- :mod:`~verifier.theory.evaluate`: :func:`evaluate_expression`, the one evaluator of these
  expressions (exact ints where the inputs are, bounded intermediates).
- :mod:`~verifier.theory.asymptotics` (with :mod:`~verifier.theory.deadline`, SIGALRM):
  limits and O/Theta/Omega classes.
- :mod:`~verifier.theory.vocabulary`: what a bound claim's formulas may name.
- :mod:`~verifier.theory.multihop`: LBk's exact tree sum on a seeded instance.

A plugin adds a theorem by calling :func:`register_theorem` (write factorials as
``loggamma(N + 1)``, never ``factorial``, so that N up to 10^9 evaluates in microseconds)::

    from verifier.theory import CODE_DIM, INSTANCE_PARAMS, Quantity, Theorem, register_theorem

    register_theorem(Theorem(
        id="Mine",
        statement="...",
        source="user",
        params=(*INSTANCE_PARAMS, CODE_DIM),
        quantities=(Quantity("embedding_dim", R * m + R, "d_model"),),
    ))
"""

from verifier.theory.asymptotics import (
    ORDER_CLASSES,
    LimitKind,
    LimitResult,
    limit_at_infinity,
    order_holds,
    split_order,
)
from verifier.theory.builtin import BUILTIN_THEOREMS, COMPACT, G1
from verifier.theory.declarations import Param, Quantity, Source, Theorem
from verifier.theory.evaluate import (
    Number,
    compiled,
    evaluate_expression,
    exact_integer,
    exact_number,
)
from verifier.theory.registry import get_theorem, register_theorem, registry_json, theorems
from verifier.theory.sizes import SizeParams, Sizes, model_param_count
from verifier.theory.symbols import (
    CODE_DIM,
    INSTANCE_PARAMS,
    instance_exprs,
    instance_values,
)
from verifier.theory.vocabulary import (
    BOUND_MEASURE_NAMES,
    MAX_GIVEN,
    MEASURED_PREFIX,
    STANDARD_PARAMS,
    Vocabulary,
    claim_vocabulary,
    qualified,
)

__all__ = [
    "BOUND_MEASURE_NAMES",
    "BUILTIN_THEOREMS",
    "CODE_DIM",
    "COMPACT",
    "G1",
    "INSTANCE_PARAMS",
    "MAX_GIVEN",
    "MEASURED_PREFIX",
    "ORDER_CLASSES",
    "STANDARD_PARAMS",
    "LimitKind",
    "LimitResult",
    "Number",
    "Param",
    "Quantity",
    "SizeParams",
    "Sizes",
    "Source",
    "Theorem",
    "Vocabulary",
    "claim_vocabulary",
    "compiled",
    "evaluate_expression",
    "exact_integer",
    "exact_number",
    "get_theorem",
    "instance_exprs",
    "instance_values",
    "limit_at_infinity",
    "model_param_count",
    "order_holds",
    "qualified",
    "register_theorem",
    "registry_json",
    "split_order",
    "theorems",
]
