"""P3, the associative baseline (THEORY.md sections 3 and 6): how wide must a memory be?

Frozen random embeddings ``W_E`` (d wide), attention that adds the relation to the subject
(``h1 = 2 e_s + e_r``), a frozen random first MLP layer ``W_in`` of width w (ReLU features
``phi_f``), and a frozen random unembedding ``W_U``. Only ``W_out`` is free, and every margin
is linear in it: ``(h1_f + phi_f W_out) (u_{y_f} - u_j) >= gamma`` for each fact f and j != y_f,
with ``|W_out|_inf <= box``. The LP maximises gamma over a working set of rows.

``W_in``'s columns are nested (width w is the first w columns of one seeded sequence), so a
feasible width stays feasible when columns are added (give them zero weight): feasibility is
monotone in w and bisection is sound. The lower bound is re-checked through the real forward
pass of :class:`~verifier.model.OneLayerTransformer` over every fact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from verifier.convex.solver import SolverSettings
from verifier.convex.working_set import Program, WorkingSetLP
from verifier.instances import BijectionFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.recall import exact_recall
from verifier.seeds import Stream, rng

_BLOCK = 64  # columns of W_in per seeded block


def associative_model(
    facts: BijectionFacts, embed_dim: int, width: int, seed: int
) -> OneLayerTransformer:
    """The frozen part of the baseline (``W_out = 0``), float64.

    ``W_E`` (vocab, d), ``W_in`` (d, w) and ``W_U`` (d, n_out) are standard normal over
    ``sqrt(d)``; ``W_V = I``, ``W_O = 2 I`` so uniform attention over ``[r, s]`` gives
    ``h1 = 2 e_s + e_r``.
    """
    d = embed_dim
    cfg = ModelConfig(
        n_vocab=facts.n_vocab, n_ctx=2, d_model=d, d_head=d, n_heads=1, d_mlp=width,
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
    w_u = rng(seed, Stream.BASELINE, 2).standard_normal((d, facts.n_attributes)) * scale
    with torch.no_grad():
        model.W_E.copy_(torch.from_numpy(w_e))
        model.W_V[0].copy_(torch.eye(d, dtype=torch.float64))
        model.W_O[0].copy_(2.0 * torch.eye(d, dtype=torch.float64))
        model.W_in.copy_(torch.from_numpy(w_in))
        model.W_U.copy_(torch.from_numpy(w_u))
    return model


@dataclass(frozen=True)
class FactRows:
    """P3's rows over ``x = (vec W_out (w*d, row-major), gamma)``; row ``f * n_out + j``.

    ``gamma - phi_f W_out du - h1_f du <= 0`` with ``du = u_{y_f} - u_j``; rows with
    ``j = y_f`` are not constraints and are never violated.
    """

    X: np.ndarray  # (F, d) h1 of each fact
    Phi: np.ndarray  # (F, w) ReLU features
    W_U: np.ndarray  # (d, n_out)
    y: np.ndarray  # (F,) answers

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0] * self.W_U.shape[1])

    def margins(self, W_out: np.ndarray) -> np.ndarray:
        """``(F, n_out)`` logit of the answer minus logit j (``inf`` at the answer)."""
        logits = (self.X + self.Phi @ W_out) @ self.W_U
        rows = np.arange(len(self.y))
        gap = logits[rows, self.y][:, None] - logits
        gap[rows, self.y] = np.inf
        return np.asarray(gap)

    def slack(self, x: np.ndarray) -> np.ndarray:
        w, d = self.Phi.shape[1], self.X.shape[1]
        return np.asarray(self.margins(x[:-1].reshape(w, d)) - x[-1]).ravel()

    def rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_out = self.W_U.shape[1]
        f, j = idx // n_out, idx % n_out
        du = self.W_U[:, self.y[f]].T - self.W_U[:, j].T  # (k, d)
        coef = (self.Phi[f][:, :, None] * du[:, None, :]).reshape(len(idx), -1)  # kron
        G = np.hstack([-coef, np.ones((len(idx), 1))])
        return G, np.einsum("kd,kd->k", self.X[f], du)


@dataclass(frozen=True)
class AssociativeResult:
    """P3 at one width: the checked sandwich ``lower <= gamma* <= upper``.

    Attributes:
        width: w.
        lower: the margin of the checked ``W_out`` through the real forward pass.
        upper: the weak-duality bound at the solver's multipliers.
        accuracy: facts recalled by the forward pass with that ``W_out``.
        max_violation: the solver's raw infeasibility (box or rows) before repair.
        rows_used: rows in the final working set (of ``F (n_out - 1)``).
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

    def status(self, min_margin: float) -> str:
        """feasible / infeasible (certified against ``min_margin``) or undecided."""
        if self.lower >= min_margin:
            return "feasible"
        if self.upper < min_margin:
            return "infeasible"
        return "undecided"


