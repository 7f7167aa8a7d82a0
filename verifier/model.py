"""The one-layer transformer of docs/theory.md section 2, with TransformerLens weight names.

``h0_t = W_E[tok_t] + W_pos[t]``; ``h1 = h0 + Attn(h0)`` (H causal softmax heads);
``h2 = h1 + W_out^T ReLU(W_in^T h1 + b_in) + b_out``; ``logits = h2 @ W_U``. No layer norm.
Constructions write these weights directly, so a construction is verified by running this
forward pass, and training optimises the very same class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of the model."""

    n_vocab: int  # input tokens: entities, relations, specials
    n_ctx: int  # positions L
    d_model: int  # residual width d
    d_head: int
    n_heads: int  # H
    d_mlp: int  # MLP hidden width (the code width m is a construction's, not the model's)
    n_out: int  # output vocabulary (attributes)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise ValueError(f"ModelConfig.{name}: expected >= 1, got {value}")


def causal_mask(
    n_pos: int, queries: Sequence[int], device: torch.device | None = None
) -> torch.Tensor:
    """``(Q, n_pos)`` bool: True where key position j comes after query position q (``j > q``),
    the scores causal attention sets to -inf. Shared by this model and the trainer's forward."""
    keys = torch.arange(n_pos, device=device)
    query = torch.tensor(list(queries), dtype=keys.dtype, device=device)
    return keys[None, :] > query[:, None]


class OneLayerTransformer(nn.Module):
    """Embedding, one attention layer, one ReLU MLP, unembedding; residual stream throughout.

    The float64 reference that constructions write and every measure reads: named parameters,
    every position or the last, and the pieces (``embed``, ``attention``, ``mlp``) the measures
    take apart. The trainer's :class:`verifier.train.loop.StackedForward` computes the same
    function on S stacked replicates with other kernels (``bmm``, ``baddbmm``), whose rounding
    differs from these ``einsum`` and ``matmul`` products, so the two share only
    :func:`causal_mask`: a shared kernel would change either the trained weights or the
    measured values (tests/verifier/test_forward_passes.py checks that they agree).
    """

    W_E: nn.Parameter  # (vocab, d_model)
    W_pos: nn.Parameter  # (pos, d_model)
    W_Q: nn.Parameter  # (head, d_model, d_head)
    W_K: nn.Parameter
    W_V: nn.Parameter
    W_O: nn.Parameter  # (head, d_head, d_model)
    W_in: nn.Parameter  # (d_model, d_mlp)
    b_in: nn.Parameter
    W_out: nn.Parameter  # (d_mlp, d_model)
    b_out: nn.Parameter
    W_U: nn.Parameter  # (d_model, n_out)

    def __init__(self, cfg: ModelConfig, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.cfg = cfg
        for name, shape in self.shapes(cfg).items():
            setattr(self, name, nn.Parameter(torch.zeros(*shape, dtype=dtype)))

    @staticmethod
    def shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        """Every weight's shape, by TransformerLens name."""
        d, h, dh, mlp = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp
        return {
            "W_E": (cfg.n_vocab, d),  # (vocab, d_model)
            "W_pos": (cfg.n_ctx, d),  # (pos, d_model)
            "W_Q": (h, d, dh),  # (head, d_model, d_head)
            "W_K": (h, d, dh),
            "W_V": (h, d, dh),
            "W_O": (h, dh, d),  # (head, d_head, d_model)
            "W_in": (d, mlp),  # (d_model, d_mlp)
            "b_in": (mlp,),
            "W_out": (mlp, d),  # (d_mlp, d_model)
            "b_out": (d,),
            "W_U": (d, cfg.n_out),  # (d_model, n_out)
        }

    def n_params(self) -> int:
        """Total parameter count (every tensor above)."""
        return sum(p.numel() for p in self.parameters())

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(batch, pos)`` tokens -> ``(batch, pos, d_model)`` h0."""
        return self.W_E[tokens] + self.W_pos[: tokens.shape[1]]

    def attention(self, h0: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Causal multi-head attention output added to the residual: ``(batch, pos', d_model)``.

        With ``last_only`` only the last position's output is computed (pos' = 1).
        """
        n_pos = h0.shape[1]
        queries_from = h0[:, -1:] if last_only else h0
        q = torch.einsum("bpd,hde->bhpe", queries_from, self.W_Q)  # (batch, head, pos_q, d_head)
        k = torch.einsum("bpd,hde->bhpe", h0, self.W_K)  # (batch, head, pos, d_head)
        v = torch.einsum("bpd,hde->bhpe", h0, self.W_V)
        scores = q @ k.transpose(-1, -2) / self.cfg.d_head**0.5  # (batch, head, pos_q, pos)
        mask = causal_mask(n_pos, range(n_pos - queries_from.shape[1], n_pos), h0.device)
        scores = scores.masked_fill(mask, float("-inf"))
        pattern = scores.softmax(dim=-1)
        z = pattern @ v  # (batch, head, pos_q, d_head)
        return torch.einsum("bhpe,hed->bpd", z, self.W_O)

    def mlp(self, h1: torch.Tensor) -> torch.Tensor:
        """``(..., d_model)`` -> MLP output ``(..., d_model)``."""
        return torch.relu(h1 @ self.W_in + self.b_in) @ self.W_out + self.b_out

    def mlp_pre(self, h1: torch.Tensor) -> torch.Tensor:
        """MLP pre-activations ``(..., d_mlp)``."""
        return h1 @ self.W_in + self.b_in

    def residual(self, tokens: torch.Tensor, last_only: bool = True) -> torch.Tensor:
        """h1, the residual stream after attention: ``(batch, pos or 1, d_model)``."""
        h0 = self.embed(tokens)
        base = h0[:, -1:] if last_only else h0
        return base + self.attention(h0, last_only=last_only)

    def forward(self, tokens: torch.Tensor, last_only: bool = True) -> torch.Tensor:
        """``(batch, pos)`` tokens -> logits ``(batch, n_out)`` (last position) or
        ``(batch, pos, n_out)``."""
        h1 = self.residual(tokens, last_only=last_only)
        h2 = h1 + self.mlp(h1)
        logits = h2 @ self.W_U
        return logits[:, -1] if last_only else logits
