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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from verifier.constructions.base import Construction, write_weights
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

    @property
    def readout(self) -> tuple[slice, ...]:
        """The blocks ``W_U`` reads the codes from (each ``W_U[block] = codes.T``): every
        subject slot (the compact model)."""
        return tuple(self.slot(r) for r in range(self.n_relations))


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
    def readout(self) -> tuple[slice, ...]:
        """The blocks ``W_U`` reads the codes from: the answer slot alone."""
        return (self.answer,)

    @property
    def d_model(self) -> int:
        """``R*m + R + m``."""
        return self.n_relations * self.code_dim + self.n_relations + self.code_dim


def subject_embeddings(
    codes: np.ndarray, perms: np.ndarray, layout: SlotLayout, disjoint: bool = False
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


def slot_model(
    facts: BijectionFacts, codes: np.ndarray, layout: SlotLayout
) -> tuple[OneLayerTransformer, dict[str, np.ndarray]]:
    """The part G1 and the compact model share, for ``codes`` (``(n_attributes, m)``).

    An empty float64 model of the layout's shapes (one head, ``d_head = R``, ``L = 2``), and
    the weights both write: ``W_E`` (subject rows ``sum_r slot_r(a_{pi_r(s)})``, relation rows
    ``gate_r``) and the uniform attention's ``W_V, W_O`` copying the gates with factor ``L``.

    Raises:
        ValueError: the codebook does not have one code per attribute.
    """
    n, n_rel = facts.n_entities, facts.n_relations
    if codes.shape[0] != facts.n_attributes:
        raise ValueError(f"codebook: expected {facts.n_attributes} codes, got {codes.shape[0]}")
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
    w_e = np.zeros((facts.n_vocab, d))
    w_e[:n] = subject_embeddings(codes, facts.perms, layout, facts.disjoint)
    gate_idx = np.arange(layout.gates.start, layout.gates.stop)
    w_e[n + np.arange(n_rel), gate_idx] = 1.0
    w_v = np.zeros((1, d, n_rel))
    w_v[0, gate_idx, np.arange(n_rel)] = 1.0
    w_o = np.zeros((1, n_rel, d))
    w_o[0, np.arange(n_rel), gate_idx] = float(SEQ_LEN)  # undo the uniform average over L = 2
    return OneLayerTransformer(cfg, dtype=torch.float64), {"W_E": w_e, "W_V": w_v, "W_O": w_o}


def slot_selector(
    layout: SlotLayout, big_b: float, target: Callable[[int], slice], cancel: bool
) -> dict[str, np.ndarray]:
    """``W_in, b_in, W_out``: for relation r and coordinate i of its slot, units
    ``ReLU(+-x[slot_r, i] + B (g_r - 1))`` writing ``+-`` to ``target(r)`` (G1), or with
    ``cancel`` ``ReLU(+-x[slot_r, i] - B g_r)`` writing ``-+`` (the compact model)."""
    m, d = layout.code_dim, layout.d_model
    w_in = np.zeros((d, layout.d_mlp))
    b_in = np.zeros(layout.d_mlp) if cancel else np.full(layout.d_mlp, -big_b)
    w_out = np.zeros((layout.d_mlp, d))
    for r in range(layout.n_relations):
        slot_idx = np.arange(layout.slot(r).start, layout.slot(r).stop)
        target_idx = np.arange(target(r).start, target(r).stop)
        for sign, offset in ((1.0, 0), (-1.0, m)):
            units = 2 * r * m + offset + np.arange(m)
            w_in[slot_idx, units] = sign
            w_in[layout.gates.start + r, units] = -big_b if cancel else big_b
            w_out[units, target_idx] = -sign if cancel else sign
    return {"W_in": w_in, "b_in": b_in, "W_out": w_out}


def build_geometric(
    facts: BijectionFacts, codes: np.ndarray
) -> tuple[OneLayerTransformer, GeometricLayout]:
    """Write the G1 weights for ``facts`` with attribute ``codes`` (``(n_attributes, m)``).

    Returns:
        The float64 model (one head, ``d_head = R``, ``L = 2``) and its layout.
    """
    layout = GeometricLayout(n_relations=facts.n_relations, code_dim=codes.shape[1])
    model, shared = slot_model(facts, codes, layout)
    selector = slot_selector(
        layout, float(np.abs(codes).max()), lambda r: layout.answer, cancel=False
    )
    w_u = np.zeros((layout.d_model, facts.n_attributes))
    w_u[layout.answer] = codes.T
    write_weights(model, **shared, **selector, W_U=w_u)
    return model, layout


GEOMETRIC = Construction(
    name="geometric",
    label="G1",
    model="the G1 model",
    facts="bijection",
    theorem="G1",
    size=G1_SHAPES.sizes,
    build=build_geometric,
)
