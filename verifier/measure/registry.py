"""Plugin mechanism measures (entry point group ``verifier.measures``, :mod:`verifier.plugins`).

A plugin measure is a function ``(model, facts) -> MeasureResult`` of
:mod:`verifier.measure.mechanism`'s kind: ``model`` a float64
:class:`~verifier.model.OneLayerTransformer`, ``facts`` its
:class:`~verifier.facts.bijections.BijectionFacts`. A training claim with ``mechanism: true`` on a
bijection instance runs it on each trained model when its ``expect`` (or search) names it; the
built-in measures (:data:`verifier.measure.mechanism.MEASURES`) run on every such claim.

This module imports no torch: the spec language reads :func:`plugin_measure_names` (the
installed entry points' names, nothing imported) to accept a plugin measure in ``expect``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from verifier import plugins

GROUP = "verifier.measures"
# The built-in mechanism measures, in report order: the one list of their names. Each is the
# function of that name in :mod:`verifier.measure.mechanism` (``(model, facts) -> MeasureResult``),
# except the INIT_MEASURES, which run another measure on the untrained model of the same seed.
MECHANISM_MEASURES: tuple[str, ...] = (
    "superposition_r2",  # 8-fold cross-validated R^2 of e_s ~ b + sum_r M_r u_(pi_r(s))
    "probe_accuracy",  # held-out component decoding: argmin_j |e_s - b - M_r u_j|
    "functional_superposition",  # facts recalled with e_s replaced by its held-out fit
    "selector_linearity",  # held-out R^2 of an affine fit of MLP output on e_s, per relation
    "gated_fraction",  # hard gating: MLP units off for one relation and on for another
    "relation_gating",  # graded: sum_i (max_r p_ir - min_r p_ir) / sum_i max_r p_ir, vs chance
    "relation_gating_init",  # relation_gating of the untrained model (same seed): its baseline
    "relu_necessity",  # held-out recall: MLP as affine maps per relation vs one shared map
    "intervention_success",  # swapping relation r's component changes only relation r
)
# Measures a training claim also reports on the untrained model of each replicate's seed (its
# initial weights), by name: a trained value means something only beside its start.
INIT_MEASURES: dict[str, str] = {"relation_gating_init": "relation_gating"}
PLUGIN_MEASURES: dict[str, Callable[..., Any]] = {}


def register_plugin(name: str, obj: object) -> None:
    """Register a plugin's measure function under its entry point's ``name``.

    Raises:
        TypeError: ``obj`` is not callable.
        ValueError: the name is taken.
    """
    if not callable(obj):
        raise TypeError(f"expected a measure function (model, facts), got {type(obj).__name__}")
    if name in PLUGIN_MEASURES and PLUGIN_MEASURES[name] is not obj:
        raise ValueError(f"measure {name!r} is already registered")
    PLUGIN_MEASURES[name] = obj


def plugin_measure_names() -> tuple[str, ...]:
    """The installed plugin measures' names, in order (from the metadata: imports nothing)."""
    return tuple(p.name for p in plugins.entry_points(GROUP))


def plugin_measure(name: str) -> Callable[..., Any]:
    """The plugin measure ``name``, loaded now.

    Raises:
        KeyError: no plugin provides it; the message says why (a failure to load, or absent).
    """
    plugins.load(GROUP)
    if name not in PLUGIN_MEASURES:
        raise KeyError(f"measure {name!r}" + plugins.missing("measure", name, GROUP))
    return PLUGIN_MEASURES[name]
