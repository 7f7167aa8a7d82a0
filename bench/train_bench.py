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
- ``--must-show``: the three figures of the fused trainer, each a ratio from this process:
  (1) at the capacity protocol's shape (N = 181, R = 1, d = m = 16, frozen unit-norm W_E and
  W_U, attention none, full-batch Adam on W_in, b_in, W_out) the trainer's time per step over
  a hand-written eager step of the same model (forward, backward, Adam, no autograd:
  :func:`hand_step_ms`); (2) at N = 1024, R = 4, d = 96, d_mlp = 768, uniform attention, the
  step's matmul FLOP/s over measured float32 matmul FLOP/s at the step's largest product
  (the logits, ``(N R) x d`` by ``d x N``); (3) five replicates stacked over five serial runs
  at the capacity shape, at ``regime`` and at ``small`` (per-step overhead, which stacking
  shares, against arithmetic, which it does not). Also the fused step over the autograd reference
  loop (``engine="reference"``) at the capacity shape.
- ``--compile-check``: the hand-written step as one function under
  ``torch.compile(fullgraph=True)``: its compile time and ms per step, against eager.

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
    initial_weights,
    query_task,
    train,
    train_replicates,
)
from verifier.train.loop import _train_stacked

CAPACITY = TrainConfig(  # the peer's protocol (bench/assoc_bench.py's peer_config)
    d_model=16,
    d_mlp=16,
    optimizer="adam",
    lr=3e-2,
    attention="none",
    unit_norm=("W_E", "W_U"),
    freeze=("W_E", "W_U", "W_pos", "b_out"),
    init=(("W_pos", 0.0),),
    stop_loss=-1.0,  # every step runs
)

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


def ours_ms(tasks: list[TrainTask], cfg: TrainConfig, engine: str = "fused") -> float:
    """CPU ms per step of the stacked trainer on ``tasks`` (every step run)."""
    seeds = list(range(len(tasks)))
    _train_stacked(tasks, replace(cfg, steps=3), seeds, None, None, engine=engine)  # type: ignore[arg-type]
    start = time.process_time()
    _train_stacked(tasks, cfg, seeds, None, None, engine=engine)  # type: ignore[arg-type]
    return 1000 * (time.process_time() - start) / cfg.steps


