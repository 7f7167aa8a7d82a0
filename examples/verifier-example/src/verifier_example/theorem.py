"""PADDED: the compact construction (docs/theory.md 3b) with one spare residual
coordinate that no weight reads or writes, ``d = R m + R + 1``. Torch-free."""

from __future__ import annotations

import sympy as sp

from verifier.theory import CODE_DIM, INSTANCE_PARAMS, Quantity, Theorem
from verifier.theory.sizes import ShapeFormulas
from verifier.theory.symbols import A, N, R, m

PADDED_SHAPES = ShapeFormulas(
    label="PADDED_COMPACT",
    n_vocab=N + R,
    n_ctx=sp.Integer(2),
    d_model=R * m + R + 1,
    d_head=R,
    n_heads=sp.Integer(1),
    d_mlp=2 * R * m,
    n_out=A,
)

PADDED = Theorem(
    id="PADDED",
    statement="The compact construction with one unused residual coordinate recalls all N*R "
    "facts with the compact margin 1 - mu at d = R m + R + 1.",
    source="user",
    params=(*INSTANCE_PARAMS, CODE_DIM),
    quantities=(
        Quantity("embedding_dim", PADDED_SHAPES.d_model, "d_model = R m + R + 1"),
        Quantity("mlp_width", PADDED_SHAPES.d_mlp, "d_mlp = 2 R m"),
        Quantity("params", PADDED_SHAPES.params, "section 2's count at these shapes"),
    ),
    assumptions=("the compact construction's, the spare coordinate zero in every weight",),
)
