"""Theorem Gk (docs/theory.md section 5): multi-hop recall without chain-of-thought.

Each chain c is a compound relation with its own slot. Residual layout,
``d = |C| m + k R + m + 2``: |C| chain slots of width m, k gate blocks of R coordinates
(``g[t, r]``), one answer slot of width m, and a 2-d positional code.

- ``W_E[x] = sum_c slot_c(a_{pi_c(x)})``; ``W_E[N + r] = g[1, r]`` (relation one-hot in block 1).
- ``W_pos[p] = (cos p theta, sin p theta)`` with ``theta = pi / (k + 1)``.
- Head t (t = 1..k) attends by position only: ``W_Q`` rotates the query's code back by
  ``k - t + 1`` steps, so the last position (x, at position k) scores ``beta cos(theta j)``
  against a key j positions away from relation token t. The gap to every other position is
  ``beta (1 - cos theta) >= 800``, and ``exp(-800)`` is exactly 0 in float64: the attention is
  hard, weight exactly 1 on relation token t. ``W_V W_O`` copies its block-1 one-hot into
  gate block t, so the last position holds ``g[t, r] = 1`` exactly for the queried chain.
- MLP, per chain c and coordinate i: ``ReLU(+-x[slot_c, i] + B (sum_t g[t, c_t] - k))`` with
  ``B = max |a_{j,i}|``: a ReLU AND, open only when all k relations match. Width ``2 |C| m``.
- ``W_U[:, j] = answer(a_j)``: ``logit_j = <a_j, a_{pi_c(x)}>``, margin ``1 - mu``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from verifier.constructions.base import Construction, write_weights
from verifier.facts.chains import ChainFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.theory.sizes import chain_sizes

SCORE_GAP = 800.0  # nats between the attended position and any other: exp(-800) == 0.0 in float64
POS_DIM = 2  # width of the positional code


@dataclass(frozen=True)
class ChainLayout:
    """Residual layout shared by Gk (slots = chains, k gate blocks) and Ck (slots = relations).

    Order: slots (``n_slots * m``), gate blocks (``n_blocks * R``), answer (m), position (2).
    """

    n_slots: int
    n_relations: int
    n_blocks: int
    code_dim: int

    def slot(self, i: int) -> slice:
        """Slot i (width m)."""
        return slice(i * self.code_dim, (i + 1) * self.code_dim)

    def gate(self, block: int, r: int) -> int:
        """Coordinate of gate ``g[block, r]`` (block 0-based)."""
        return self.n_slots * self.code_dim + block * self.n_relations + r

    def gate_block(self, block: int) -> slice:
        """The R coordinates of one gate block."""
        start = self.gate(block, 0)
        return slice(start, start + self.n_relations)

    @property
    def answer(self) -> slice:
        """The answer slot (width m)."""
        start = self.n_slots * self.code_dim + self.n_blocks * self.n_relations
        return slice(start, start + self.code_dim)

    @property
    def position(self) -> slice:
        """The positional code (width 2)."""
        return slice(self.answer.stop, self.answer.stop + POS_DIM)

    @property
    def d_model(self) -> int:
        """``n_slots m + n_blocks R + m + 2``."""
        return int(self.position.stop)

    @property
    def d_mlp(self) -> int:
        """``2 n_slots m``."""
        return 2 * self.n_slots * self.code_dim

    @property
    def d_head(self) -> int:
        """Wide enough for the R-coordinate value and the 2-d positional query/key."""
        return max(self.n_relations, POS_DIM)


def positional_codes(n_ctx: int, theta: float) -> np.ndarray:
    """``(n_ctx, 2)``: ``(cos p theta, sin p theta)``."""
    p = np.arange(n_ctx, dtype=np.float64)
    return np.stack([np.cos(p * theta), np.sin(p * theta)], axis=1)


def positional_head(
    layout: ChainLayout, offset: int, theta: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(W_Q, W_K)`` of a head attending exactly ``offset`` positions back, ``(d, d_head)`` each.

    Query ``s u(p) Rot(offset theta)`` = ``s u(p - offset)``, key ``s u(p')``; the score
    ``s^2 cos(theta (p - offset - p')) / sqrt(d_head)`` is largest at ``p' = p - offset``, by at
    least ``SCORE_GAP`` while ``theta |p - offset - p'| <= pi - theta``.
    """
    beta = SCORE_GAP / (1.0 - math.cos(theta))
    scale = math.sqrt(beta * math.sqrt(layout.d_head))
    phi = offset * theta
    rot = np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    w_q = np.zeros((layout.d_model, layout.d_head))
    w_k = np.zeros((layout.d_model, layout.d_head))
    pos = np.arange(layout.position.start, layout.position.stop)
    w_q[pos, :POS_DIM] = scale * rot
    w_k[pos, :POS_DIM] = scale * np.eye(POS_DIM)
    return w_q, w_k