def hand_step_ms(task: TrainTask, cfg: TrainConfig) -> float:
    """CPU ms per step of a hand-written eager step of the capacity model: the fixed input
    ``x = W_E[s] + W_pos``, ``z = (x + relu(x W_in + b_in) W_out) W_U``, the mean cross-entropy
    (computed, as a training step reports it), its gradient by hand, and Adam (lr, betas 0.9,
    0.999, eps 1e-8) on W_in, b_in, W_out, one tensor at a time."""
    w = initial_weights(task, cfg, 0)
    table = torch.cat([w["W_E"], w["W_E_relations"]])
    x = table[task.tokens[:, -1]] + w["W_pos"][-1]
    u = w["W_U"]
    params = [w["W_in"].clone(), w["b_in"].clone(), w["W_out"].clone()]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    y = task.targets
    n = len(y)
    rows = torch.arange(n)
    start = time.process_time()
    for t in range(1, cfg.steps + 1):
        w_in, b_in, w_out = params
        pre = x @ w_in + b_in
        a = torch.relu(pre)
        p = torch.softmax((x + a @ w_out) @ u, dim=1)
        loss = -torch.log(p[rows, y]).mean()
        p[rows, y] -= 1
        p /= n
        dh = p @ u.T
        da = dh @ w_out.T
        da[pre <= 0] = 0
        grads = (x.T @ da, da.sum(0), a.T @ dh)
        for q, g, (m, v) in zip(params, grads, moments, strict=True):
            m.mul_(0.9).add_(g, alpha=0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            denom = (v / (1 - 0.999**t)).sqrt_().add_(1e-8)
            q.addcdiv_(m, denom, value=-cfg.lr / (1 - 0.9**t))
    del loss
    return 1000 * (time.process_time() - start) / cfg.steps


def step_flops(task: TrainTask, cfg: TrainConfig) -> int:
    """Matmul FLOPs (2 per multiply-add) of one fused step with uniform attention, every weight
    but W_Q, W_K trained: the forward's W_V, W_O, W_in, W_out, W_U products, each weight's
    gradient, and the input gradients down to h0."""
    n, length, d, m, v = task.n_examples, task.n_ctx, cfg.d_model, cfg.d_mlp, task.n_out
    forward = 2 * n * (length * d * d + d * d + d * m + m * d + d * v)
    weight_grads = 2 * n * (length * d * d + d * d + d * m + m * d + d * v)
    input_grads = 2 * n * (v * d + m * d + d * m + d * d + length * d * d)
    return forward + weight_grads + input_grads


def matmul_flops_per_s(rows: int, inner: int, cols: int, repeats: int = 20) -> float:
    """Measured float32 FLOP/s of ``(rows x inner) @ (inner x cols)`` (CPU time)."""
    a, b = torch.randn(1, rows, inner), torch.randn(1, inner, cols)
    torch.bmm(a, b)
    start = time.process_time()
    for _ in range(repeats):
        torch.bmm(a, b)
    return 2 * rows * inner * cols * repeats / (time.process_time() - start)


REPEATS = 5  # alternated runs of each side of the capacity ratio
STACK_REPEATS = 3  # alternated runs of each side of a stacked / serial ratio


def must_show(steps: int) -> None:
    """The three figures (module docstring), each from this process: a ratio of the least
    time of each side over alternated runs (load on the machine only adds time)."""
    task = fact_task(BijectionFacts(181, 1, seed=0))
    cfg = replace(CAPACITY, steps=steps)
    runs: list[tuple[float, float]] = []
    for _ in range(REPEATS):  # alternate, so load on the machine falls on both sides
        ours, hand = ours_ms([task], cfg), hand_step_ms(task, cfg)
        runs.append((ours, hand))
        print(f"capacity shape: ours {ours:.3f} ms/step, hand-written eager {hand:.3f}, "
              f"ratio {ours / hand:.3f}")  # fmt: skip
    ours, hand = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"capacity shape, least of {REPEATS} runs each: ours {ours:.3f} ms/step, hand-written "
          f"eager {hand:.3f}, ratio {ours / hand:.3f} (target <= 0.6)")  # fmt: skip
    ref = ours_ms([task], replace(cfg, steps=max(50, steps // 4)), "reference")
    print(f"capacity shape: autograd reference loop {ref:.3f} ms/step, fused/reference "
          f"{ours / ref:.3f}")  # fmt: skip
    big = fact_task(BijectionFacts(1024, 4, seed=0))
    big_cfg = replace(REGIME, d_model=96, d_mlp=768, steps=max(5, steps // 100), stop_loss=-1.0)
    ms = ours_ms([big], big_cfg)
    flops = step_flops(big, big_cfg)
    peak = matmul_flops_per_s(big.n_examples, big_cfg.d_model, big.n_out)
    print(f"N = 1024, R = 4, d = 96, d_mlp = 768, uniform: {ms:.1f} ms/step, "
          f"{flops / ms / 1e6:.2f} GFLOP/s; matmul (4096 x 96) @ (96 x 1024) {peak / 1e9:.2f} "
          f"GFLOP/s; ratio {flops / ms * 1e3 / peak:.3f} (target >= 0.5)")  # fmt: skip
    for name, tasks, tcfg in (
        ("capacity", [fact_task(BijectionFacts(181, 1, seed=s)) for s in range(5)], cfg),
        ("regime", [task_of("regime", s)[0] for s in range(5)], replace(REGIME, steps=100)),
        (
            "small",
            [task_of("small", s)[0] for s in range(5)],
            replace(task_of("small", 0)[1], steps=200),
        ),
    ):
        tcfg = replace(tcfg, stop_loss=-1.0)
        stacked_runs, serial_runs = [], []
        for _ in range(STACK_REPEATS):  # alternate; each side's least run (load only adds)
            stacked_runs.append(ours_ms(tasks, tcfg) * tcfg.steps)
            serial_runs.append([ours_ms([t], tcfg) * tcfg.steps for t in tasks])
        stacked = min(stacked_runs)
        serial = sum(min(r[i] for r in serial_runs) for i in range(len(tasks)))
        pairs = zip(stacked_runs, serial_runs, strict=True)
        each = ", ".join(f"{a / sum(b):.3f}" for a, b in pairs)
        print(f"{name}: 5 replicates stacked {stacked / 1e3:.2f} s, 5 serial "
              f"{serial / 1e3:.2f} s (least of {STACK_REPEATS} runs each), ratio "
              f"{stacked / serial:.3f} (target <= 0.5; run by run {each})")  # fmt: skip


def compile_check(steps: int) -> None:
    """The capacity step as one pure function under ``torch.compile``: compile s, ms/step."""
    task = fact_task(BijectionFacts(181, 1, seed=0))
    cfg = replace(CAPACITY, steps=steps)
    w = initial_weights(task, cfg, 0)
    x = torch.cat([w["W_E"], w["W_E_relations"]])[task.tokens[:, -1]] + w["W_pos"][-1]
    u, y = w["W_U"], task.targets

    def step(
        params: list[torch.Tensor], ms: list[torch.Tensor], vs: list[torch.Tensor], t: torch.Tensor
    ) -> torch.Tensor:
        w_in, b_in, w_out = params
        pre = x @ w_in + b_in
        a = torch.relu(pre)
        p = torch.softmax((x + a @ w_out) @ u, dim=1)
        loss = -torch.log(p.gather(1, y[:, None])).mean()
        g = (p - torch.nn.functional.one_hot(y, p.shape[1])) / len(y)
        dh = g @ u.T
        da = (dh @ w_out.T) * (pre > 0)
        for q, grad, m, v in zip(params, (x.T @ da, da.sum(0), a.T @ dh), ms, vs, strict=True):
            m.mul_(0.9).add_(grad, alpha=0.1)
            v.mul_(0.999).addcmul_(grad, grad, value=0.001)
            q.sub_(cfg.lr / (1 - 0.9**t) * m / ((v / (1 - 0.999**t)).sqrt() + 1e-8))
        return loss

    for label, fn in (("eager", step), ("compiled", torch.compile(step, fullgraph=True))):
        params = [w[k].clone() for k in ("W_in", "b_in", "W_out")]
        ms, vs = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
        start = time.perf_counter()
        fn(params, ms, vs, torch.tensor(1.0))
        first = time.perf_counter() - start
        start = time.process_time()
        for t in range(2, steps + 2):
            fn(params, ms, vs, torch.tensor(float(t)))
        per = 1000 * (time.process_time() - start) / steps
        print(f"{label}: first call {first:.2f} s, then {per:.3f} ms/step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--task", choices=["regime", "default", "small", "control"], default="regime"
    )
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replicates", type=int, default=0, help="stacked vs serial, S replicates")
    parser.add_argument("--threads-check", action="store_true", help="see the module docstring")
    parser.add_argument("--must-show", action="store_true", help="see the module docstring")
    parser.add_argument("--compile-check", action="store_true", help="see the module docstring")
    args = parser.parse_args()
    if args.threads_check:
        threads_check()
        return
    torch.set_num_threads(1)
    if args.must_show:
        must_show(args.steps)
        return
    if args.compile_check:
        compile_check(args.steps)
        return
    if args.replicates:
        stacked(args.task, args.steps, args.replicates)
    else:
        plain(args.task, args.steps, args.repeats)


if __name__ == "__main__":
    main()
