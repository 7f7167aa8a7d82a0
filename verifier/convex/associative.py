"""P3, the associative baseline (docs/theory.md sections 3 and 6): how wide must a memory be?

Frozen random embeddings ``W_E`` (d wide), attention that adds the relation to the subject
(``h1 = 2 e_s + e_r``), a frozen random first MLP layer ``W_in`` of width w (ReLU features
``phi_f``), and a frozen random unembedding ``W_U``. Only ``W_out`` (w, d) is free, and every
margin is linear in it: ``(h1_f + phi_f W_out) (u_{y_f} - u_j) >= gamma`` for each fact f and
``j != y_f``, with ``|W_out|_inf <= box``. The LP maximises gamma.

The program handed to HiGHS is sparse: the residual write ``z_f = phi_f W_out`` (d numbers per
fact) is a variable tied to ``W_out`` by ``F d`` equality rows, so a margin row touches d + 1
columns instead of ``w d + 1``. ``|z_f|_inf <= box |phi_f|_1`` is implied by the box on
``W_out`` and is stated, so every variable is boxed and the dual bound below is finite.
The unembedding's columns are on the unit sphere, so every ``u_j`` is a vertex of their hull
and every attribute can win (with Gaussian columns in low d some ``u_j`` fall inside the hull
and no width recalls them). Margin rows are generated lazily: each fact starts with the hull's
edges at its answer (the facets of the answer's cone), every row is then checked with one
matrix product and the violated ones join, until none is violated or the sandwich has decided.

Certificates do not trust the solver. Lower bound: the solver's ``W_out``, clipped to the box,
is substituted in float64 and run through the real forward pass of
:class:`~verifier.model.OneLayerTransformer` over every fact. Upper bound: for any ``y >= 0``
on the margin rows and any ``mu`` on the equality rows, weak duality gives
``max gamma <= b^T y + sum_i max(r_i lo_i, r_i hi_i)`` with ``r = e_gamma - A^T y - E^T mu``;
it is evaluated in float64 plus an explicit bound on its rounding error (:func:`dual_upper`).
An upper bound below the required margin is the infeasibility certificate: the multipliers
prove that no ``W_out`` in the box reaches that margin on every fact. Rows outside the working
set only lower the maximum, so a working set's bound holds for the full program.

``W_in``'s columns are nested (width w is the first w columns of one seeded sequence), so a
feasible width stays feasible when columns are added (give them zero weight): feasibility is
monotone in w and bisection is sound.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.spatial import ConvexHull, QhullError

from verifier.convex.sandwich import Status, sandwich_status
from verifier.convex.solver import LinearProgram, SolverSettings, highs_linprog, solve_lp
from verifier.convex.working_set import WorkingSet, grow
from verifier.facts.bijections import BijectionFacts
from verifier.measure.recall import exact_recall
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.seeds import Stream, rng

_BLOCK = 64  # columns of W_in per seeded block
_EPS = float(np.finfo(np.float64).eps)
HIGHS_METHOD = "highs-ipm"  # interior point + crossover: the programs are dense in W_out
_HIGHS = functools.partial(highs_linprog, method=HIGHS_METHOD)


def associative_model(
    facts: BijectionFacts, embed_dim: int, width: int, seed: int
) -> OneLayerTransformer:
    """The frozen part of the baseline (``W_out = 0``), float64.

    ``W_E`` (vocab, d) and ``W_in`` (d, w) are standard normal over ``sqrt(d)``; ``W_U``
    (d, n_out) has standard normal columns scaled to unit length. ``W_V = I``, ``W_O = 2 I`` so
    uniform attention over ``[r, s]`` gives ``h1 = 2 e_s + e_r``.
    """
    d = embed_dim
    cfg = ModelConfig(
        n_vocab=facts.n_vocab,
        n_ctx=2,
        d_model=d,
        d_head=d,
        n_heads=1,
        d_mlp=width,
        n_out=facts.n_attributes,
    )
    model = OneLayerTransformer(cfg, dtype=torch.float64)
    scale = 1.0 / math.sqrt(d)
    w_e = rng(seed, Stream.BASELINE, 0).standard_normal((facts.n_vocab, d)) * scale
    blocks = [
        rng(seed, Stream.BASELINE, 1, b).standard_normal((d, _BLOCK)) * scale
        for b in range(math.ceil(width / _BLOCK))
    ]
    w_in = np.concatenate(blocks, axis=1)[:, :width]
    w_u = rng(seed, Stream.BASELINE, 2).standard_normal((d, facts.n_attributes))
    w_u /= np.linalg.norm(w_u, axis=0, keepdims=True)  # on the sphere: every u_j a vertex
    with torch.no_grad():
        model.W_E.copy_(torch.from_numpy(w_e))
        model.W_V[0].copy_(torch.eye(d, dtype=torch.float64))
        model.W_O[0].copy_(2.0 * torch.eye(d, dtype=torch.float64))
        model.W_in.copy_(torch.from_numpy(w_in))
        model.W_U.copy_(torch.from_numpy(w_u))
    return model


def width_guess(facts: BijectionFacts, embed_dim: int) -> int:
    """Where the width search starts: ``ceil(F (d - 1) / d)``.

    A counting estimate, not a claim: ``W_out`` has ``w d`` free numbers and each fact's
    answer cone in ``R^d`` pins about ``d - 1`` of its ``d`` output coordinates once the cones
    are narrow (many attributes). It only sets where the search starts.
    """
    return max(1, math.ceil(facts.n_facts * (embed_dim - 1) / embed_dim))


def p3_nonzeros(n_facts: int, n_out: int, embed_dim: int, width: int) -> int:
    """Most nonzeros P3 can hand the solver: ``F d (w + 1)`` equality + ``F (n_out - 1) (d + 1)``
    margin entries (every margin row in the working set)."""
    return n_facts * embed_dim * (width + 1) + n_facts * max(n_out - 1, 0) * (embed_dim + 1)


@dataclass(frozen=True)
class Features:
    """The frozen quantities of P3 at one width.

    Attributes:
        X: ``(F, d)`` h1 of each fact.
        Phi: ``(F, w)`` ReLU features.
        W_U: ``(d, n_out)`` unembedding.
        y: ``(F,)`` answers.
    """

    X: np.ndarray
    Phi: np.ndarray
    W_U: np.ndarray
    y: np.ndarray

    def margins(self, W_out: np.ndarray) -> np.ndarray:
        """``(F, n_out)`` logit of the answer minus logit j (``inf`` at the answer)."""
        logits = (self.X + self.Phi @ W_out) @ self.W_U
        rows = np.arange(len(self.y))
        gap = logits[rows, self.y][:, None] - logits
        gap[rows, self.y] = np.inf
        return np.asarray(gap)


@dataclass(frozen=True)
class AssociativeResult:
    """P3 at one width: the checked sandwich ``lower <= gamma* <= upper``.

    Attributes:
        width: w.
        lower: the margin of the checked ``W_out`` through the real forward pass.
        upper: the weak-duality bound at the solver's multipliers, with its rounding allowance.
        accuracy: facts recalled by the forward pass with that ``W_out``.
        max_violation: the solver's raw infeasibility (box, equality or margin rows) before
            the ``W_out`` it returned was clipped and re-checked.
        rows_used: margin rows in the final working set (of ``F (n_out - 1)``).
        rounds: solves.
        solver: the solver that answered.
    """

    width: int
    lower: float
    upper: float
    accuracy: float
    max_violation: float
    rows_used: int
    rounds: int
    solver: str

    def status(self, min_margin: float) -> Status:
        """feasible / infeasible (certified against ``min_margin``) or undecided."""
        return sandwich_status(self.lower, self.upper, min_margin)


@dataclass(frozen=True)
class _LP:
    """``max gamma  s.t.  A x <= b,  E x = 0,  lo <= x <= hi`` over
    ``x = (vec W_out (w d, row-major), vec z (F d), gamma)``."""

    A: sp.csr_matrix
    b: np.ndarray
    E: sp.csr_matrix
    lo: np.ndarray
    hi: np.ndarray


def _equalities(Phi: np.ndarray, d: int) -> sp.csr_matrix:
    """``E (F d, w d + F d + 1)``: row ``f d + i`` is ``z_{f,i} - sum_k Phi[f, k] W_out[k, i]``."""
    F, w = Phi.shape
    f, k = np.nonzero(Phi)
    vals = np.repeat(-Phi[f, k], d)
    i = np.tile(np.arange(d), len(f))
    rows = np.concatenate([np.repeat(f * d, d) + i, np.arange(F * d)])
    cols = np.concatenate([np.repeat(k * d, d) + i, w * d + np.arange(F * d)])
    data = np.concatenate([vals, np.ones(F * d)])
    return sp.csr_matrix((data, (rows, cols)), shape=(F * d, w * d + F * d + 1))


def _margin_rows(
    feats: Features, f: np.ndarray, j: np.ndarray, n_var: int
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows ``gamma - z_f du <= h1_f du`` with ``du = u_{y_f} - u_j``, one per pair ``(f, j)``."""
    d = feats.X.shape[1]
    w = feats.Phi.shape[1]
    du = (feats.W_U[:, feats.y[f]] - feats.W_U[:, j]).T  # (k, d)
    k = len(f)
    rows = np.concatenate([np.repeat(np.arange(k), d), np.arange(k)])
    cols = np.concatenate(
        [((w * d + f * d)[:, None] + np.arange(d)).ravel(), np.full(k, n_var - 1)]
    )
    data = np.concatenate([(-du).ravel(), np.ones(k)])
    A = sp.csr_matrix((data, (rows, cols)), shape=(k, n_var))
    return A, np.einsum("kd,kd->k", feats.X[f], du)


