"""How far below the eager step a compiled training step could go, at the capacity protocol's
shape (issue 21's bisection target).

``bench/native_step.c`` computes one replicate's forward, softmax and gradients of the
frozen-front MLP (the work of :meth:`verifier.train.fused.FusedStep._fixed_step`'s closure)
row by row in AVX2 vectors. This script compiles it with the system C compiler (``cc -O3
-march=native``; without one it says so and stops), feeds it the trainer's own buffers at
N = 181, d = m = 16 after a few steps, checks its sum of ``log p_t`` and both gradients against
the closure's (float32, relative 1e-4), and times, in this process on one thread, the least of
five rounds each:

- the native step, one replicate;
- the closure (torch operations), one replicate and three stacked;
- the arithmetic floor of ``bench/assoc_bench.py --floor`` (two ``N x 16 x N`` products, the
  exponential and the row sums), one replicate;
- the trainer's whole step (``forward_backward_read`` and ``update``: the screen, the host
  reads, the optimiser), three stacked.

It prints the ratios, and the whole step with the closure replaced by three native calls as a
projection (the measured step, less the closure, plus three native steps): the factor by which
the bisection of ``assoc_bench.py --full --replicates 3`` would shrink if nothing else changed.
The probe is not part of the product.

Usage: ``PYTHONPATH=. .venv/bin/python bench/native_step.py [--n 181] [--repeats 2000]``.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from bench.assoc_bench import D, floor_ms_per_step, peer_config
from verifier.facts.bijections import BijectionFacts
from verifier.train import fact_task, loop
from verifier.train.fused import FusedStep

SOURCE = Path(__file__).with_name("native_step.c")
LANES = 8  # float32 lanes of an AVX2 vector


def compile_step(folder: Path) -> ctypes.CDLL | None:
    """The probe compiled into ``folder`` (None, having said why, without a C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("no C compiler (cc, gcc) on PATH: nothing to measure")
        return None
    lib = folder / "native_step.so"
    flags = ["-O3", "-march=native", "-shared", "-fPIC"]
    subprocess.run([cc, *flags, "-o", str(lib), str(SOURCE)], check=True)
    step = ctypes.CDLL(str(lib))
    pointer = ctypes.c_void_p
    step.capacity_step.argtypes = (
        [ctypes.c_int] * 5 + [pointer] * 10 + [ctypes.c_float] + [pointer] * 10
    )
    step.capacity_step.restype = ctypes.c_int
    return step


def fused_step(n: int, replicates: int) -> tuple[FusedStep, torch.Tensor, torch.Tensor, int]:
    """The trainer's fused step at the protocol's shape, five steps in (the closure bound)."""
    seeds = list(range(replicates))
    tasks = [fact_task(BijectionFacts(n, 1, seed=s)) for s in seeds]
    cfg = replace(peer_config(1000), stop_accuracy=1.0, stop_loss=-1.0)
    weights = {
        k: v.detach() for k, v in loop._stack(tasks, cfg, seeds, None, torch.float32).items()
    }
    tokens, targets = loop._examples(tasks, torch.device("cpu"))
    step = FusedStep(tasks[0], cfg, weights, False)
    need = loop._least_count(cfg.stop_accuracy, n)
    for _ in range(5):
        step.forward_backward_read(tokens, targets, need)
        step.update(1.0)
    step.forward_backward_read(tokens, targets, need)
    assert step._fixed is not None, "the closure is not bound at this shape"
    return step, tokens, targets, need


def padded(t: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``t`` (2-D) in a zero ``(rows, cols)`` float32 buffer, contiguous."""
    out = torch.zeros(rows, cols)
    out[: t.shape[0], : t.shape[1]] = t
    return out


def native_call(step: FusedStep, lib: ctypes.CDLL) -> tuple[Callable[[], int], dict[str, object]]:
    """A call of the native step on replicate 0 of ``step``'s current buffers, and its outputs."""
    assert step._in_block is not None and step._w_u2 is not None and step._rows_of_u is not None
    h1_one = step._h1_one[0].contiguous()
    block = step._in_block[0].contiguous()
    h1_out = step._h1_out[0].contiguous() if step._h1_out is not None else None
    assert h1_out is not None
    n, k = h1_one.shape
    m, d = step.w["W_out"].shape[1:]
    assert d == m == 16, "the probe is written for d = m = 16"
    n_out = step._w_u2.shape[2]
    width = -(-n_out // LANES) * LANES
    w_out = step.w["W_out"][0].contiguous()
    w_u2 = padded(step._w_u2[0], d, width)
    zbias = torch.zeros(width)
    zbias[n_out:] = -math.inf
    w_u_t = padded(step.w["W_U"][0].T, width, d)
    w_out_t = w_out.T.contiguous()
    target = step._target_rows[0, :, 0].contiguous()
    rows_of_u = step._rows_of_u[0].contiguous()
    out = {
        "act": torch.empty(n, m), "h2": torch.empty(n, d), "probs": torch.empty(n, width),
        "picked": torch.empty(n), "rowmax": torch.empty(n), "log_sum": ctypes.c_double(),
        "out_grad": torch.empty(m, d), "in_grad": torch.empty(k, m), "dh2": torch.empty(n, d),
        "dpre": torch.empty(n, m),
    }  # fmt: skip
    inputs = [h1_one, block, h1_out, w_out, w_u2, zbias, w_u_t, w_out_t, target, rows_of_u]
    args = [n, k, m, d, width, *(t.data_ptr() for t in inputs), ctypes.c_float(1.0 / n)]
    outputs = [
        ctypes.byref(v) if isinstance(v, ctypes.c_double) else v.data_ptr()  # type: ignore[attr-defined]
        for v in (out[name] for name in ("act", "h2", "probs", "picked", "rowmax", "log_sum",
                                         "out_grad", "in_grad", "dh2", "dpre"))
    ]  # fmt: skip

    def call() -> int:
        return int(lib.capacity_step(*args, *outputs))

    out["keep"] = inputs  # the buffers the pointers point into
    return call, out


def least_us(fn: Callable[[], object], repeats: int) -> float:
    """Least microseconds per call over five rounds of ``repeats`` calls (after a warm-up)."""
    for _ in range(max(10, repeats // 20)):
        fn()
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return 1e6 * best


def close(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    """Stop, naming ``what``, unless the native figure is within 1e-4 (relative) of torch's."""
    scale = float(theirs.abs().max())
    error = float((ours - theirs).abs().max())
    if not error <= 1e-4 * max(scale, 1e-30):
        sys.exit(
            f"native step disagrees with the closure on {what}: {error:.3g} at scale {scale:.3g}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=181, help="facts (N): the capacity probe's size")
    parser.add_argument("--repeats", type=int, default=2000, help="calls per timing round")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        lib = compile_step(Path(folder))
        if lib is None:
            return
        one, *_ = fused_step(args.n, 1)
        call, out = native_call(one, lib)
        assert call() == 0, "the native step overflowed"
        assert one._fixed is not None
        one._fixed()  # the closure on the same weights
        close(torch.tensor([out["log_sum"].value]), one._log_sum[:1].double(), "sum log p_t")  # type: ignore[attr-defined]
        close(out["out_grad"], one.grads["W_out"][0], "dW_out")  # type: ignore[arg-type]
        assert one._in_grad is not None
        close(out["in_grad"], one._in_grad[0], "d[W_in; b_in]")  # type: ignore[arg-type]
        print(f"N = {args.n}, d = m = {D}: the native step's sum log p_t and gradients agree with "
              f"the closure's (relative 1e-4)")  # fmt: skip
        native = least_us(call, args.repeats)
        closure1 = least_us(one._fixed, args.repeats)
        floor1 = 1000 * floor_ms_per_step(args.n, 1, args.repeats)
        three, tokens3, targets3, need3 = fused_step(args.n, 3)
        assert three._fixed is not None
        closure3 = least_us(three._fixed, args.repeats)

        saved, steps = three.state(), three.kinds[0].step

        def whole() -> None:
            three.forward_backward_read(tokens3, targets3, need3)
            three.update(1.0)

        step3 = math.inf
        for _ in range(5):  # each round from the same weights: no drift into the fallback
            three.restore(saved, steps)
            start = time.perf_counter()
            for _ in range(args.repeats):
                whole()
            step3 = min(step3, 1e6 * (time.perf_counter() - start) / args.repeats)
    print(f"one replicate: native {native:.1f} us, closure {closure1:.1f} us (native / closure "
          f"{native / closure1:.2f}), arithmetic floor {floor1:.1f} us (native / floor "
          f"{native / floor1:.2f})")  # fmt: skip
    projected = step3 - closure3 + 3 * native
    print(f"three stacked: closure {closure3:.1f} us, whole step {step3:.1f} us; with three "
          f"native calls in place of the closure {projected:.1f} us (projected step / measured "
          f"{projected / step3:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
