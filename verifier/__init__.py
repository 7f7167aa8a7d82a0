"""Declarative verification of geometric factual-recall claims (docs/theory.md).

The Python door, for notebooks and scripts::

    import verifier

    reports = verifier.check("specs/single_hop")  # the options of `verifier check`
    reports[0]  # in Jupyter: the verdict table and plots
    reports[0].to_pandas()  # one row per claim result

:func:`check`, :func:`load_spec`, :class:`Report` and the errors they raise are the public API
(docs/python.md); the first three are imported on first use, so ``import verifier`` stays
cheap. Everything else is private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from verifier.errors import LimitExceeded, SpecError, VerifierError

__version__ = "0.1.0"
__all__ = [
    "LimitExceeded",
    "Report",
    "SpecError",
    "VerifierError",
    "__version__",
    "check",
    "load_spec",
]

if TYPE_CHECKING:
    from verifier.engine.report import Report
    from verifier.public import check, load_spec


def __getattr__(name: str) -> Any:
    """The public API, imported on first use (torch and the solvers load only then)."""
    if name in ("check", "load_spec"):
        from verifier import public

        return getattr(public, name)
    if name == "Report":
        from verifier.engine.report import Report

        return Report
    raise AttributeError(f"module 'verifier' has no attribute {name!r}")
