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

from verifier.constructions.base import Construction, write_weights
from verifier.constructions.geometric import SlotLayout, slot_model, slot_selector
from verifier.facts.bijections import BijectionFacts
from verifier.model import OneLayerTransformer
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
    layout = CompactLayout(n_relations=facts.n_relations, code_dim=codes.shape[1])
    model, shared = slot_model(facts, codes, layout)
    # off when relation r is asked; ReLU(x) - ReLU(-x) = x, written back as -x
    selector = slot_selector(layout, float(np.abs(codes).max()), layout.slot, cancel=True)
    w_u = np.zeros((layout.d_model, facts.n_attributes))
    for r in range(facts.n_relations):
        w_u[layout.slot(r)] = codes.T  # every slot reads the codes
    write_weights(model, **shared, **selector, W_U=w_u)
    return model, layout


COMPACT = Construction(
    name="compact",
    label="the compact construction",
    model="the compact model",
    facts="bijection",
    theorem="COMPACT",
    size=COMPACT_SHAPES.sizes,
    build=build_compact,
)
