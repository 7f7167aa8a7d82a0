"""The verdict of a checked sandwich ``lower <= gamma* <= upper`` against a required margin."""

from __future__ import annotations

from typing import Literal

Status = Literal["feasible", "infeasible", "undecided"]


def sandwich_status(lower: float, upper: float, min_margin: float) -> Status:
    """``feasible``: ``gamma* >= min_margin`` is certified (``lower`` reaches it);
    ``infeasible``: ``gamma* < min_margin`` is (``upper`` is below it); else ``undecided``."""
    if lower >= min_margin:
        return "feasible"
    if upper < min_margin:
        return "infeasible"
    return "undecided"
