"""The built-in theorems (docs/theory.md sections 3-5): G1, LB1, NLB24, BARNFIELD26, COMPACT,
Gk, LBk and Ck, in the order the registry lists them. Their model sizes are the construction
shapes of :mod:`verifier.theory.sizes`."""

from __future__ import annotations

import sympy as sp

from verifier.theory.declarations import Param, Quantity, Theorem
from verifier.theory.sizes import (
    CK_SHAPES,
    COMPACT_SHAPES,
    G1_SHAPES,
    GK_SHAPES,
    mlp_params,
)
from verifier.theory.symbols import (
    DELTA,
    GAMMA,
    INSTANCE_PARAMS,
    PARAM_COUNT,
    PRECISION,
    A,
    N,
    P,
    R,
    delta,
    gamma,
    k,
    m,
    p,
)

LOG2_FACT = sp.loggamma(N + 1) / sp.log(2)  # log2(N!) without building N!
G1_CODE_LENGTH = 2 * sp.log(N**2 / delta) / (1 - gamma) ** 2
G1_D, G1_W = G1_SHAPES.d_model, G1_SHAPES.d_mlp
G1_CODE_WIDTH = Param(
    m,
    "code width (default: the union-bound code length, unrounded)",
    given="code_dim",
    default=G1_CODE_LENGTH,
)

G1 = Theorem(
    id="G1",
    statement="The geometric construction recalls all N*R facts exactly with margin gamma at "
    "d = R m + R + m, m = 2 ln(N^2/delta)/(1-gamma)^2 = O(log N), so d = O(R log N).",
    source="reconstruction",
    params=(
        *INSTANCE_PARAMS,
        G1_CODE_WIDTH,
        DELTA,
        GAMMA,
    ),
    quantities=(
        Quantity(
            "code_length",
            G1_CODE_LENGTH,
            "Rademacher code width at which mu <= 1 - gamma w.p. >= 1 - delta",
        ),
        Quantity("code_dim", sp.ceiling(G1_CODE_LENGTH), "the smallest integer width >= it"),
        Quantity("embedding_dim", G1_D, "d_model = R m + R + m"),
        Quantity("mlp_width", G1_W, "d_mlp = 2 R m"),
        Quantity(
            "params",
            G1_SHAPES.params,
            "(N+R) d + L d + 4 d d_head H + 2 d d_mlp + d_mlp + d + d A, L = 2, H = 1, d_head = R",
        ),
        Quantity("fact_params", N * G1_D, "fact-specific parameters: the subject table N d"),
        Quantity(
            "mlp_params",
            mlp_params(G1_D, G1_W),
            "W_in, b_in, W_out, b_out: independent of the facts",
        ),
    ),
    assumptions=(
        "one head, d_head = R, L = 2 positions [r, x]",
        "Rademacher codes +-1/sqrt(m); union bound over attribute pairs",
        "exact recall iff mu < 1; the verifier measures mu exactly",
    ),
)

LB1 = Theorem(
    id="LB1",
    statement="A model answering all N*R facts stores R log2(N!) bits: P p >= R log2(N!), and "
    "N d p >= R log2(N!) when only the subject table is fact-specific.",
    source="reconstruction",
    params=(*INSTANCE_PARAMS, PRECISION, PARAM_COUNT),
    quantities=(
        Quantity("bits", R * LOG2_FACT, "R log2(N!): the entropy of R random bijections"),
        Quantity("min_params", R * LOG2_FACT / p, "P >= R log2(N!) / p"),
        Quantity(
            "min_embedding_dim",
            R * LOG2_FACT / (N * p),
            "d >= R log2(N!) / (N p) with a fact-specific subject table only",
        ),
        Quantity(
            "approx_min_embedding_dim",
            R * (sp.log(N, 2) - sp.log(sp.E, 2)) / p,
            "R (log2 N - log2 e) / p, Stirling's leading terms (below the exact bound)",
        ),
        Quantity(
            "bits_per_param", R * LOG2_FACT / P, "R log2(N!) / P for a model with P parameters"
        ),
    ),
    assumptions=(
        "pi_1..pi_R uniform and independent",
        "p bits per parameter",
        "every fact recalled exactly",
    ),
)

NLB24 = Theorem(
    id="NLB24",
    statement="An associative memory (frozen random embeddings) stores the N*R facts in its "
    "MLP or attention with parameters linear in N*R, up to log factors.",
    source="literature",
    citation="Nichani, Lee, Bietti (2024), Understanding Factual Recall in Transformers via "
    "Associative Memories, arXiv:2412.06538",
    params=INSTANCE_PARAMS,
    quantities=(
        Quantity("facts", N * R, "n = N R facts"),
        Quantity("mlp_params", N * R, "memory parameters, Theta(N R) up to logs (constant 1)"),
    ),
    assumptions=("frozen random embeddings", "log factors and constants dropped (constant 1)"),
)

