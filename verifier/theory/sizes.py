"""Model sizes: docs/theory.md section 2's parameter count and each construction's shapes, as
sympy formulas evaluated exactly. The only place either is written.

Section 2's one-layer model with vocabulary V, L positions, width d, H heads of width d_head,
MLP width w and n_out outputs has

    W_E (V, d) + W_pos (L, d) + W_Q, W_K, W_V (H, d, d_head) + W_O (H, d_head, d)
    + W_in (d, w) + b_in (w) + W_out (w, d) + b_out (d) + W_U (d, n_out)

parameters: ``V d + L d + 4 H d d_head + 2 d w + w + d + d n_out``.

A construction's :class:`ShapeFormulas` give those seven shapes over the instance symbols
N, R, A (attributes), k (hops), m (code width) and C (chains); the theorems G1, COMPACT, Gk and
Ck quote them, and :meth:`ShapeFormulas.sizes` evaluates them exactly at a :class:`SizeParams`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from verifier.theory.evaluate import exact_integer
from verifier.theory.symbols import A, N, R, k, m

C = sp.Symbol("C", positive=True, integer=True)  # chains |C| of a multi-hop instance
POS_CODE = 2  # width of the chain constructions' positional code (cos, sin)
SHAPE_NAMES = ("n_vocab", "n_ctx", "d_model", "d_head", "n_heads", "d_mlp", "n_out")


def mlp_params(d_model: sp.Expr, d_mlp: sp.Expr) -> sp.Expr:
    """``W_in, b_in, W_out, b_out``: ``2 d w + w + d``."""
    return 2 * d_model * d_mlp + d_mlp + d_model


def one_layer_params(
    n_vocab: sp.Expr,
    n_ctx: sp.Expr,
    d_model: sp.Expr,
    d_head: sp.Expr,
    n_heads: sp.Expr,
    d_mlp: sp.Expr,
    n_out: sp.Expr,
) -> sp.Expr:
    """Section 2's count ``V d + L d + 4 H d d_head + 2 d w + w + d + d n_out``."""
    return (
        n_vocab * d_model
        + n_ctx * d_model
        + 4 * n_heads * d_model * d_head
        + mlp_params(d_model, d_mlp)
        + d_model * n_out
    )


_SHAPE_SYMBOLS = tuple(sp.Symbol(name, positive=True, integer=True) for name in SHAPE_NAMES)
MODEL_PARAMS: sp.Expr = one_layer_params(*_SHAPE_SYMBOLS)


def model_param_count(shapes: Mapping[str, int]) -> int:
    """Section 2's parameter count of a model with these shapes (:data:`SHAPE_NAMES`, the
    fields of :class:`verifier.model.ModelConfig`), exactly."""
    return exact_integer(MODEL_PARAMS, shapes, "the model's parameter count")


@dataclass(frozen=True)
class SizeParams:
    """What a construction's size depends on.

    Attributes:
        entities: N.
        relations: R.
        code_dim: m.
        attributes: A, N (shared) or R N (disjoint); None: N.
        hops: k.
        chains: |C|; None: every chain, R**k.
    """

    entities: int
    relations: int
    code_dim: int
    attributes: int | None = None
    hops: int = 1
    chains: int | None = None

    def values(self) -> dict[str, int]:
        """Symbol name -> value (C only when the chains are listed)."""
        n = self.entities
        values = {
            "N": n,
            "R": self.relations,
            "m": self.code_dim,
            "A": n if self.attributes is None else self.attributes,
            "k": self.hops,
        }
        if self.chains is not None:
            values["C"] = self.chains
        return values


@dataclass(frozen=True)
class Sizes:
    """A construction's exact shapes (the :class:`verifier.model.ModelConfig` fields) and its
    parameter count."""

    n_vocab: int
    n_ctx: int
    d_model: int
    d_head: int
    n_heads: int
    d_mlp: int
    n_out: int
    params: int

    def shapes(self) -> dict[str, int]:
        """The seven shapes, by ``ModelConfig`` field name."""
        return {name: getattr(self, name) for name in SHAPE_NAMES}


@dataclass(frozen=True)
class ShapeFormulas:
    """A construction's seven model shapes as sympy expressions; ``params`` follows."""

    label: str
    n_vocab: sp.Expr
    n_ctx: sp.Expr
    d_model: sp.Expr
    d_head: sp.Expr
    n_heads: sp.Expr
    d_mlp: sp.Expr
    n_out: sp.Expr

    @cached_property
    def params(self) -> sp.Expr:
        """Section 2's count at these shapes."""
        return one_layer_params(*(getattr(self, name) for name in SHAPE_NAMES))

    def sizes(self, params: SizeParams) -> Sizes:
        """Every shape and the parameter count at ``params``, exactly."""
        values = params.values()
        exact = {
            name: exact_integer(getattr(self, name), values, f"{self.label} {name}")
            for name in (*SHAPE_NAMES, "params")
        }
        return Sizes(**exact)


def _chain_shapes(label: str, chains: sp.Expr) -> ShapeFormulas:
    """Gk with ``chains`` slots: ``d = chains m + k R + m + 2``, ``d_mlp = 2 chains m``,
    ``H = k`` positional heads, ``L = k + 1``."""
    return ShapeFormulas(
        label=label,
        n_vocab=N + R,
        n_ctx=k + 1,
        d_model=chains * m + k * R + m + POS_CODE,
        d_head=sp.Max(R, POS_CODE),
        n_heads=k,
        d_mlp=2 * chains * m,
        n_out=N,
    )


G1_SHAPES = ShapeFormulas(
    label="G1",
    n_vocab=N + R,
    n_ctx=sp.Integer(2),
    d_model=R * m + R + m,
    d_head=R,
    n_heads=sp.Integer(1),
    d_mlp=2 * R * m,
    n_out=A,
)
COMPACT_SHAPES = ShapeFormulas(
    label="COMPACT",
    n_vocab=N + R,
    n_ctx=sp.Integer(2),
    d_model=R * m + R,
    d_head=R,
    n_heads=sp.Integer(1),
    d_mlp=2 * R * m,
    n_out=A,
)
CHAIN_SHAPES = _chain_shapes("Gk", C)  # any chain list: |C| slots
GK_SHAPES = _chain_shapes("Gk", R**k)  # every chain: the theorem's R**k slots
CK_SHAPES = ShapeFormulas(
    label="Ck",
    n_vocab=N + R,
    n_ctx=2 * k,
    d_model=R * m + R + m + POS_CODE,
    d_head=sp.Max(R, POS_CODE),
    n_heads=sp.Integer(1),
    d_mlp=2 * R * m,
    n_out=N,
)

GK_EMBEDDING_DIM, GK_MLP_WIDTH, GK_PARAMS = GK_SHAPES.d_model, GK_SHAPES.d_mlp, GK_SHAPES.params
CK_EMBEDDING_DIM, CK_MLP_WIDTH, CK_PARAMS = CK_SHAPES.d_model, CK_SHAPES.d_mlp, CK_SHAPES.params


def chain_sizes(params: SizeParams) -> Sizes:
    """Gk's sizes: |C| slots for a chain list, R**k (the theorem's formulas) for every chain."""
    return (GK_SHAPES if params.chains is None else CHAIN_SHAPES).sizes(params)