def associative_width(
    facts: BijectionFacts,
    embed_dim: int,
    width: int,
    seed: int,
    box: float = 1.0,
    settings: SolverSettings | None = None,
    max_rounds: int = 40,
) -> AssociativeResult:
    """Solve P3 at width w and re-check the answer through the forward pass.

    Raises:
        SolverError: a solve did not end ``optimal``.
    """
    model = associative_model(facts, embed_dim, width, seed)
    tokens = facts.tokens(*facts.fact_arrays())
    y = facts.answers(*facts.fact_arrays())
    with torch.no_grad():
        X = model.residual(tokens)[:, -1].numpy()  # (F, d)
        Phi = torch.relu(model.mlp_pre(torch.from_numpy(X))).numpy()  # (F, w)
    W_U = model.W_U.detach().numpy()
    oracle = FactRows(X, Phi, W_U, y)
    n_var = width * embed_dim
    base = oracle.margins(np.zeros((width, embed_dim)))
    finite = base[np.isfinite(base)]
    du_l1 = float(np.abs(W_U[:, :, None] - W_U[:, None, :]).sum(axis=0).max())
    g_lo = float(finite.min()) - 1.0  # W_out = 0 is feasible with gamma = min margin
    g_hi = float(np.abs(finite).max()) + box * float(np.abs(Phi).sum(axis=1).max()) * du_l1
    lo = np.concatenate([np.full(n_var, -box), [g_lo]])
    hi = np.concatenate([np.full(n_var, box), [g_hi]])
    per_fact = min(4, facts.n_attributes - 1)
    nearest = np.argsort(base, axis=1)[:, :per_fact]  # the strongest rivals at W_out = 0
    initial = (np.arange(len(y))[:, None] * facts.n_attributes + nearest).ravel()
    objective = np.zeros(n_var + 1)
    objective[-1] = 1.0
    lp = WorkingSetLP(objective, settings or SolverSettings(), f"P3 associative width {width}")
    res = lp.solve(Program(oracle, lo, hi, initial), add=2 * len(y), max_rounds=max_rounds)
    W_raw = res.x[:-1].reshape(width, embed_dim)
    raw_gap = oracle.margins(W_raw) - res.x[-1]
    violation = max(float(np.maximum(np.abs(res.x[:-1]) - box, 0).max()),
                    float(np.maximum(-raw_gap, 0).max()))
    W_out = np.clip(W_raw, -box, box)
    with torch.no_grad():
        model.W_out.copy_(torch.from_numpy(W_out))
    recall = exact_recall(model, facts.batches(4096), facts.n_facts)
    substituted = float(oracle.margins(W_out).min())
    if not math.isclose(recall.margin, substituted, rel_tol=1e-7, abs_tol=1e-9):
        raise AssertionError(f"P3: forward margin {recall.margin} != substituted {substituted}")
    return AssociativeResult(
        width=width, lower=min(recall.margin, substituted), upper=res.upper,
        accuracy=recall.accuracy, max_violation=violation, rows_used=len(res.rows),
        rounds=res.rounds, solver=res.solver,
    )
