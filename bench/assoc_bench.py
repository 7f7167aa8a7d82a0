"""Our associative capacity search against the peer's published protocol cost.

The peer (Nichani, Lee, Bietti, ``mlp_sweep.py``) bisects N at d = m = 16 with 7 probes of
full-batch Adam (lr 3e-2, up to 2^15 steps, stop at accuracy >= 0.99); run unchanged on this
machine in JAX, that point took 32 s (4.6 s a probe). A probe that holds stops early; one that
fails runs all 2^15 steps, so the cost of a point is the failing probes' step count times the
time of a step. Measured here, same process, CPU time of this process:

- ms per step of :func:`verifier.train.train_replicates` in the peer's setting
  (``attention="none"``, unit-norm frozen W_E and W_U, only W_in, b_in, W_out trained) for one
  replicate and for three stacked, against a plain PyTorch loop of the peer's MLP
  (``relu(E W1 + b1) W2 @ U^T``, Adam) on the same shapes;
- the seconds of the peer's 7-probe bisection at d = 16 (N = 136, 196, 166, 181, 173, 169, 167,
  the sequence its bisection takes from [16, 256] when 166 is the capacity), by our trainer:
  each probe trains to 0.99 or to 2^15 steps (``--full``), or, by default, the holding probes
  are trained and each failing probe is costed at 2^15 steps times the measured ms per step.

``--floor`` adds the bisection's arithmetic floor: the CPU seconds of the operations any eager
full-batch step of this model must do (the logits ``h2 W_U``, their powers, the row sums and
``P W_U^T``: two ``N x d x N`` products and an ``N x N`` exponential a replicate), timed alone
at each probe's N with the replicates stacked and summed over the steps each probe ran, on one
core and split perfectly over two. The measured bisection over that floor is the share of the
time that is not this arithmetic.

``--two-processes`` trains every probe in full with its replicates split over this process
and one spawned worker (wall and CPU seconds): what two cores give. The product's capacity
search does not do this (it bisects one value at a time in one process), so that figure is
not the product's.

Usage: ``.venv/bin/python bench/assoc_bench.py [--steps 1000] [--full] [--replicates 3]
[--floor] [--two-processes]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import multiprocessing
import time
from dataclasses import replace

import torch

from verifier.facts.bijections import BijectionFacts
from verifier.train import TrainConfig, fact_task, initial_weights, train_replicates

D = 16
PEER_PROBES = (136, 196, 166, 181, 173, 169, 167)  # the peer's bisection at d = m = 16
PEER_SECONDS = 32.0  # its JAX run of that point on this machine
BUDGET = 2**15


def peer_config(steps: int) -> TrainConfig:
    """The peer's protocol in our trainer (specs/scaling/full/associative_capacity.spec.yaml)."""
    return TrainConfig(
        d_model=D,
        d_mlp=D,
        optimizer="adam",
        lr=3e-2,
        steps=steps,
        stop_accuracy=0.99,
        stop_loss=1e9,
        attention="none",
        unit_norm=("W_E", "W_U"),
        freeze=("W_E", "W_U", "W_pos", "b_out"),
        init=(("W_pos", 0.0),),
    )


def ours_ms_per_step(n: int, replicates: int, steps: int) -> float:
    """CPU ms per step of our trainer at N = n, every step run (no early stop)."""
    seeds = list(range(replicates))
    tasks = [fact_task(BijectionFacts(n, 1, seed=s)) for s in seeds]
    cfg = replace(peer_config(steps), stop_accuracy=1.0, stop_loss=-1.0)  # every step run
    train_replicates(tasks, replace(cfg, steps=2), seeds)  # warm-up
    start = time.process_time()
    train_replicates(tasks, cfg, seeds)
    return 1000 * (time.process_time() - start) / steps


