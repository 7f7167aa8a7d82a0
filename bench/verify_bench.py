"""Exact verification throughput of G1 at N = 4096, R = 8 (code_dim auto, margin 1/2).

Prints facts per second and the achieved float64 FLOP/s of the forward pass as a ratio to
``torch.matmul`` FLOP/s measured in the same process on the forward's largest matmul shape
(batch x d_model @ d_model x N). Goal: ratio >= 0.5.

    .venv/bin/python bench/verify_bench.py [--entities 4096] [--relations 8] [--batch 4096]

``--certified`` (default N = 32,768, R = 4) instead times both halves of exact verification,
brute force against the certified path, in one process: the code search (the scan that
computes every pair's inner product at each width it tries, with the Lipschitz skip, against
``smallest_code_dim``'s early-exit scans and witnesses; both must return the same m) and the
recall (``exact_recall``, every fact's N logits, against ``certified_recall``, whose Gram
extremes come from the search's final scan; both must agree on accuracy, first failure and
margin). Goal: certified total <= 1/10 of brute force. Wall and process CPU time are both
printed (CPU time is the steadier figure on a shared machine). ``--no-brute`` times the
certified path alone.

    .venv/bin/python bench/verify_bench.py --certified [--entities 32768] [--relations 4]
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np
import torch

from verifier.checks.construction import BATCH, fact_tokens
from verifier.constructions.codebooks import codebook, coherence, raw_columns, smallest_code_dim
from verifier.constructions.geometric import build_geometric
from verifier.device import resolve_device
from verifier.facts.bijections import BijectionFacts
from verifier.measure.certified import Readout, certified_recall, sign_gram_extremes
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


MAX_M = 2048


def scan_search(n: int, tau: float, seed: int, max_m: int) -> int:
    """The smallest m by full scans: every pair's product at each width tried."""
    signs = raw_columns("rademacher", n, max_m, seed).astype(np.float32)
    m = 1
    while m <= max_m:
        mu = round(coherence(np.ascontiguousarray(signs[:, :m])))
        excess = mu - tau * m
        if excess <= 1e-9:
            return m
        m += max(1, math.ceil(excess / (1 + tau) - 1e-12))
    raise RuntimeError("no width")


def compare_certified(n: int, r: int, brute_force: bool) -> None:
    """Code search and recall of G1 at (N, R), brute force against the certified path."""
    seed = 7
    facts = BijectionFacts(n, r, seed=seed)
    print(
        f"machine: {platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}, device {resolve_device().type}, torch {torch.__version__}"
    )

    t, c = time.perf_counter(), time.process_time()
    found = smallest_code_dim("rademacher", n, 0.5, seed, MAX_M)
    search_cert, search_cert_cpu = time.perf_counter() - t, time.process_time() - c
    codes = codebook("rademacher", n, found.m, seed)
    model, layout = build_geometric(facts, codes)
    print(
        f"N={n} R={r} code_dim={found.m} d_model={layout.d_model} d_mlp={layout.d_mlp} "
        f"facts={facts.n_facts}"
    )
    t, c = time.perf_counter(), time.process_time()
    cert = certified_recall(
        model,
        Readout(codes, layout.readout),
        facts.batches(BATCH),
        lambda idx: fact_tokens(facts, idx),
        facts.n_facts,
        resolve_cap=None,
        gram=None
        if found.sign_extremes is None
        else sign_gram_extremes(codes, *found.sign_extremes),
    )
    recall_cert, recall_cert_cpu = time.perf_counter() - t, time.process_time() - c
    assert cert is not None
    res = cert.result
    print(
        f"certified: search {search_cert:.1f} s ({found.evaluated} scans), recall "
        f"{recall_cert:.1f} s ({cert.certified} certified, {cert.full_logits} full logits), "
        f"total {search_cert + recall_cert:.1f} s; {res.correct}/{res.total} facts, "
        f"margin {res.margin:.6g}; CPU time search {search_cert_cpu:.1f} s, recall "
        f"{recall_cert_cpu:.1f} s",
        flush=True,
    )
    if not brute_force:
        return
    t, c = time.perf_counter(), time.process_time()
    m_scan = scan_search(n, 0.5, seed, MAX_M)
    search_brute, search_brute_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"brute force search: {search_brute:.1f} s (m = {m_scan})", flush=True)
    t, c = time.perf_counter(), time.process_time()
    brute = exact_recall(model, facts.batches(BATCH), facts.n_facts)
    recall_brute, recall_brute_cpu = time.perf_counter() - t, time.process_time() - c
    assert m_scan == found.m, f"search: scan {m_scan}, certified {found.m}"
    assert (brute.correct, brute.first_failure) == (res.correct, res.first_failure)
    assert brute.margin == res.margin, f"margin: brute {brute.margin}, certified {res.margin}"
    total_brute, total_cert = search_brute + recall_brute, search_cert + recall_cert
    print(
        f"brute force: search {search_brute:.1f} s, recall {recall_brute:.1f} s, "
        f"total {total_brute:.1f} s"
    )
    print(
        f"ratio certified/brute: search {search_cert / search_brute:.3f}, recall "
        f"{recall_cert / recall_brute:.3f}, total {total_cert / total_brute:.3f} (goal <= 0.1)"
    )
    cpu_cert, cpu_brute = search_cert_cpu + recall_cert_cpu, search_brute_cpu + recall_brute_cpu
    print(
        f"CPU time brute force: search {search_brute_cpu:.1f} s, recall {recall_brute_cpu:.1f} s;"
        f" ratio certified/brute: search {search_cert_cpu / search_brute_cpu:.3f}, recall "
        f"{recall_cert_cpu / recall_brute_cpu:.3f}, total {cpu_cert / cpu_brute:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=None)
    parser.add_argument("--relations", type=int, default=None)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--certified", action="store_true")
    parser.add_argument("--no-brute", action="store_true")
    args = parser.parse_args()
    if args.certified:
        compare_certified(args.entities or 32_768, args.relations or 4, not args.no_brute)
        return
    args.entities = args.entities or 4096
    args.relations = args.relations or 8

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
