"""The compact geometric construction (docs/theory.md section 3b): G1 without its answer slot.

Residual layout, ``d = R*m + R``: R subject slots of width m and R gate coordinates.

- ``W_E[s] = sum_r slot_r(a_{pi_r(s)})`` and ``W_E[N + r] = gate_r``; attention as in G1
  (uniform, ``W_V W_O`` copies the gates with factor ``L = 2``), so the subject's position holds
  ``e_s + gate_r``.
- The unembedding reads every slot: ``W_U[:, j] = sum_r slot_r(a_j)`` (zero on the gates).
- The MLP *removes* the relations that were not asked: for each relation r' and coordinate i of
  its slot, units ``ReLU(+x[slot_r', i] - B g_r')`` and ``ReLU(-x[slot_r', i] - B g_r')`` with
  ``B = max |a_{j,i}|``; ``W_out`` writes minus their difference back into ``slot_r', i``. The
  queried relation's units are off (``g = 1``); every other slot is cancelled, so
  ``h2 = slot_r(a_{pi_r(s)}) + gate_r`` and ``logit_j = <a_j, a_{pi_r(s)}>``: margin ``1 - mu``.

Width ``2 R m``; fact-specific parameters ``N (R m + R)``. This is the shape trained models
take (no answer slot), and every training measure must score 1 on it.
"""

from __future__ import annotations

import numpy as np
import torch

from verifier.constructions.base import Construction
from verifier.constructions.geometric import SEQ_LEN, SlotLayout
from verifier.facts.bijections import BijectionFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.theory.sizes import COMPACT_SHAPES


class CompactLayout(SlotLayout):
    """Where each part lives in the residual stream of the compact model: the subject slots
    and the gates, no answer slot (``d_model = R*m + R``)."""


def build_compact(
    facts: BijectionFacts, codes: np.ndarray
) -> tuple[OneLayerTransformer, CompactLayout]:
    """Write the compact weights for ``facts`` with attribute ``codes`` (``(n_attributes, m)``).

    Returns:
        The float64 model (one head, ``d_head = R``, ``L = 2``) and its layout.

    Raises:
        ValueError: the codebook does not have one code per attribute.
    """
    n, n_rel = facts.n_entities, facts.n_relations
    if codes.shape[0] != facts.n_attributes:
        raise ValueError(f"codebook: expected {facts.n_attributes} codes, got {codes.shape[0]}")
    m = codes.shape[1]
    layout = CompactLayout(n_relations=n_rel, code_dim=m)
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
    for r in range(n_rel):
        targets = facts.answers(np.arange(n), r)
        w_e[:n, layout.slot(r)] = codes[targets]
    gate_idx = np.arange(layout.gates.start, layout.gates.stop)
    w_e[n + np.arange(n_rel), gate_idx] = 1.0

    w_v = np.zeros((d, n_rel))
    w_v[gate_idx, np.arange(n_rel)] = 1.0
    w_o = np.zeros((n_rel, d))
    w_o[np.arange(n_rel), gate_idx] = float(SEQ_LEN)  # undo the uniform average over L = 2

    w_in = np.zeros((d, layout.d_mlp))
    b_in = np.zeros(layout.d_mlp)
    w_out = np.zeros((layout.d_mlp, d))
    for r in range(n_rel):
        slot_idx = np.arange(layout.slot(r).start, layout.slot(r).stop)
        for sign, offset in ((1.0, 0), (-1.0, m)):
            units = 2 * r * m + offset + np.arange(m)
            w_in[slot_idx, units] = sign
            w_in[layout.gates.start + r, units] = -big_b  # off when relation r is asked
            w_out[units, slot_idx] = -sign  # ReLU(x) - ReLU(-x) = x, written back as -x

    w_u = np.zeros((d, facts.n_attributes))
    for r in range(n_rel):
        w_u[layout.slot(r)] = codes.T  # every slot reads the codes

    with torch.no_grad():
        model.W_E.copy_(torch.from_numpy(w_e))
        model.W_V[0].copy_(torch.from_numpy(w_v))
        model.W_O[0].copy_(torch.from_numpy(w_o))
        model.W_in.copy_(torch.from_numpy(w_in))
        model.b_in.copy_(torch.from_numpy(b_in))
        model.W_out.copy_(torch.from_numpy(w_out))
        model.W_U.copy_(torch.from_numpy(w_u))
    return model, layout


COMPACT = Construction(
    name="compact",
    label="the compact construction",
    theorem="COMPACT",
    size=COMPACT_SHAPES.sizes,
    build=build_compact,
)