def plain_ms_per_step(n: int, steps: int) -> float:
    """CPU ms per step of a plain loop of the peer's MLP on our initial weights at N = n."""
    task = fact_task(BijectionFacts(n, 1, seed=0))
    w = initial_weights(task, peer_config(steps), 0)
    E, U = w["W_E"], w["W_U"]  # (n, d), (d, n): frozen
    W1, b1, W2 = (w[k].clone().requires_grad_(True) for k in ("W_in", "b_in", "W_out"))
    opt = torch.optim.Adam([W1, b1, W2], lr=3e-2)
    target = task.targets
    start = time.process_time()
    for _ in range(steps):
        logits = (torch.relu(E @ W1 + b1) @ W2) @ U
        loss = torch.nn.functional.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return 1000 * (time.process_time() - start) / steps


def bisection_seconds(
    ms_step: float, full: bool, replicates: int = 1
) -> list[tuple[int, int, float, float]]:
    """Per peer probe: (N, steps, accuracy, CPU s); failing probes costed at the budget unless
    ``full`` trains them. With ``replicates`` > 1 the probe trains that many seeds stacked and
    reports the first replicate's steps and accuracy."""
    rows = []
    for n in PEER_PROBES:
        seeds = list(range(replicates))
        tasks = [fact_task(BijectionFacts(n, 1, seed=s)) for s in seeds]
        cap = BUDGET if full else 4096  # a probe still short of 0.99 at 4096 steps fails
        start = time.process_time()
        res = train_replicates(tasks, peer_config(cap), seeds)[0]
        seconds = time.process_time() - start
        if not res.stopped_early and not full:
            seconds = BUDGET * ms_step / 1000  # costed: 2^15 steps at the measured rate
        rows.append((n, res.steps if res.stopped_early else BUDGET, res.final_accuracy, seconds))
    return rows


def floor_ms_per_step(n: int, replicates: int, repeats: int = 300) -> float:
    """CPU ms of the arithmetic every eager full-batch step of the peer's model does at N = n
    with ``replicates`` stacked: ``2^(h2 W_U)`` ``(S, n, d) x (S, d, n)``, its row sums, and
    ``P W_U^T`` ``(S, n, n) x (S, n, d)``, the least time of five rounds, nothing else (no
    small products, no update, no Python loop)."""
    g = torch.Generator().manual_seed(0)
    h2 = torch.randn(replicates, n, D, generator=g)
    w_u = torch.randn(replicates, D, n, generator=g) / 4
    w_u_t = w_u.transpose(1, 2)
    probs = torch.empty(replicates, n, n)
    sums = torch.empty(replicates, n, 1)
    dh2 = torch.empty(replicates, n, D)

    def once() -> None:
        torch.bmm(h2, w_u, out=probs).exp2_()
        torch.sum(probs, 2, True, out=sums)
        torch.bmm(probs, w_u_t, out=dh2)

    for _ in range(20):
        once()
    best = math.inf
    for _ in range(5):
        start = time.process_time()
        for _ in range(repeats):
            once()
        best = min(best, (time.process_time() - start) / repeats)
    return 1000 * best


def _train_group(n: int, seeds: list[int], cap: int) -> tuple[list[tuple[int, float]], float]:
    """One process's share of a probe: ``(steps, accuracy)`` per seed, and its CPU seconds."""
    torch.set_num_threads(1)
    start = time.process_time()
    tasks = [fact_task(BijectionFacts(n, 1, seed=s)) for s in seeds]
    res = train_replicates(tasks, peer_config(cap), seeds)
    return [(r.steps, r.final_accuracy) for r in res], time.process_time() - start


