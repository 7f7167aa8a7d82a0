"""Training throughput: our trainer against a plain loop, and stacked replicates against serial.

Three measurements, each a ratio of two runs in this process (CPU time of this process, so
other load on the machine inflates both sides alike):

- ``--plain`` (default): ``verifier.train.train`` against a plain loop of the *same* model
  (:class:`~verifier.model.OneLayerTransformer`, the same initial weights from
  :func:`~verifier.train.build_model`, AdamW, mean cross-entropy, backward, step) for the same
  number of steps, with the stopping rule disabled so both run every step. Ours also computes
  each step's accuracy and history; the plain loop computes nothing but the loss.
- ``--replicates S``: S replicates trained as one stacked model
  (:func:`~verifier.train.train_replicates`) against S serial runs of the same seeds, and the
  largest weight difference between the two (0.0: bitwise equal).
- ``--threads-check``: ms per step at 1 and 2 intra-op threads on a small and a large task, and
  whether the weights agree bitwise (the evidence for ``training_threads`` and the thread count
  in the checkpoint key).

Tasks: ``regime`` (specs/training/gd_geometric.spec.yaml: N = 512, R = 2, d = d_mlp = 64,
uniform attention, per-subject SGD on W_E, AdamW elsewhere), ``default`` (N = 512, R = 4,
d = 32, width 256, learned attention, AdamW everywhere), ``small`` (the 256 two-hop queries of
specs/training/multi_hop.spec.yaml), ``control`` (N = 256, R = 4, d = 24, width 8).
Usage: ``.venv/bin/python bench/train_bench.py [--task regime] [--steps 150] [--replicates 5]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts
from verifier.train import (
    OptimGroup,
    TrainConfig,
    TrainTask,
    build_model,
    fact_task,
    query_task,
    train,
    train_replicates,
)
from verifier.train.loop import _train_stacked

REGIME = TrainConfig(
    d_model=64,
    d_mlp=64,
    optimizer="adamw",
    lr=3e-3,
    weight_decay=0.1,
    attention="uniform",
    init=(("W_E", 0.01),),
    groups=(("W_E", OptimGroup("sgd", 0.1, 0.9, 3e-3, True)),),
)


def task_of(name: str, seed: int) -> tuple[TrainTask, TrainConfig]:
    """One of the benchmark tasks at instance seed ``seed``, and its settings."""
    if name == "regime":
        return fact_task(BijectionFacts(512, 2, seed=seed)), REGIME
    if name == "default":
        cfg = TrainConfig(d_model=32, d_mlp=256, optimizer="adamw", lr=1e-2, weight_decay=0.1)
        return fact_task(BijectionFacts(512, 4, seed=seed)), cfg
    if name == "control":
        cfg = replace(REGIME, d_model=24, d_mlp=8)
        return fact_task(BijectionFacts(256, 4, seed=seed)), cfg
    cfg = TrainConfig(d_model=24, d_mlp=128, n_heads=2, optimizer="adamw", lr=1e-2)
    return query_task(ChainFacts(64, 2, 2, seed=seed), cot=False), cfg


def plain_loop(task: TrainTask, cfg: TrainConfig, steps: int) -> float:
    """CPU seconds of ``steps`` plain AdamW steps on the same model and initial weights."""
    model = build_model(task, cfg)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    start = time.process_time()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(task.tokens), task.targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return time.process_time() - start


def plain(name: str, steps: int, repeats: int) -> None:
    """Ours against the plain loop, alternating, ``repeats`` times."""
    task, cfg = task_of(name, 0)
    # the plain loop has one optimiser: compare like with like (AdamW on every weight)
    cfg = replace(cfg, steps=steps, stop_loss=-1.0, groups=(), init=())
    train(task, replace(cfg, steps=2))  # warm-up: lazy imports of the first optimiser step
    plain_loop(task, cfg, 2)
    for _ in range(repeats):
        start = time.process_time()
        train(task, cfg)
        ours = time.process_time() - start
        base = plain_loop(task, cfg, steps)
        print(
            f"{name}: {steps} steps, ours {ours:.2f} s, plain loop {base:.2f} s, "
            f"ratio ours/plain {ours / base:.3f}"
        )


def stacked(name: str, steps: int, count: int) -> None:
    """``count`` replicates stacked against ``count`` serial runs, and their weight difference."""
    pairs = [task_of(name, s) for s in range(count)]
    tasks, cfg = [t for t, _ in pairs], replace(pairs[0][1], steps=steps, stop_loss=-1.0)
    train(tasks[0], replace(cfg, steps=2))  # warm-up
    start = time.process_time()
    together = train_replicates(tasks, cfg, list(range(count)))
    batched = time.process_time() - start
    start = time.process_time()
    alone = [train(t, replace(cfg, seed=s)) for s, t in enumerate(tasks)]
    serial = time.process_time() - start
    diff = max(
        float((p.detach() - q.detach()).abs().max())
        for a, b in zip(together, alone, strict=True)
        for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True)
    )
    print(
        f"{name}: {count} replicates x {steps} steps, stacked {batched:.2f} s, serial "
        f"{serial:.2f} s, ratio stacked/serial {batched / serial:.3f}, max weight diff {diff:g}"
    )


def threads_check(steps: int = 40) -> None:
    """ms per step at 1 and 2 threads (no early stop, no pinning) and bitwise agreement."""
    for name in ("small", "default"):
        task, cfg = task_of(name, 0)
        cfg = replace(cfg, steps=steps, stop_loss=0.0)
        _train_stacked([task], replace(cfg, steps=2), [0], None, None)  # warm-up
        runs = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            runs[threads] = _train_stacked([task], cfg, [0], None, None)[0]  # no pinning
            ms = 1000 * (time.perf_counter() - start) / steps
            print(f"{name}: {threads} thread(s) {ms:.1f} ms/step")
        same = all(
            torch.equal(a, b)
            for a, b in zip(runs[1].model.parameters(), runs[2].model.parameters(), strict=True)
        )
        print(f"{name}: weights after {steps} steps bitwise equal across threads: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--task", choices=["regime", "default", "small", "control"], default="regime"
    )
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replicates", type=int, default=0, help="stacked vs serial, S replicates")
    parser.add_argument("--threads-check", action="store_true", help="see the module docstring")
    args = parser.parse_args()
    if args.threads_check:
        threads_check()
        return
    torch.set_num_threads(1)
    if args.replicates:
        stacked(args.task, args.steps, args.replicates)
    else:
        plain(args.task, args.steps, args.repeats)


if __name__ == "__main__":
    main()