def dual_upper(lp: _LP, y: np.ndarray, mu: np.ndarray) -> float:
    """A float64 upper bound on ``max gamma`` from multipliers ``y`` (clipped to ``>= 0``), ``mu``.

    ``b^T y + sum_i max(r_i lo_i, r_i hi_i)`` with ``r = e_gamma - A^T y - E^T mu`` is valid for
    every ``y >= 0`` and ``mu`` (weak duality). Its float64 evaluation is off by at most
    ``gamma_n`` times the same sums over absolute values, ``gamma_n = n eps / (1 - n eps)``
    with n the longest dot product; twice that is added, so the returned number is a bound on
    the exact one.
    """
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    mu = np.asarray(mu, dtype=np.float64)
    c = np.zeros(lp.lo.shape[0])
    c[-1] = 1.0
    r = c - lp.A.T @ y - lp.E.T @ mu
    r_abs = np.abs(c) + abs(lp.A).T @ y + abs(lp.E).T @ np.abs(mu)
    reach = np.maximum(np.abs(lp.lo), np.abs(lp.hi))
    value = float(lp.b @ y + np.maximum(r * lp.lo, r * lp.hi).sum())
    n = max(lp.A.shape[0] + lp.E.shape[0], lp.A.shape[1]) + 2
    gamma_n = n * _EPS / (1 - n * _EPS)
    error = gamma_n * float(np.abs(lp.b) @ y + r_abs @ reach + np.abs(r) @ reach)
    return float(value + 2.0 * error)


