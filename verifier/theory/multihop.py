"""Multi-hop sizes and the LBk bound (docs/theory.md 5): sympy formulas and the exact tree sum.

Formulas (symbols N, R, k, m of :mod:`verifier.spec.formulas`; ``C = R**k`` chains):

- Gk: ``d = C m + k R + m + 2``, ``d_mlp = 2 C m``, ``H = k``, ``L = k + 1``.
- Ck: ``d = R m + R + m + 2``, ``d_mlp = 2 R m``, ``H = 1``, ``L = 2 k``.
- Both: ``d_head = max(R, 2)`` and the section 2 count
  ``params = (N + R) d + L d + 4 H d d_head + 2 d d_mlp + d_mlp + d + d N``.
- LBk: ``H(T_x) >~ R**k log2 N`` bits, so ``d >= R**k log2(N) / p`` (closed form).

:func:`lbk_bits` evaluates the bound exactly on the seeded instance: for each subject x, reveal
its chain tree level by level; at the last level relation r maps the depth-(k-1) points ``S_r``
on which ``pi_r`` is not yet revealed, uniformly and injectively, into the ``N - |D_r|`` values
not yet used (``D_r``: the points where ``pi_r`` was revealed at shallower levels), worth
``log2((N - |D_r|)! / (N - |D_r| - |S_r|)!)`` bits. Summed over r this is
``H(T_x | shallower levels) <= H(T_x)``, for the realised shallower tree of x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp
from scipy.special import gammaln

from verifier.spec.formulas import SYMBOLS
from verifier.theory import (
    DELTA,
    G1_CODE_LENGTH,
    GAMMA,
    INSTANCE_PARAMS,
    PARAM_COUNT,
    PRECISION,
    P,
    Param,
    Quantity,
    Theorem,
    register_theorem,
)

if TYPE_CHECKING:  # the registry is served by the API process, which never imports torch
    from verifier.facts.chains import ChainFacts

N, R, k, m = SYMBOLS["N"], SYMBOLS["R"], SYMBOLS["k"], SYMBOLS["m"]
D_HEAD = sp.Max(R, 2)
POS_CODE = 2


def params_formula(d: sp.Expr, d_mlp: sp.Expr, heads: sp.Expr, n_ctx: sp.Expr) -> sp.Expr:
    """docs/theory.md section 2's parameter count (vocabulary N + R, N outputs)."""
    return (N + R) * d + n_ctx * d + 4 * heads * d * D_HEAD + 2 * d * d_mlp + d_mlp + d + d * N


GK_EMBEDDING_DIM: sp.Expr = R**k * m + k * R + m + POS_CODE
GK_MLP_WIDTH: sp.Expr = 2 * R**k * m
GK_PARAMS: sp.Expr = params_formula(GK_EMBEDDING_DIM, GK_MLP_WIDTH, k, k + 1)

CK_EMBEDDING_DIM: sp.Expr = R * m + R + m + POS_CODE
CK_MLP_WIDTH: sp.Expr = 2 * R * m
CK_PARAMS: sp.Expr = params_formula(CK_EMBEDDING_DIM, CK_MLP_WIDTH, sp.Integer(1), 2 * k)

LBK_APPROX_BITS: sp.Expr = R**k * sp.log(N, 2)
LBK_MIN_EMBEDDING_DIM: sp.Expr = LBK_APPROX_BITS / SYMBOLS["p"]
NO_COT_DEPTH_AT_BUDGET: sp.Expr = sp.log(P / (N * m), R)


def evaluate(expr: sp.Expr, **values: int | float) -> float:
    """A formula at numeric symbol values (``evaluate(GK_PARAMS, N=256, R=2, k=3, m=16)``)."""
    subs = {SYMBOLS.get(name, sp.Symbol(name, positive=True)): v for name, v in values.items()}
    return float(expr.subs(subs))


def size_of(
    cot: bool, n: int, n_rel: int, hops: int, code_dim: int, n_chains: int | None = None
) -> tuple[int, int, int]:
    """``(d_model, d_mlp, params)`` of Gk (``cot`` False, ``n_chains`` slots) or Ck, exactly.

    The integer twin of the sympy formulas above (tests check they agree and match the models).
    """
    c = n_rel**hops if n_chains is None else n_chains
    slots, blocks, heads, n_ctx = (n_rel, 1, 1, 2 * hops) if cot else (c, hops, hops, hops + 1)
    d = slots * code_dim + blocks * n_rel + code_dim + POS_CODE
    w = 2 * slots * code_dim
    dh = max(n_rel, 2)
    params = (n + n_rel) * d + n_ctx * d + 4 * heads * d * dh + 2 * d * w + w + d + d * n
    return d, w, params


@dataclass(frozen=True)
class LBkValue:
    """LBk evaluated on the seeded chain trees.

    Attributes:
        min_bits: min over x of ``H(T_x | shallower levels)``.
        avg_bits: its average over x.
        argmin: a subject attaining the minimum.
        approx_bits: the closed form ``|C| log2 N``.
    """

    min_bits: float
    avg_bits: float
    argmin: int
    approx_bits: float


def _distinct_per_row(a: np.ndarray) -> np.ndarray:
    """Number of distinct values in each row of a 2-d int array (0 for empty rows)."""
    if a.shape[1] == 0:
        return np.zeros(a.shape[0], dtype=np.int64)
    s = np.sort(a, axis=1)
    return np.asarray(1 + (np.diff(s, axis=1) != 0).sum(axis=1))


