"""Theorem G1 (docs/theory.md section 3): the geometric single-hop construction.

Residual layout, ``d = R*m + R + m``: R subject slots of width m, R gate coordinates, one
answer slot of width m.

- ``W_E[s] = sum_r slot_r(a_{pi_r(s)})``: the subject's attribute codes, superposed.
- ``W_E[N + r] = gate_r``; attention is uniform (``W_Q = W_K = 0``) and ``W_V W_O`` copies the
  gates with factor ``L = 2``, so the subject's position holds ``e_s + gate_r``.
- MLP: for each relation r' and coordinate i, units ``ReLU(+-x[slot_r', i] + B (g_r' - 1))``
  with ``B = max |a_{j,i}|``; ``W_out`` writes their difference to answer coordinate i, so only
  the queried relation's slot reaches the answer. Width ``2 R m``.
- ``W_U[:, j] = answer(a_j)``, hence ``logit_j = <a_j, a_{pi_r(s)}>`` and margin ``1 - mu``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from verifier.constructions.base import Construction
from verifier.facts.bijections import BijectionFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.theory.sizes import G1_SHAPES

SEQ_LEN = 2  # [r, x]


@dataclass(frozen=True)
class SlotLayout:
    """The residual stream's subject slots and gates, shared by G1 and the compact model:
    slot r at ``[r m, (r+1) m)``, the R gates after them, ``d_mlp = 2 R m``."""

    n_relations: int
    code_dim: int

    def slot(self, r: int) -> slice:
        """Subject slot of relation r (width m)."""
        return slice(r * self.code_dim, (r + 1) * self.code_dim)

    @property
    def gates(self) -> slice:
        """The R gate coordinates."""
        start = self.n_relations * self.code_dim
        return slice(start, start + self.n_relations)

    @property
    def d_model(self) -> int:
        """``R*m + R``."""
        return self.n_relations * self.code_dim + self.n_relations

    @property
    def d_mlp(self) -> int:
        """``2*R*m``."""
        return 2 * self.n_relations * self.code_dim


@dataclass(frozen=True)
class GeometricLayout(SlotLayout):
    """Where each part lives in the residual stream of the G1 model: the slots and gates,
    then an answer slot of width m."""

    @property
    def answer(self) -> slice:
        """The answer slot (width m)."""
        start = self.n_relations * self.code_dim + self.n_relations
        return slice(start, start + self.code_dim)

    @property
    def d_model(self) -> int:
        """``R*m + R + m``."""
        return self.n_relations * self.code_dim + self.n_relations + self.code_dim


def subject_embeddings(
    codes: np.ndarray, perms: np.ndarray, layout: GeometricLayout, disjoint: bool = False
) -> np.ndarray:
    """``(N, d_model)`` subject rows: ``sum_r slot_r(a_{pi_r(s)})``.

    Args:
        codes: ``(n_attributes, m)`` unit codes.
        perms: ``(R, N)`` bijections.
        layout: the residual layout.
        disjoint: relation r's attributes are codes ``r*N .. r*N + N - 1``.
    """
    n_rel, n = perms.shape
    rows = np.zeros((n, layout.d_model))
    for r in range(n_rel):
        targets = perms[r] + (r * n if disjoint else 0)
        rows[:, layout.slot(r)] = codes[targets]
    return rows


def build_geometric(
    facts: BijectionFacts, codes: np.ndarray
) -> tuple[OneLayerTransformer, GeometricLayout]:
    """Write the G1 weights for ``facts`` with attribute ``codes`` (``(n_attributes, m)``).

    Returns:
        The float64 model (one head, ``d_head = R``, ``L = 2``) and its layout.
    """
    n, n_rel = facts.n_entities, facts.n_relations
    if codes.shape[0] != facts.n_attributes:
        raise ValueError(f"codebook: expected {facts.n_attributes} codes, got {codes.shape[0]}")
    m = codes.shape[1]
    layout = GeometricLayout(n_relations=n_rel, code_dim=m)
    d = layout.d_model
    cfg = ModelConfig(
        n_vocab=facts.n_vocab,
        n_ctx=SEQ_LEN,
        d_model=d,
        d_head=n_rel,
        n_heads=1,
        d_mlp=layout.d_mlp,
        n_out=facts.n_attributes,
    )
    model = OneLayerTransformer(cfg, dtype=torch.float64)
    big_b = float(np.abs(codes).max())  # B >= max |a_{j,i}|

    w_e = np.zeros((facts.n_vocab, d))
    w_e[:n] = subject_embeddings(codes, facts.perms, layout, facts.disjoint)
    gate_idx = np.arange(layout.gates.start, layout.gates.stop)
    w_e[n + np.arange(n_rel), gate_idx] = 1.0

    w_v = np.zeros((d, n_rel))
    w_v[gate_idx, np.arange(n_rel)] = 1.0
    w_o = np.zeros((n_rel, d))
    w_o[np.arange(n_rel), gate_idx] = float(SEQ_LEN)  # undo the uniform average over L = 2

    w_in = np.zeros((d, layout.d_mlp))
    b_in = np.full(layout.d_mlp, -big_b)  # B (g - 1) with g = 0 in the bias, + B g below
    w_out = np.zeros((layout.d_mlp, d))
    answer_idx = np.arange(layout.answer.start, layout.answer.stop)
    for r in range(n_rel):
        slot_idx = np.arange(layout.slot(r).start, layout.slot(r).stop)
        for sign, offset in ((1.0, 0), (-1.0, m)):
            units = 2 * r * m + offset + np.arange(m)
            w_in[slot_idx, units] = sign
            w_in[layout.gates.start + r, units] = big_b
            w_out[units, answer_idx] = sign

    w_u = np.zeros((d, facts.n_attributes))
    w_u[answer_idx] = codes.T

    with torch.no_grad():
        model.W_E.copy_(torch.from_numpy(w_e))
        model.W_V[0].copy_(torch.from_numpy(w_v))
        model.W_O[0].copy_(torch.from_numpy(w_o))
        model.W_in.copy_(torch.from_numpy(w_in))
        model.b_in.copy_(torch.from_numpy(b_in))
        model.W_out.copy_(torch.from_numpy(w_out))
        model.W_U.copy_(torch.from_numpy(w_u))
    return model, layout


GEOMETRIC = Construction(
    name="geometric", label="G1", theorem="G1", size=G1_SHAPES.sizes, build=build_geometric
)