def _solve(lp: _LP, settings: SolverSettings, what: str) -> tuple[np.ndarray, float, str]:
    """Solve to optimality with the first solver that manages it: ``(x, upper, solver)``.

    The upper bound is the smaller of :func:`dual_upper` at the multipliers and at the
    multipliers with the other sign convention for ``mu`` (both are valid bounds).

    Raises:
        SolverError: every solver failed, with each one's words.
    """
    c = np.zeros(lp.lo.shape[0])
    c[-1] = 1.0  # maximise gamma
    program = LinearProgram(c, lp.A, lp.b, lp.lo, lp.hi, lp.E)
    sol, name = solve_lp(program, settings, what, highs=_HIGHS)
    return sol.x, min(dual_upper(lp, sol.y, sol.mu), dual_upper(lp, sol.y, -sol.mu)), name


def neighbours(W_U: np.ndarray, nearest: int | None = None) -> np.ndarray:
    """``(n_out, n_out)`` bool: the competitors j that bound attribute t's cone at first.

    At ``gamma = 0`` and without the residual term, the cone ``{z : z (u_t - u_j) >= 0}`` is
    the normal cone of the vertex ``u_t`` of ``conv{u_j}``, whose facets are the hull's edges
    at ``u_t``; they are found with Qhull for ``2 <= d <= 6``. Otherwise (or with ``nearest``
    set) the ``nearest`` (default ``d + 1``) closest ``u_j``. Either way only a starting set:
    every row is checked after each solve.
    """
    d, n_out = W_U.shape
    adj = np.zeros((n_out, n_out), dtype=bool)
    if nearest is None and 2 <= d <= 6 and n_out > d + 1:
        try:
            hull = ConvexHull(W_U.T)
        except QhullError:
            pass
        else:
            s = hull.simplices  # (facets, d)
            adj[s[:, :, None], s[:, None, :]] = True
            np.fill_diagonal(adj, False)
            return adj
    sq = (W_U**2).sum(axis=0)
    dist = sq[:, None] + sq[None, :] - 2.0 * (W_U.T @ W_U)  # squared distances
    np.fill_diagonal(dist, np.inf)
    k = min(nearest if nearest is not None else d + 1, n_out - 1)
    adj[np.arange(n_out)[:, None], np.argsort(dist, axis=1)[:, :k]] = True
    return adj


def features(
    facts: BijectionFacts, embed_dim: int, width: int, seed: int
) -> tuple[OneLayerTransformer, Features]:
    """The frozen model and its per-fact quantities (h1, ReLU features, W_U, answers)."""
    model = associative_model(facts, embed_dim, width, seed)
    tokens = facts.tokens(*facts.fact_arrays())
    y = facts.answers(*facts.fact_arrays())
    with torch.no_grad():
        X = model.residual(tokens)[:, -1].numpy()  # (F, d)
        Phi = torch.relu(model.mlp_pre(torch.from_numpy(X))).numpy()  # (F, w)
    return model, Features(X, Phi, model.W_U.detach().numpy(), np.asarray(y))


