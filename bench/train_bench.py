"""Time and steps to exact recall: our trainer against a plain nn.TransformerEncoderLayer loop.

Both train full-batch with Adam on every fact of N = 1000, R = 4 (sequences ``[r, s]``), with
d = 64 and MLP width 256, and stop at the first step at which every fact's answer is the strict
argmax. Prints steps, seconds, steps per second, and the ratio ours / reference, both timed in
this process. Usage: ``.venv/bin/python bench/train_bench.py [--threads 2] [--lr 3e-3]``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from verifier.instances import BijectionFacts
from verifier.recall import margins_of
from verifier.train import TrainConfig, train

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
        return self.readout(self.layer(h, src_mask=self.mask, is_causal=True)[:, -1])


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
        loss.backward()
        opt.step()
    return None, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-steps", type=int, default=4000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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