def _log2_falling(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log2(a! / (a - b)!)`` elementwise, via lgamma."""
    return np.asarray(gammaln(a + 1.0) - gammaln(a - b + 1.0)) / math.log(2.0)


def lbk_bits(facts: ChainFacts, chunk: int = 65_536) -> LBkValue:
    """LBk on the seeded instance's chain trees (the chains of ``facts``), min and mean over x.

    Work and memory are ``O(N * nodes)`` in chunks of ``chunk`` tree entries, where ``nodes``
    is the number of prefixes of the chains.
    """
    n, k = facts.n_entities, facts.hops
    chains = facts.all_chains()  # (|C|, k)
    # prefixes of length l (0..k-1) as sorted unique tuples; points are their values at x
    prefixes = [sorted({tuple(c[:length]) for c in chains.tolist()}) for length in range(k)]
    # for each relation r: shallower edges (prefix of length < k-1 followed by r) and last-level
    # edges (prefix of length k-1 followed by r)
    shallow_sets: list[set[tuple[int, ...]]] = [set() for _ in range(facts.n_relations)]
    last_sets: list[set[tuple[int, ...]]] = [set() for _ in range(facts.n_relations)]
    for c in chains.tolist():
        for length in range(k):
            (last_sets if length == k - 1 else shallow_sets)[c[length]].add(tuple(c[:length]))
    shallow, last = [sorted(s) for s in shallow_sets], [sorted(s) for s in last_sets]
    nodes = sum(len(p) for p in prefixes)
    step = max(1, chunk // max(1, nodes))
    bits_all = np.zeros(n)
    for start in range(0, n, step):
        xs = np.arange(start, min(n, start + step), dtype=np.int64)
        values: dict[tuple[int, ...], np.ndarray] = {(): xs}
        for length in range(1, k):
            for p in prefixes[length]:
                values[p] = facts.perms[p[-1], values[p[:-1]]]
        bits = np.zeros(len(xs))
        for r in range(facts.n_relations):
            if not last[r]:
                continue
            dom = np.stack([values[p] for p in shallow[r]], 1) if shallow[r] else xs[:, None][:, :0]
            new = np.stack([values[p] for p in last[r]], 1)
            size_dom = _distinct_per_row(dom)
            size_new = _distinct_per_row(np.concatenate([dom, new], axis=1)) - size_dom
            bits += _log2_falling((n - size_dom).astype(np.float64), size_new.astype(np.float64))
        bits_all[xs] = bits
    argmin = int(bits_all.argmin())
    return LBkValue(
        min_bits=float(bits_all[argmin]),
        avg_bits=float(bits_all.mean()),
        argmin=argmin,
        approx_bits=facts.n_chains * math.log2(n),
    )


# --- the registry entries (verifier.theory imports this module as a provider on first lookup) --

_CODE_WIDTH = Param(
    m,
    "code width (default: G1's union-bound code length, unrounded)",
    given="code_dim",
    default=G1_CODE_LENGTH,
)
_HARD_ATTENTION = (
    "shared attributes",
    "codebook coherence mu < 1",
    "hard positional attention (docs/theory.md section 5)",
)

GK = register_theorem(
    Theorem(
        id="Gk",
        statement="Without chain-of-thought, a one-layer transformer with R^k chain slots, k "
        "positional heads and a ReLU-AND gate recalls all N R^k queries with margin 1 - mu.",
        source="reconstruction",
        params=(*INSTANCE_PARAMS, _CODE_WIDTH, DELTA, GAMMA),
        quantities=(
            Quantity("embedding_dim", GK_EMBEDDING_DIM, "d = R^k m + k R + m + 2"),
            Quantity("mlp_width", GK_MLP_WIDTH, "d_mlp = 2 R^k m"),
            Quantity("params", GK_PARAMS, "section 2's count with H = k heads, L = k + 1"),
            Quantity("fact_params", N * GK_EMBEDDING_DIM, "the subject table N d"),
        ),
        assumptions=_HARD_ATTENTION,
    ),
    replace=True,
)

LBK = register_theorem(
    Theorem(
        id="LBk",
        statement="With a fact-independent decoder and p-bit weights, d p >= H(T_x), about "
        "R^k log2 N bits while R^k << N.",
        source="reconstruction",
        params=(*INSTANCE_PARAMS, PRECISION, PARAM_COUNT, _CODE_WIDTH, DELTA, GAMMA),
        quantities=(
            Quantity("bits", LBK_APPROX_BITS, "R^k log2 N: the closed form of H(T_x)"),
            Quantity("min_embedding_dim", LBK_MIN_EMBEDDING_DIM, "d >= R^k log2(N) / p"),
            Quantity(
                "depth_at_budget",
                NO_COT_DEPTH_AT_BUDGET,
                "k = log_R(P / (N m)): the depth a budget of P parameters reaches without CoT",
            ),
        ),
        assumptions=("uniform random bijections", "only the subject table depends on the facts"),
    ),
    replace=True,
)

CK = register_theorem(
    Theorem(
        id="Ck",
        statement="With chain-of-thought, G1's selector plus one head attending k positions back "
        "recalls all N R^k queries by k greedy steps, each with margin 1 - mu.",
        source="reconstruction",
        params=(*INSTANCE_PARAMS, _CODE_WIDTH, DELTA, GAMMA),
        quantities=(
            Quantity("embedding_dim", CK_EMBEDDING_DIM, "d = R m + R + m + 2"),
            Quantity("mlp_width", CK_MLP_WIDTH, "d_mlp = 2 R m"),
            Quantity("params", CK_PARAMS, "section 2's count with H = 1 head, L = 2 k"),
            Quantity("decode_steps", k, "k greedy steps"),
        ),
        assumptions=_HARD_ATTENTION,
    ),
    replace=True,
)
