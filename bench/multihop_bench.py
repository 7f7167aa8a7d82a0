"""Benchmark: exact multi-hop verification (docs/theory.md section 5) at N = 1024, R = 3, k = 3.

Reports queries verified per second for Gk (one forward pass per query) and Ck (greedy decoding,
k forward passes per query), and the forward pass's FLOP/s as a ratio to float64 ``torch.matmul``
FLOP/s measured in the same process (a (4096 x d) @ (d x d_mlp) product at Gk's sizes).

Run: ``.venv/bin/python bench/multihop_bench.py [--entities 1024 --relations 3 --hops 3]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from verifier.checks.multihop import verify
from verifier.constructions.chain import CHAIN
from verifier.constructions.codebooks import codebook, smallest_code_dim
from verifier.constructions.cot import COT
from verifier.facts.chains import ChainFacts
from verifier.model import ModelConfig


def forward_flops(cfg: ModelConfig, batch: int, seq: int) -> int:
    """Multiply-adds x 2 of one last-position forward pass over ``batch`` sequences of ``seq``."""
    d, h, dh, w, n_out = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.n_out
    qkv = 2 * d * h * dh * (1 + 2 * seq)  # query at one position, keys and values at all
    mix = 2 * 2 * h * seq * dh  # scores and pattern @ v
    out = 2 * h * dh * d + 2 * 2 * d * w + 2 * d * n_out  # W_O, MLP, unembedding
    return batch * (qkv + mix + out)


def matmul_flops_per_s(rows: int, inner: int, cols: int, repeats: int = 5) -> float:
    """float64 ``torch.matmul`` FLOP/s at the given shape (best of ``repeats``)."""
    a = torch.randn(rows, inner, dtype=torch.float64)
    b = torch.randn(inner, cols, dtype=torch.float64)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * rows * inner * cols / best


def bench(n: int, n_rel: int, hops: int, margin: float, seed: int) -> None:
    """Time both modes and print the figures and ratios."""
    facts = ChainFacts(n, n_rel, hops, seed)
    m = smallest_code_dim("rademacher", n, 1 - margin, seed, 2048).m
    codes = codebook("rademacher", n, m, seed)
    print(
        f"N={n} R={n_rel} k={hops} m={m} queries={facts.n_queries:,} "
        f"torch threads={torch.get_num_threads()}"
    )
    for built in (CHAIN, COT):
        cot = built.cot
        start = time.perf_counter()
        res = verify(facts, codes, built)
        elapsed = time.perf_counter() - start
        cfg = res.model.cfg
        if cot:  # step i runs on k + i tokens
            flops = sum(forward_flops(cfg, facts.n_queries, hops + i) for i in range(1, hops + 1))
        else:
            flops = forward_flops(cfg, facts.n_queries, hops + 1)
        base = matmul_flops_per_s(4096, cfg.d_model, cfg.d_mlp)
        name = built.label
        print(
            f"{name}: d={cfg.d_model} d_mlp={cfg.d_mlp} params={res.model.n_params():,} "
            f"accuracy={res.accuracy} | {elapsed:.2f} s (build + verify) | "
            f"{facts.n_queries / elapsed:,.0f} queries/s | model {flops / elapsed / 1e9:.2f} "
            f"GFLOP/s | matmul {base / 1e9:.2f} GFLOP/s | ratio {flops / elapsed / base:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1024)
    parser.add_argument("--relations", type=int, default=3)
    parser.add_argument("--hops", type=int, default=3)
    parser.add_argument("--margin", type=float, default=0.1, help="code_dim auto's target")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bench(args.entities, args.relations, args.hops, args.margin, args.seed)


if __name__ == "__main__":
    main()
