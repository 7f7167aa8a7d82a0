"""The code width m of a construction, resolved in one place for every check.

``codebook: onehot`` fixes m to the number of codes (``code_dim`` must be ``auto`` or that
number); an integer ``code_dim`` is m; ``code_dim: auto`` is the exact search for the smallest m
whose seeded codebook has coherence ``mu <= 1 - margin``
(:func:`verifier.constructions.codebooks.smallest_code_dim`), up to the construction's width cap
(:meth:`verifier.constructions.base.Construction.widest_code_dim`, read from its size law within
``max_width`` and ``max_code_dim``). Checks call :func:`preflight_code_dim` (or its parts) before
any work and :func:`resolve_code_dim` when they run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from verifier.constructions.base import Construction
from verifier.constructions.codebooks import CodeSearch, smallest_code_dim
from verifier.errors import LimitExceeded, SpecError
from verifier.limits import Limits, require
from verifier.spec import CodebookConstruction
from verifier.theory.sizes import SizeParams, Sizes

AUTO_LIMITS = ("max_width", "max_code_dim")  # what bounds the widths code_dim auto may try


@dataclass(frozen=True)
class CodeWidth:
    """A resolved code width: ``m``, and for ``code_dim: auto`` its search and target."""

    m: int
    search: CodeSearch | None = None
    target_coherence: float | None = None

    def evidence(self) -> dict[str, Any]:
        """``{"code_search": ...}`` for a searched width, else nothing."""
        if self.search is None:
            return {}
        return {
            "code_search": {
                "target_coherence": self.target_coherence,
                "found": self.search.m,
                "widths_evaluated": self.search.evaluated,
            }
        }


def fixed_code_dim(spec: CodebookConstruction, n_codes: int, noun: str) -> int | None:
    """The width the spec fixes: ``n_codes`` for onehot, an integer ``code_dim``; None for auto.

    Args:
        spec: the claim's construction (``codebook``, ``code_dim``).
        n_codes: rows of the codebook (attributes of a bijection instance, entities of chains).
        noun: what the codes are, for messages ("attributes", "entities").

    Raises:
        SpecError: onehot with a ``code_dim`` other than ``auto`` or ``n_codes``.
    """
    if spec.codebook == "onehot":
        if spec.code_dim not in ("auto", n_codes):
            raise SpecError(
                f"codebook onehot: expected code_dim auto or {n_codes} (= {noun}), "
                f"got {spec.code_dim}"
            )
        return n_codes
    return None if spec.code_dim == "auto" else int(spec.code_dim)


def width_cap(built: Construction[Any, Any], params: SizeParams, limits: Limits) -> int:
    """The widest m ``code_dim: auto`` may try for ``built`` at ``params`` (its ``code_dim``
    ignored): within ``max_code_dim`` and, for ``d_model`` and ``d_mlp``, ``max_width``; 0: none."""
    return built.widest_code_dim(params, limits.max_width, limits.max_code_dim)


def require_size(built: Construction[Any, Any], params: SizeParams, limits: Limits) -> Sizes:
    """``built``'s sizes at ``params``, refused over ``max_width`` or ``max_weights``."""
    sizes = built.size(params)
    what = built.model
    require(
        "max_width",
        max(sizes.d_model, sizes.d_mlp),
        limits.max_width,
        f"{what}'s width (d_model, d_mlp)",
    )
    require("max_weights", sizes.params, limits.max_weights, f"{what}'s parameter count")
    return sizes


def require_code_dim(
    spec: CodebookConstruction, n_codes: int, noun: str, limits: Limits
) -> int | None:
    """The limits on the spec's code width alone: a fixed m within ``max_code_dim``; for auto,
    ``n_codes`` within ``max_auto_attributes`` (the search's last scan is ``O(n_codes^2 m)``).
    Returns the fixed m (None: auto)."""
    m = fixed_code_dim(spec, n_codes, noun)
    if m is None:
        require(
            "max_auto_attributes", n_codes, limits.max_auto_attributes, f"{noun} for code_dim auto"
        )
    else:
        what = f"code_dim (onehot: {noun})" if spec.codebook == "onehot" else "code_dim"
        require("max_code_dim", m, limits.max_code_dim, what)
    return m


def preflight_code_dim(
    spec: CodebookConstruction,
    built: Construction[Any, Any],
    params: SizeParams,
    n_codes: int,
    noun: str,
    limits: Limits,
) -> None:
    """Every limit of building ``built`` at the spec's code width, before any work: a fixed m
    and the model's size there; for auto, the codes and that some m >= 1 fits (else the size
    at m = 1 names the limit). ``params``: the size inputs (their ``code_dim`` ignored)."""
    m = require_code_dim(spec, n_codes, noun, limits)
    if m is not None:
        require_size(built, replace(params, code_dim=m), limits)
    elif width_cap(built, params, limits) < 1:
        require_size(built, replace(params, code_dim=1), limits)


def resolve_code_dim(
    spec: CodebookConstruction, n_codes: int, seed: int, cap: int, noun: str, goal: str
) -> CodeWidth:
    """The code width m: onehot's ``n_codes``, the integer ``code_dim``, or auto's exact
    search up to ``cap`` (:func:`width_cap`).

    Args:
        goal: the end of the refusal when ``cap < 1`` ("for this depth").

    Raises:
        SpecError: onehot with another ``code_dim``.
        LimitExceeded: auto with ``cap < 1``, or no width up to ``cap`` reaches ``1 - margin``.
    """
    m = fixed_code_dim(spec, n_codes, noun)
    if m is not None:
        return CodeWidth(m)
    if cap < 1:
        raise LimitExceeded.search_exhausted("code_dim auto", AUTO_LIMITS, cap, goal)
    target = 1 - spec.margin
    search = smallest_code_dim(spec.codebook, n_codes, target, seed, cap)
    return CodeWidth(search.m, search, target)
