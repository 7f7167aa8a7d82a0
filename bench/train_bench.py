"""Time and steps to exact recall: our trainer against a plain nn.TransformerEncoderLayer loop.

Both train full-batch with Adam on every fact of N = 1000, R = 4 (sequences ``[r, s]``), with
d = 64 and MLP width 256, and stop at the first step at which every fact's answer is the strict
argmax. Prints steps, seconds, steps per second, and the ratio ours / reference, both timed in
this process. Usage: ``.venv/bin/python bench/train_bench.py [--threads 2] [--lr 3e-3]``.

``--threads-check`` instead times a few steps of our trainer at 1 and 2 intra-op threads on a
small task (the 256 two-hop queries of specs/training/multi_hop.spec.yaml) and a large one
(N = 512, R = 4), and says whether the weights agree bitwise: the evidence for
:func:`verifier.train.training_threads` and for the thread count in the checkpoint key.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from verifier.chains import ChainFacts
from verifier.instances import BijectionFacts
from verifier.recall import margins_of
from verifier.train import TrainConfig, TrainTask, _train, as_task, query_task, train

N, R, D, WIDTH = 1000, 4, 64, 256


class Reference(nn.Module):
    """Embedding + positional embedding, one PyTorch encoder layer (causal), linear readout."""

    def __init__(self, n_vocab: int, n_out: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_vocab, D)
        self.pos = nn.Parameter(torch.randn(2, D) * 0.02)
        self.layer = nn.TransformerEncoderLayer(
            D, nhead=1, dim_feedforward=WIDTH, dropout=0.0, batch_first=True
        )
        self.readout = nn.Linear(D, n_out)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(2))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens) + self.pos
        out: torch.Tensor = self.readout(self.layer(h, src_mask=self.mask, is_causal=True)[:, -1])
        return out


def reference_run(facts: BijectionFacts, lr: float, max_steps: int) -> tuple[int | None, float]:
    """Steps to exact recall (None if not reached) and seconds, plain loop."""
    torch.manual_seed(0)
    model = Reference(facts.n_vocab, facts.n_attributes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    subjects, relations = facts.fact_arrays()
    tokens = facts.tokens(subjects, relations)
    targets = torch.from_numpy(facts.answers(subjects, relations))
    start = time.perf_counter()
    for step in range(max_steps + 1):
        logits = model(tokens)
        with torch.no_grad():
            if bool((margins_of(logits, targets)[0] > 0).all()):
                return step, time.perf_counter() - start
        if step == max_steps:
            break
        loss = nn.functional.cross_entropy(logits, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return None, time.perf_counter() - start


def threads_check(steps: int = 40) -> None:
    """ms per step at 1 and 2 threads (no early stop, no pinning) and bitwise agreement."""
    cases: list[tuple[str, TrainTask, TrainConfig]] = [
        (
            "multi-hop N=64 R=2 k=2, 256 queries, d=24, width 128",
            query_task(ChainFacts(64, 2, 2, seed=0), cot=False),
            TrainConfig(d_model=24, d_mlp=128, n_heads=2, optimizer="adamw", lr=1e-2,
                        weight_decay=0.1, steps=steps, stop_loss=0.0),
        ),
        (
            "single hop N=512 R=4, 2048 facts, d=32, width 256",
            as_task(BijectionFacts(512, 4, seed=0)),
            TrainConfig(d_model=32, d_mlp=256, optimizer="adamw", lr=1e-2, weight_decay=0.1,
                        steps=steps, stop_loss=0.0),
        ),
    ]  # fmt: skip
    for name, task, cfg in cases:
        _train(task, TrainConfig(d_model=cfg.d_model, d_mlp=cfg.d_mlp, steps=2), None)  # warm-up
        runs = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            runs[threads] = _train(task, cfg, None)  # the loop itself, without the pinning
            ms = 1000 * (time.perf_counter() - start) / steps
            print(f"{name}: {threads} thread(s) {ms:.1f} ms/step")
        same = all(
            torch.equal(a, b)
            for a, b in zip(runs[1].model.parameters(), runs[2].model.parameters(), strict=True)
        )
        print(f"{name}: weights after {steps} steps bitwise equal across threads: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-steps", type=int, default=4000)
    parser.add_argument("--threads-check", action="store_true", help="see the module docstring")
    args = parser.parse_args()
    if args.threads_check:
        threads_check()
        return
    torch.set_num_threads(args.threads)
    os.environ["VERIFIER_TRAIN_THREADS"] = str(args.threads)  # ours trains on the same count
    facts = BijectionFacts(N, R, seed=0)
    cfg = TrainConfig(
        d_model=D, d_mlp=WIDTH, lr=args.lr, steps=args.max_steps, stop_loss=float("inf")
    )
    start = time.perf_counter()
    ours = train(facts, cfg)
    ours_s = time.perf_counter() - start
    ref_steps, ref_s = reference_run(facts, args.lr, args.max_steps)
    print(f"N={N} R={R} d={D} width={WIDTH} lr={args.lr} threads={args.threads}")
    print(
        f"ours:      steps to exact recall {ours.steps_to_perfect}, {ours_s:.2f} s, "
        f"{ours.steps / ours_s:.1f} steps/s"
    )
    ref_steps_run = ref_steps if ref_steps is not None else args.max_steps
    print(
        f"reference: steps to exact recall {ref_steps}, {ref_s:.2f} s, "
        f"{ref_steps_run / ref_s:.1f} steps/s"
    )
    print(
        f"ratio ours/reference: time {ours_s / ref_s:.2f}, "
        f"per step {(ours_s / max(ours.steps, 1)) / (ref_s / max(ref_steps_run, 1)):.2f}"
    )


if __name__ == "__main__":
    main()
