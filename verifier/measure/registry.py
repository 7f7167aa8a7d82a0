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
