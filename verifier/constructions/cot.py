"""Theorem Ck (docs/theory.md section 5): multi-hop recall with chain-of-thought.

Sequence ``[r_1..r_k, x, y_1..y_{k-1}]``: step i reads ``y_{i-1}`` (``y_0 = x``) at position
``k + i - 1`` and must emit ``y_i = pi_{r_i}(y_{i-1})``; relation token ``r_i`` sits exactly k
positions back. Residual layout, ``d = R m + R + m + 2``: G1's R relation slots, R gate
coordinates, the answer slot, and the 2-d positional code of :mod:`verifier.constructions.chain`.

- ``W_E[y] = sum_r slot_r(a_{pi_r(y)})`` (G1's subject embedding, for every entity);
  ``W_E[N + r] = gate_r``.
- One head attends exactly k positions back by position (hard: the score gap is at least
  ``SCORE_GAP``), and ``W_V W_O`` copies the relation's gate one-hot, so position ``k + i - 1``
  holds ``e_{y_{i-1}} + gate_{r_i}``.
- The MLP is G1's selector (width ``2 R m``), ``W_U[:, j] = answer(a_j)``: each step has G1's
  margin ``1 - mu``. Nothing depends on k except ``W_pos`` (``L = 2k`` rows) and the angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from verifier.constructions.base import Construction, write_weights
from verifier.constructions.chain import (
    ChainLayout,
    answer_unembedding,
    positional_codes,
    positional_head,
    selector_mlp,
)
from verifier.facts.chains import ChainFacts
from verifier.measure.recall import margins_of
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.theory.sizes import CK_SHAPES


def build_cot(facts: ChainFacts, codes: np.ndarray) -> tuple[OneLayerTransformer, ChainLayout]:
    """Write the Ck weights for ``facts`` with entity ``codes`` (``(N, m)`` unit rows).

    Returns:
        The float64 model (one head, ``L = 2k``) and its layout.
    """
    n, n_rel, k = facts.n_entities, facts.n_relations, facts.hops
    if codes.shape[0] != n:
        raise ValueError(f"codebook: expected {n} codes, got {codes.shape[0]}")
    m = codes.shape[1]
    layout = ChainLayout(n_slots=n_rel, n_relations=n_rel, n_blocks=1, code_dim=m)
    d, n_ctx = layout.d_model, 2 * k
    cfg = ModelConfig(
        n_vocab=facts.n_vocab,
        n_ctx=n_ctx,
        d_model=d,
        d_head=layout.d_head,
        n_heads=1,
        d_mlp=layout.d_mlp,
        n_out=n,
    )
    model = OneLayerTransformer(cfg, dtype=torch.float64)
    theta = math.pi / (k + 1)

    w_e = np.zeros((facts.n_vocab, d))
    for r in range(n_rel):
        w_e[:n, layout.slot(r)] = codes[facts.perms[r]]
    gates = layout.gate(0, 0) + np.arange(n_rel)
    w_e[n + np.arange(n_rel), gates] = 1.0
    w_pos = np.zeros((n_ctx, d))
    w_pos[:, layout.position] = positional_codes(n_ctx, theta)

    w_q, w_k = positional_head(layout, k, theta)
    w_v = np.zeros((d, layout.d_head))
    w_v[gates, np.arange(n_rel)] = 1.0
    w_o = np.zeros((layout.d_head, d))
    w_o[np.arange(n_rel), gates] = 1.0

    selector = selector_mlp(
        layout, [[layout.gate(0, r)] for r in range(n_rel)], float(np.abs(codes).max())
    )
    write_weights(
        model,
        W_E=w_e,
        W_pos=w_pos,
        W_Q=w_q[None],
        W_K=w_k[None],
        W_V=w_v[None],
        W_O=w_o[None],
        **selector,
        W_U=answer_unembedding(layout, codes),
    )
    return model, layout


COT = Construction(
    name="cot",
    label="Ck",
    model="the Ck model",
    facts="multi_hop",
    theorem="Ck",
    size=CK_SHAPES.sizes,
    build=build_cot,
    cot=True,
)


@dataclass(frozen=True)
class Decoded:
    """Greedy decoding of a batch of queries.

    Attributes:
        predictions: ``(b, k)`` the emitted ``y_1..y_k``.
        margins: ``(b, k)`` per step, true ``y_i``'s logit minus the best other logit, given the
            model's own earlier emissions.
        rivals: ``(b, k)`` per step, the strongest entity other than the true ``y_i``.
    """

    predictions: torch.Tensor
    margins: torch.Tensor
    rivals: torch.Tensor


@torch.inference_mode()
def greedy_decode(
    model: OneLayerTransformer, facts: ChainFacts, subjects: np.ndarray, chains: np.ndarray
) -> Decoded:
    """Decode ``y_1..y_k`` autoregressively from ``[r_1..r_k, x]``, feeding back each argmax.

    Every step is judged against the true intermediate entity, not just the last one.
    """
    tokens = facts.tokens(subjects, chains)  # (b, k + 1)
    truth = torch.from_numpy(facts.path(subjects, chains))  # (b, k)
    preds, margins, rivals = [], [], []
    for i in range(facts.hops):
        logits = model(tokens)  # (b, N), last position only
        step_margin, rival = margins_of(logits, truth[:, i])
        pred = logits.argmax(dim=1)
        preds.append(pred)
        margins.append(step_margin)
        rivals.append(rival)
        if i + 1 < facts.hops:
            tokens = torch.cat([tokens, pred[:, None]], dim=1)
    return Decoded(torch.stack(preds, 1), torch.stack(margins, 1), torch.stack(rivals, 1))


def first_failure(
    facts: ChainFacts, subjects: np.ndarray, chains: np.ndarray, decoded: Decoded
) -> dict[str, object] | None:
    """The first query of a decoded batch with a wrong step, as report evidence (None if all right).

    ``step`` counts from 1; ``expected``/``got`` are that step's true entity and strongest rival;
    ``decoded`` and ``path`` are the emitted and the true ``y_1..y_k``.
    """
    ok = decoded.margins > 0  # (b, k)
    bad = ~ok.all(dim=1)
    if not bool(bad.any()):
        return None
    i = int(bad.nonzero()[0, 0])
    step = int((~ok[i]).nonzero()[0, 0])
    path = facts.path(subjects[i : i + 1], chains[i : i + 1])[0]
    return {
        "subject": int(subjects[i]),
        "chain": [int(r) for r in chains[i]],
        "step": step + 1,
        "expected": int(path[step]),
        "got": int(decoded.rivals[i, step]),
        "decoded": [int(y) for y in decoded.predictions[i]],
        "path": [int(y) for y in path],
    }
