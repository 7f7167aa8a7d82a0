"""Exact verification throughput of G1 at N = 4096, R = 8 (code_dim auto, margin 1/2).

Prints facts per second and the achieved float64 FLOP/s of the forward pass as a ratio to
``torch.matmul`` FLOP/s measured in the same process on the forward's largest matmul shape
(batch x d_model @ d_model x N). Goal: ratio >= 0.5.

    .venv/bin/python bench/verify_bench.py [--entities 4096] [--relations 8] [--batch 4096]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from verifier.checks.construction import BATCH
from verifier.constructions.codebooks import codebook, smallest_code_dim
from verifier.constructions.geometric import build_geometric
from verifier.facts.bijections import BijectionFacts
from verifier.measure.recall import exact_recall


def forward_flops(d: int, d_head: int, heads: int, d_mlp: int, n_out: int, n_ctx: int) -> int:
    """Multiply-adds x 2 of one last-position forward pass."""
    attn = heads * (2 * d * d_head * (1 + 2 * n_ctx) + 2 * d_head * n_ctx + 2 * d_head * d)
    mlp = 2 * d * d_mlp * 2
    unembed = 2 * d * n_out
    return attn + mlp + unembed


def matmul_rate(b: int, d: int, n: int, repeats: int = 5) -> float:
    """Best float64 FLOP/s of (b x d) @ (d x n) over ``repeats`` runs."""
    x = torch.randn(b, d, dtype=torch.float64)
    w = torch.randn(d, n, dtype=torch.float64)
    torch.matmul(x, w)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(x, w)
        best = min(best, time.perf_counter() - t)
    return 2 * b * d * n / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=4096)
    parser.add_argument("--relations", type=int, default=8)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    facts = BijectionFacts(args.entities, args.relations, seed=7)
    t0 = time.perf_counter()
    search = smallest_code_dim("rademacher", facts.n_attributes, 0.5, 7, 4096)
    codes = codebook("rademacher", facts.n_attributes, search.m, 7)
    model, _ = build_geometric(facts, codes)
    setup = time.perf_counter() - t0
    cfg = model.cfg
    per_fact = forward_flops(cfg.d_model, cfg.d_head, cfg.n_heads, cfg.d_mlp, cfg.n_out, 2)

    best = float("inf")
    for _ in range(args.repeats):
        t = time.perf_counter()
        result = exact_recall(model, facts.batches(args.batch), facts.n_facts)
        best = min(best, time.perf_counter() - t)
    assert result.correct == facts.n_facts, "G1 must recall every fact"
    achieved = per_fact * facts.n_facts / best
    reference = matmul_rate(args.batch, cfg.d_model, cfg.n_out)

    print(
        f"machine: {platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}, torch {torch.__version__}"
    )
    print(
        f"N={args.entities} R={args.relations} code_dim={search.m} d_model={cfg.d_model} "
        f"d_mlp={cfg.d_mlp} facts={facts.n_facts} batch={args.batch}"
    )
    print(f"code search + build: {setup:.2f} s ({search.evaluated} widths evaluated)")
    print(
        f"verification: {best:.3f} s (best of {args.repeats}), "
        f"{facts.n_facts / best:,.0f} facts/s, margin {result.margin:.4f}"
    )
    print(
        f"forward FLOP/s: {achieved / 1e9:.2f} GFLOP/s; matmul {reference / 1e9:.2f} GFLOP/s; "
        f"ratio {achieved / reference:.2f} (goal >= 0.5)"
    )


if __name__ == "__main__":
    main()