_n_facts = N * R
BARNFIELD26 = Theorem(
    id="BARNFIELD26",
    statement="A d x d linear associative memory with top-1 retrieval of n = N R facts needs "
    "d^2 of order n log n.",
    source="literature",
    citation="Barnfield et al. (2026), capacity of linear associative memories with top-1 "
    "retrieval: d^2 = Theta(n log n)",
    params=INSTANCE_PARAMS,
    quantities=(
        Quantity("memory_params", _n_facts * sp.log(_n_facts), "d^2 = n ln n (constant 1)"),
        Quantity("embedding_dim", sp.sqrt(_n_facts * sp.log(_n_facts)), "d = sqrt(n ln n)"),
        Quantity(
            "params",
            (N + R) * sp.sqrt(_n_facts * sp.log(_n_facts))
            + _n_facts * sp.log(_n_facts)
            + A * sp.sqrt(_n_facts * sp.log(_n_facts)),
            "embeddings (N+R) d + memory d^2 + unembedding A d",
        ),
    ),
    assumptions=("n = N R facts", "constants dropped (constant 1)"),
)

COMPACT_D, COMPACT_W = COMPACT_SHAPES.d_model, COMPACT_SHAPES.d_mlp

COMPACT = Theorem(
    id="COMPACT",
    statement="The compact geometric construction (G1 without its answer slot: the MLP "
    "cancels the relations not asked, the unembedding reads every slot) recalls all N*R "
    "facts exactly with margin 1 - mu at d = R m + R, MLP width 2 R m.",
    source="reconstruction",
    params=(
        *INSTANCE_PARAMS,
        G1_CODE_WIDTH,
        DELTA,
        GAMMA,
    ),
    quantities=(
        Quantity("code_dim", sp.ceiling(G1_CODE_LENGTH), "the smallest integer width >= it"),
        Quantity("embedding_dim", COMPACT_D, "d_model = R m + R"),
        Quantity("mlp_width", COMPACT_W, "d_mlp = 2 R m"),
        Quantity(
            "params",
            COMPACT_SHAPES.params,
            "(N+R) d + L d + 4 d d_head H + 2 d d_mlp + d_mlp + d + d A, L = 2, H = 1, d_head = R",
        ),
        Quantity("fact_params", N * COMPACT_D, "fact-specific parameters: N (R m + R)"),
    ),
    assumptions=(
        "one head, d_head = R, L = 2 positions [r, x]",
        "the same codebook and coherence as G1",
    ),
)

# --- multi-hop (docs/theory.md section 5) ---

LBK_APPROX_BITS: sp.Expr = R**k * sp.log(N, 2)
LBK_MIN_EMBEDDING_DIM: sp.Expr = LBK_APPROX_BITS / p
NO_COT_DEPTH_AT_BUDGET: sp.Expr = sp.log(P / (N * m), R)

_CODE_WIDTH = Param(
    m,
    "code width (default: G1's union-bound code length, unrounded)",
    given="code_dim",
    default=G1_CODE_LENGTH,
)
_HARD_ATTENTION = (
    "shared attributes",
    "codebook coherence mu < 1",
    "hard positional attention (docs/theory.md section 5)",
)

GK = Theorem(
    id="Gk",
    statement="Without chain-of-thought, a one-layer transformer with R^k chain slots, k "
    "positional heads and a ReLU-AND gate recalls all N R^k queries with margin 1 - mu.",
    source="reconstruction",
    params=(*INSTANCE_PARAMS, _CODE_WIDTH, DELTA, GAMMA),
    quantities=(
        Quantity("embedding_dim", GK_SHAPES.d_model, "d = R^k m + k R + m + 2"),
        Quantity("mlp_width", GK_SHAPES.d_mlp, "d_mlp = 2 R^k m"),
        Quantity("params", GK_SHAPES.params, "section 2's count with H = k heads, L = k + 1"),
        Quantity("fact_params", N * GK_SHAPES.d_model, "the subject table N d"),
    ),
    assumptions=_HARD_ATTENTION,
)

LBK = Theorem(
    id="LBk",
    statement="With a fact-independent decoder and p-bit weights, d p >= H(T_x), about "
    "R^k log2 N bits while R^k << N.",
    source="reconstruction",
    params=(*INSTANCE_PARAMS, PRECISION, PARAM_COUNT, _CODE_WIDTH, DELTA, GAMMA),
    quantities=(
        Quantity("bits", LBK_APPROX_BITS, "R^k log2 N: the closed form of H(T_x)"),
        Quantity("min_embedding_dim", LBK_MIN_EMBEDDING_DIM, "d >= R^k log2(N) / p"),
        Quantity(
            "depth_at_budget",
            NO_COT_DEPTH_AT_BUDGET,
            "k = log_R(P / (N m)): the depth a budget of P parameters reaches without CoT",
        ),
    ),
    assumptions=("uniform random bijections", "only the subject table depends on the facts"),
)

CK = Theorem(
    id="Ck",
    statement="With chain-of-thought, G1's selector plus one head attending k positions back "
    "recalls all N R^k queries by k greedy steps, each with margin 1 - mu.",
    source="reconstruction",
    params=(*INSTANCE_PARAMS, _CODE_WIDTH, DELTA, GAMMA),
    quantities=(
        Quantity("embedding_dim", CK_SHAPES.d_model, "d = R m + R + m + 2"),
        Quantity("mlp_width", CK_SHAPES.d_mlp, "d_mlp = 2 R m"),
        Quantity("params", CK_SHAPES.params, "section 2's count with H = 1 head, L = 2 k"),
        Quantity("decode_steps", k, "k greedy steps"),
    ),
    assumptions=_HARD_ATTENTION,
)


BUILTIN_THEOREMS: tuple[Theorem, ...] = (G1, LB1, NLB24, BARNFIELD26, COMPACT, GK, LBK, CK)
