"""The formula vocabulary's names, without sympy: what a spec may write, checked before parsing.

:mod:`verifier.spec.formulas` builds the sympy symbols of these names; the models and the
expectation parser import only this module, so loading a spec whose expectations hold no formula
never imports sympy.
"""

from __future__ import annotations

# The instance symbols: N, R, k, m, d are positive integers; p (bits) and delta (a probability)
# are positive reals.
SYMBOL_NAMES: tuple[str, ...] = ("N", "R", "k", "m", "d", "p", "delta")
REAL_SYMBOLS: frozenset[str] = frozenset({"p", "delta"})

COMPARATORS = ("<=", ">=", "==", "!=", "<", ">")