def associative_width(
    facts: BijectionFacts,
    embed_dim: int,
    width: int,
    seed: int,
    box: float = 1.0,
    settings: SolverSettings | None = None,
    max_rounds: int = 40,
    nearest: int | None = None,
    decide_at: float | None = None,
) -> AssociativeResult:
    """Solve P3 at width w and re-check the answer by substitution and the forward pass.

    Args:
        nearest: competitors per fact in the first working set (default: the hull's edges,
            see :func:`neighbours`).
        decide_at: stop adding rows as soon as the sandwich decides ``gamma* >= decide_at``
            (checked lower bound) or ``gamma* < decide_at`` (the dual bound of the working
            rows, which bounds the full program too); None solves to convergence.

    Raises:
        SolverError: a solve did not end ``optimal``.
    """
    settings = settings or SolverSettings()
    model, feats = features(facts, embed_dim, width, seed)
    X, Phi, W_U, y = feats.X, feats.Phi, feats.W_U, feats.y
    F, d = X.shape[0], embed_dim
    n_w = width * d
    n_var = n_w + F * d + 1
    base = feats.margins(np.zeros((width, d)))
    finite = base[np.isfinite(base)]
    # (F,) |z_f|_inf <= box |phi_f|_1, widened past the rounding of the sum so it stays implied
    z_reach = box * np.abs(Phi).sum(axis=1) * (1.0 + 4.0 * (width + 1) * _EPS)
    du_l1 = 2.0 * float(np.abs(W_U).sum(axis=0).max())  # >= |u_t - u_j|_1 for every pair
    g_lo = float(finite.min()) - 1.0  # W_out = 0, z = 0 is feasible with gamma = min margin
    g_hi = float(np.abs(finite).max()) + float(z_reach.max()) * du_l1 + 1.0
    lo = np.concatenate([np.full(n_w, -box), np.repeat(-z_reach, d), [g_lo]])
    hi = np.concatenate([np.full(n_w, box), np.repeat(z_reach, d), [g_hi]])
    E = _equalities(Phi, d)

    # first working set: each fact's neighbours on the hull of the unembedding; row
    # f n_out + j is fact f's margin against attribute j (the answer's own is never violated)
    n_out = W_U.shape[1]
    initial = np.flatnonzero(neighbours(W_U, nearest)[y])
    ws = WorkingSet.start(initial, max(2, d // 2), max_rounds, tol=1e-9, group=n_out)

    what = f"P3 associative width {width}"
    upper = math.inf

    def mask(rows: np.ndarray) -> np.ndarray:
        out = np.zeros(F * n_out, dtype=bool)
        out[rows] = True
        return out.reshape(F, n_out)

    def solve(rows: np.ndarray) -> tuple[np.ndarray, str, np.ndarray]:
        nonlocal upper
        f_idx, j_idx = np.nonzero(mask(rows))
        A, b = _margin_rows(feats, f_idx, j_idx, n_var)
        x, bound, solver = _solve(_LP(A, b, E, lo, hi), settings, what)
        upper = min(upper, bound)  # every round's bound is valid for the full program
        W_out = np.clip(x[:n_w].reshape(width, d), -box, box)
        return x, solver, feats.margins(W_out)  # (F, n_out), inf at the answer

    def decided(answer: tuple[np.ndarray, str, np.ndarray]) -> bool:
        margins = answer[2]
        return decide_at is not None and (margins.min() >= decide_at or upper < decide_at)

    x, solver, _ = grow(ws, solve, lambda a: (a[2] - a[0][-1]).ravel(), decided)
    W_out = np.clip(x[:n_w].reshape(width, d), -box, box)
    work = mask(ws.rows)
    rounds = ws.rounds

    logits = (X + x[n_w:-1].reshape(F, d)) @ W_U  # through the solver's own z
    raw_rows = x[-1] - (logits[np.arange(F), y][:, None] - logits)  # > 0: row violated
    violation = max(
        float(np.maximum(np.abs(x[:n_w]) - box, 0).max(initial=0.0)),
        float(np.abs(E @ x).max(initial=0.0)),
        float(raw_rows[work].max(initial=0.0)),
    )
    with torch.no_grad():
        model.W_out.copy_(torch.from_numpy(W_out))
    recall = exact_recall(model, facts.batches(4096), facts.n_facts)
    substituted = float(feats.margins(W_out).min())
    if not math.isclose(recall.margin, substituted, rel_tol=1e-7, abs_tol=1e-9):
        raise AssertionError(f"P3: forward margin {recall.margin} != substituted {substituted}")
    return AssociativeResult(
        width=width,
        lower=min(recall.margin, substituted),
        upper=upper,
        accuracy=recall.accuracy,
        max_violation=violation,
        rows_used=int(work.sum()),
        rounds=rounds,
        solver=solver,
    )
