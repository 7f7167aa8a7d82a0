"""``subject_norm_spread``: max over subjects of ``|e_s|`` divided by the min (``W_E``'s first N
rows, float64). 1 when every subject row has one norm (G1 and the compact model with unit
codes: ``|e_s|^2 = R``); larger when training spreads them."""

from __future__ import annotations

import numpy as np

from verifier.facts.bijections import BijectionFacts
from verifier.measure.mechanism import MeasureResult
from verifier.model import OneLayerTransformer


def subject_norm_spread(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """``max_s |W_E[s]| / min_s |W_E[s]|`` over the N subjects; underdetermined when a row
    is zero."""
    rows = model.W_E.detach().to(dtype=model.W_E.dtype).cpu().numpy()[: facts.n_entities]
    norms = np.linalg.norm(rows.astype(np.float64), axis=1)
    if float(norms.min()) == 0.0:
        return MeasureResult.too_few("a subject row of W_E is zero")
    return MeasureResult(
        value=float(norms.max() / norms.min()),
        detail={"min_norm": float(norms.min()), "max_norm": float(norms.max())},
    )