def positional_pattern(model: OneLayerTransformer, n_pos: int) -> torch.Tensor:
    """``(head, n_pos, n_pos)`` causal attention pattern from ``W_pos`` alone.

    Valid when ``W_Q, W_K`` read only the positional code (as in Gk and Ck), so the pattern is
    the same for every token sequence.
    """
    pos = model.W_pos[:n_pos]
    q = torch.einsum("pd,hde->hpe", pos, model.W_Q)
    k = torch.einsum("pd,hde->hpe", pos, model.W_K)
    scores = q @ k.transpose(-1, -2) / model.cfg.d_head**0.5
    mask = torch.ones(n_pos, n_pos, dtype=torch.bool).triu(1)
    pattern: torch.Tensor = scores.masked_fill(mask, float("-inf")).softmax(dim=-1)
    return pattern


def selector_mlp(
    layout: ChainLayout, gates: list[list[int]], big_b: float
) -> dict[str, np.ndarray]:
    """``W_in, b_in, W_out`` of the ReLU-AND selector, by weight name.

    Slot i opens when every gate coordinate in ``gates[i]`` is 1: units
    ``ReLU(+-x[slot_i, j] + B (sum_{g in gates[i]} x[g] - len(gates[i])))``, and ``W_out`` writes
    their difference to answer coordinate j.
    """
    m, d = layout.code_dim, layout.d_model
    w_in = np.zeros((d, layout.d_mlp))
    b_in = np.zeros(layout.d_mlp)
    w_out = np.zeros((layout.d_mlp, d))
    answer_idx = np.arange(layout.answer.start, layout.answer.stop)
    for i, gate_coords in enumerate(gates):
        slot_idx = np.arange(layout.slot(i).start, layout.slot(i).stop)
        for sign, offset in ((1.0, 0), (-1.0, m)):
            units = 2 * i * m + offset + np.arange(m)
            w_in[slot_idx, units] = sign
            for g in gate_coords:
                w_in[g, units] = big_b
            b_in[units] = -big_b * len(gate_coords)
            w_out[units, answer_idx] = sign
    return {"W_in": w_in, "b_in": b_in, "W_out": w_out}


def answer_unembedding(layout: ChainLayout, codes: np.ndarray) -> np.ndarray:
    """``(d, N)`` ``W_U[:, j] = answer(a_j)``: ``logit_j = <a_j, answer>``."""
    w_u = np.zeros((layout.d_model, codes.shape[0]))
    w_u[layout.answer] = codes.T
    return w_u


def build_chain(facts: ChainFacts, codes: np.ndarray) -> tuple[OneLayerTransformer, ChainLayout]:
    """Write the Gk weights for ``facts`` with entity ``codes`` (``(N, m)`` unit rows).

    Returns:
        The float64 model (``H = k`` heads, ``L = k + 1``) and its layout.
    """
    n, n_rel, k = facts.n_entities, facts.n_relations, facts.hops
    if codes.shape[0] != n:
        raise ValueError(f"codebook: expected {n} codes, got {codes.shape[0]}")
    m = codes.shape[1]
    layout = ChainLayout(n_slots=facts.n_chains, n_relations=n_rel, n_blocks=k, code_dim=m)
    d, n_ctx = layout.d_model, k + 1
    cfg = ModelConfig(
        n_vocab=facts.n_vocab,
        n_ctx=n_ctx,
        d_model=d,
        d_head=layout.d_head,
        n_heads=k,
        d_mlp=layout.d_mlp,
        n_out=n,
    )
    model = OneLayerTransformer(cfg, dtype=torch.float64)
    theta = math.pi / (k + 1)

    w_e = np.zeros((facts.n_vocab, d))
    answers = facts.compound_answers(np.arange(n))  # (N, |C|)
    for c in range(facts.n_chains):
        w_e[:n, layout.slot(c)] = codes[answers[:, c]]
    w_e[n + np.arange(n_rel), layout.gate(0, 0) + np.arange(n_rel)] = 1.0
    w_pos = np.zeros((n_ctx, d))
    w_pos[:, layout.position] = positional_codes(n_ctx, theta)

    w_q = np.zeros((k, d, layout.d_head))
    w_k = np.zeros((k, d, layout.d_head))
    w_v = np.zeros((k, d, layout.d_head))
    w_o = np.zeros((k, layout.d_head, d))
    block0 = np.arange(layout.gate_block(0).start, layout.gate_block(0).stop)
    for t in range(k):  # head t attends from x (position k) to relation token t (position t)
        w_q[t], w_k[t] = positional_head(layout, k - t, theta)
        w_v[t, block0, np.arange(n_rel)] = 1.0
        w_o[t, np.arange(n_rel), layout.gate(t, 0) + np.arange(n_rel)] = 1.0

    chains = facts.all_chains()
    gates = [[layout.gate(t, int(chain[t])) for t in range(k)] for chain in chains]
    selector = selector_mlp(layout, gates, float(np.abs(codes).max()))
    write_weights(
        model,
        W_E=w_e,
        W_pos=w_pos,
        W_Q=w_q,
        W_K=w_k,
        W_V=w_v,
        W_O=w_o,
        **selector,
        W_U=answer_unembedding(layout, codes),
    )
    return model, layout


CHAIN = Construction(
    name="chain",
    label="Gk",
    model="the Gk model",
    facts="multi_hop",
    theorem="Gk",
    size=chain_sizes,
    build=build_chain,
)
