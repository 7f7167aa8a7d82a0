"""``padded_compact``: the compact model written into a residual stream one coordinate wider.

Every weight of the compact model is copied into the same rows and columns of a model with
``d_model + 1``; the last coordinate is zero in ``W_E``, ``W_pos``, ``W_O``, ``W_out``, ``b_out``
and is read by no ``W_Q``, ``W_K``, ``W_V``, ``W_in`` or ``W_U`` row, so the logits are the
compact model's, fact for fact.
"""

from __future__ import annotations

import numpy as np
import torch

from verifier.constructions.base import Construction
from verifier.constructions.compact import CompactLayout, build_compact
from verifier.facts.bijections import BijectionFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier_example.theorem import PADDED_SHAPES


class PaddedLayout(CompactLayout):
    """The compact layout and one spare coordinate at the end: ``d_model = R m + R + 1``."""

    @property
    def d_model(self) -> int:
        """``R*m + R + 1``."""
        return self.n_relations * self.code_dim + self.n_relations + 1


def build_padded(
    facts: BijectionFacts, codes: np.ndarray
) -> tuple[OneLayerTransformer, PaddedLayout]:
    """The compact weights for ``facts`` and ``codes`` (``(n_attributes, m)``), padded."""
    compact, layout = build_compact(facts, codes)
    cfg = compact.cfg
    padded = OneLayerTransformer(
        ModelConfig(
            n_vocab=cfg.n_vocab,
            n_ctx=cfg.n_ctx,
            d_model=cfg.d_model + 1,
            d_head=cfg.d_head,
            n_heads=cfg.n_heads,
            d_mlp=cfg.d_mlp,
            n_out=cfg.n_out,
        )
    )
    with torch.no_grad():
        for name, source in compact.named_parameters():
            target = getattr(padded, name)
            target[tuple(slice(0, n) for n in source.shape)] = source
    return padded, PaddedLayout(n_relations=layout.n_relations, code_dim=layout.code_dim)


PADDED_COMPACT = Construction(
    name="padded_compact",
    label="the padded compact construction",
    model="the padded compact model",
    facts="bijection",
    theorem="PADDED",
    size=PADDED_SHAPES.sizes,
    build=build_padded,
)