def bisection_two_processes(
    replicates: int,
) -> list[tuple[int, list[tuple[int, float]], float, float]]:
    """Per peer probe, ``--full``: the replicates split over this process and one worker
    process (the first ``ceil(r / 2)`` seeds stacked in the worker, the rest stacked here),
    every probe trained to 0.99 or 2^15 steps. ``(N, (steps, accuracy) per seed, wall s,
    CPU s of both processes)``. Not the product's search, which bisects in one process."""
    split = (replicates + 1) // 2
    context = multiprocessing.get_context("spawn")
    rows = []
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        pool.submit(_train_group, 16, [0], 2).result()  # start the worker (imports) untimed
        for n in PEER_PROBES:
            seeds = list(range(replicates))
            wall = time.perf_counter()
            there = pool.submit(_train_group, n, seeds[:split], BUDGET)
            here, cpu_here = _train_group(n, seeds[split:], BUDGET) if seeds[split:] else ([], 0.0)
            runs, cpu_there = there.result()
            rows.append((n, runs + here, time.perf_counter() - wall, cpu_here + cpu_there))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps per ms/step measurement")
    parser.add_argument("--full", action="store_true", help="train failing probes to 2^15 steps")
    parser.add_argument("--replicates", type=int, default=1, help="seeds stacked per probe")
    parser.add_argument(
        "--floor", action="store_true", help="also the bisection's arithmetic floor (see above)"
    )
    parser.add_argument(
        "--two-processes",
        action="store_true",
        help="--full with each probe's replicates split over two processes (wall and CPU s)",
    )
    args = parser.parse_args()
    if args.two_processes:
        rows2 = bisection_two_processes(args.replicates)
        for n_, runs, wall, cpu in rows2:
            print(f"  probe N = {n_}: (steps, accuracy) per seed {runs}, {wall:.1f} s wall, "
                  f"{cpu:.1f} s CPU")  # fmt: skip
        wall, cpu = sum(r[2] for r in rows2), sum(r[3] for r in rows2)
        print(f"peer's 7-probe bisection at d = {D}, {args.replicates} replicates a probe over "
              f"two processes: {wall:.1f} s wall, {cpu:.1f} s CPU; the peer's JAX "
              f"{PEER_SECONDS:.0f} s; wall ratio {wall / PEER_SECONDS:.2f}")  # fmt: skip
        return
    torch.set_num_threads(1)
    n = 181
    plain = plain_ms_per_step(n, args.steps)
    one = ours_ms_per_step(n, 1, args.steps)
    three = ours_ms_per_step(n, 3, args.steps)
    print(
        f"N = {n}, d = m = {D}: plain loop {plain:.3f} ms/step, ours {one:.3f} ms/step "
        f"(ratio {one / plain:.2f}), ours with 3 replicates stacked {three:.3f} ms/step "
        f"({three / 3:.3f} per replicate)"
    )
    rows = bisection_seconds(one, args.full, args.replicates)
    total = sum(r[3] for r in rows)
    for n_, steps, acc, seconds in rows:
        print(f"  probe N = {n_}: {steps} steps, accuracy {acc:.4f}, {seconds:.1f} s")
    costed = "" if args.full else " (failing probes costed at 2^15 steps)"
    print(
        f"peer's 7-probe bisection at d = {D}, {args.replicates} replicate(s) a probe: "
        f"ours {total:.1f} s{costed}, "
        f"{total / len(rows):.1f} s per probe; the peer's JAX {PEER_SECONDS:.0f} s "
        f"({PEER_SECONDS / len(rows):.1f} s per probe); ratio {total / PEER_SECONDS:.2f}"
    )
    print(f"  ({math.ceil(total / 60)} min of CPU; 3 replicates stack at {three / one:.2f}x one)")
    if args.floor:
        floor = sum(steps * floor_ms_per_step(n_, args.replicates) / 1000 for n_, steps, *_ in rows)
        print(
            f"arithmetic floor of those steps ({args.replicates} replicate(s) stacked: two "
            f"N x {D} x N products and an N x N exponential a replicate a step): {floor:.1f} s "
            f"on one core, {floor / 2:.1f} s split over two; the bisection is "
            f"{total / floor:.2f}x its floor; the peer's JAX {PEER_SECONDS:.0f} s is "
            f"{PEER_SECONDS / floor:.2f}x our floor on one core, {2 * PEER_SECONDS / floor:.2f}x "
            f"on two"
        )


if __name__ == "__main__":
    main()
