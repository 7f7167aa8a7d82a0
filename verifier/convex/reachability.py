"""Which attributes a frozen unembedding lets win: P1 on the columns of ``W_U`` (docs/theory.md 6).

With ``W_U`` frozen, the logits are ``h^T W_U`` for the final hidden state h, so attribute t can
be the strict argmax of *some* hidden state exactly when P1's program on the columns ``u_j``
of ``W_U`` has a positive optimum:

    gamma_t = max_{|v|_inf <= 1} min_{j != t} (u_t - u_j)^T v > 0.

The program is homogeneous (the box only sets the scale), so the sign of ``gamma_t`` is what
matters, and P1's checked sandwich (:mod:`verifier.convex.codebook_margin`, float64) decides it:

- **reachable**: a checked primal point v with ``min_j (u_t - u_j)^T v > 0``; the cheap
  candidate ``v = u_t`` is tried first (it wins whenever ``|u_t|^2 > max_j <u_t, u_j>``, always
  for distinct unit columns), and only the others go to the LP;
- **unreachable**: a checked dual point, multipliers ``lambda`` on the simplex with
  ``upper = || u_t - sum_j lambda_j u_j ||_1 <= UNREACHABLE_TOL``: then for every hidden state,
  ``h^T u_t - max_j h^T u_j <= upper |h|_inf`` - u_t lies (to float64 rounding) in the convex
  hull of the other columns, and no width, step count or learning rate changes that;
- otherwise **undecided** (reported, never counted either way).

A Gaussian column of small norm in low dimension falls inside the hull of the others (seen:
attribute 9 at N = 65, d = 11); unit-norm columns (``model.unit_norm: [W_U]``, the peer's
geometry) never do, since every point of the sphere is extreme.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

UNREACHABLE_TOL = 1e-9  # dual bound on the margin per unit |h|_inf below which t cannot win
SHOWN = 5  # attributes named in a message
_CACHE: dict[str, Reachability] = {}
_CACHE_SIZE = 64


@dataclass(frozen=True)
class Reachability:
    """Per attribute of a frozen ``W_U``: can it be the strict argmax of some hidden state?

    Attributes:
        n_out: attributes (columns of ``W_U``).
        dim: d_model (rows of ``W_U``).
        unreachable: attributes certified never to win (dual bound <= UNREACHABLE_TOL).
        undecided: attributes certified neither way.
        certificates: per unreachable or undecided attribute, P1's checked sandwich: the
            bounds and the dual support (the convex combination of other columns).
    """

    n_out: int
    dim: int
    unreachable: tuple[int, ...]
    undecided: tuple[int, ...] = ()
    certificates: dict[int, dict[str, Any]] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        """JSON-ready summary: the unreachable attributes and their certificates."""
        return {
            "program": "P1 on the columns of the frozen W_U (docs/theory.md section 6)",
            "n_attributes": self.n_out,
            "unreachable": list(self.unreachable),
            "undecided": list(self.undecided),
            "tolerance": UNREACHABLE_TOL,
            "certificates": {str(t): c for t, c in self.certificates.items()},
        }

    def message(self) -> str:
        """One line naming the unreachable attributes and the first one's certificate."""
        if not self.unreachable:
            return "every attribute is reachable"
        shown = ", ".join(map(str, self.unreachable[:SHOWN]))
        more = f" and {len(self.unreachable) - SHOWN} more" if len(self.unreachable) > SHOWN else ""
        t = self.unreachable[0]
        cert = self.certificates[t]
        combo = " + ".join(f"{w:.3g} u_{j}" for j, w in cert["dual_support"][:4])
        return (
            f"attribute(s) {shown}{more} of {self.n_out} can never be the argmax of the frozen "
            f"W_U: P1 certifies u_{t} (norm {cert['norm']:.3g}) inside the convex hull of the "
            f"other columns, u_{t} ~ {combo} (margin <= {cert['upper']:.2g} |h|_inf for every "
            f"hidden state h)"
        )


def reachability(W_U: np.ndarray) -> Reachability:
    """Certify, column by column, which attributes of a frozen ``W_U`` ``(d, n_out)`` can win.

    Results are cached by the matrix's bytes, so a claim's preflight and its search share them.

    Raises:
        SolverError: an LP did not end ``optimal``.
    """
    U = np.ascontiguousarray(W_U, dtype=np.float64)
    key = hashlib.sha256(U.tobytes() + str(U.shape).encode()).hexdigest()
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _certify(U)
    return _CACHE[key]


def _certify(U: np.ndarray) -> Reachability:
    codes = U.T  # (n_out, d): one code per attribute
    n, d = codes.shape
    if n < 2:
        return Reachability(n, d, ())
    gram = codes @ codes.T
    own = np.diag(gram).copy()
    np.fill_diagonal(gram, -np.inf)
    # v = u_t: margin |u_t|^2 - max_j <u_t, u_j>, a checked primal point when positive
    hard = [int(t) for t in np.flatnonzero(own - gram.max(axis=1) <= 0)]
    if not hard:
        return Reachability(n, d, ())
    from verifier.convex.codebook_margin import codebook_margin

    result = codebook_margin(codes, box=1.0, targets=hard)
    unreachable: list[int] = []
    undecided: list[int] = []
    certificates: dict[int, dict[str, Any]] = {}
    for cert in result.certificates:
        if cert.lower > 0:
            continue
        (unreachable if cert.upper <= UNREACHABLE_TOL else undecided).append(cert.target)
        certificates[cert.target] = {
            "lower": cert.lower,
            "upper": cert.upper,
            "norm": float(np.sqrt(own[cert.target])),
            "dual_support": [[int(j), float(w)] for j, w in cert.support],
        }
    return Reachability(n, d, tuple(sorted(unreachable)), tuple(sorted(undecided)), certificates)
