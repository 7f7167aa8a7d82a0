"""model_file claims: what reading a model costs against training it, and preflight on a big file.

1. One process: the training claim of tests/verifier/test_model_files.py (N = 48, R = 2,
   d = 8, 400 steps at most, every mechanism measure) against a model_file claim reading the
   same weights from safetensors (the same measures, no training). Ratio: model_file / training.
2. A one-layer safetensors file of N = 32,768, R = 4, d = 512, d_mlp = 1,024 (about 136 MB):
   the preflight inspection (its header only), the sha256 that keys the verdict, and the
   adapter's load (every weight read and widened to float64), each timed in this process.
   Ratios against the load.

Usage: python bench/model_file_bench.py   (prints CPU and wall seconds and the ratios)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from verifier.checks.trained import trained_models
from verifier.engine.runner import SpecRunner
from verifier.limits import Limits
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.models.base import Expected
from verifier.models.one_layer import OneLayerAdapter
from verifier.models.paths import file_digest
from verifier.spec import load_spec_file

INSTANCE = "instance: {kind: bijection, entities: 48, relations: 2, seed: 0}\n"
TRAINING = (
    "name: t\n" + INSTANCE + "claims:\n  - id: gd\n    check: training\n"
    "    model: {d_model: 8, d_mlp: 32, attention: uniform, init: {W_E: 0.01}}\n"
    "    optim: {optimizer: adamw, lr: 1e-2, steps: 400,\n"
    "            groups: {W_E: {optimizer: sgd, lr: 0.1, momentum: 0.9, per_subject: true}}}\n"
    "    expect: {accuracy: 1.0}\n"
)
MODEL_FILE = (
    "name: m\n" + INSTANCE + "claims:\n  - id: mine\n    check: model_file\n"
    "    file: model.safetensors\n    expect: {accuracy: 1.0}\n"
)


def timed(fn: object) -> tuple[float, float, object]:
    """(cpu s, wall s, result) of calling ``fn``."""
    assert callable(fn)
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def claim_vs_training(folder: Path) -> None:
    (folder / "t.spec.yaml").write_text(TRAINING)
    (folder / "m.spec.yaml").write_text(MODEL_FILE)

    def run(name: str) -> SpecRunner:
        runner = SpecRunner(load_spec_file(folder / name), Limits())
        runner.preflight()
        runner.run()
        return runner

    SpecRunner(load_spec_file(folder / "t.spec.yaml"), Limits()).preflight()  # warm imports
    cpu_t, wall_t, runner = timed(lambda: run("t.spec.yaml"))
    assert isinstance(runner, SpecRunner)
    measured = runner._measurements["gd"]
    assert measured is not None
    model = trained_models(measured, "gd").models[0]
    save_file(
        {k: v.detach().contiguous() for k, v in model.state_dict().items()},
        str(folder / "model.safetensors"),
    )
    cpu_m, wall_m, runner_m = timed(lambda: run("m.spec.yaml"))
    assert isinstance(runner_m, SpecRunner)
    (t_result,), (m_result,) = runner.run().results, runner_m.run().results
    same = all(t_result.measured[k] == m_result.measured[k] for k in m_result.measured)
    print(f"training claim: cpu {cpu_t:.2f} s, wall {wall_t:.2f} s ({t_result.status})")
    print(
        f"model_file claim: cpu {cpu_m:.2f} s, wall {wall_m:.2f} s ({m_result.status}); "
        f"every measure equal to the training claim's: {same}"
    )
    print(f"ratio model_file / training: cpu {cpu_m / cpu_t:.3f}, wall {wall_m / wall_t:.3f}")


def big_file(folder: Path) -> None:
    n, r = 32_768, 4
    cfg = ModelConfig(
        n_vocab=n + r, n_ctx=2, d_model=512, d_head=512, n_heads=1, d_mlp=1024, n_out=n
    )
    shapes = OneLayerTransformer.shapes(cfg)
    path = folder / "big.safetensors"
    save_file({k: torch.randn(*s) for k, s in shapes.items()}, str(path))
    size = path.stat().st_size
    expected = Expected(n_vocab=n + r, n_out=n)
    adapter = OneLayerAdapter()
    cpu_i, wall_i, _ = timed(lambda: adapter.inspect(path, expected, Limits()))
    cpu_d, wall_d, _ = timed(lambda: file_digest(path))
    cpu_l, wall_l, _ = timed(lambda: adapter.load(path, expected, Limits()))
    print(f"file: {size / 2**20:.0f} MiB")
    print(f"inspect (header): cpu {cpu_i * 1e3:.1f} ms, wall {wall_i * 1e3:.1f} ms")
    print(f"sha256: cpu {cpu_d:.2f} s, wall {wall_d:.2f} s ({size / 2**20 / wall_d:.0f} MiB/s)")
    print(f"load (every weight read, widened to float64): cpu {cpu_l:.2f} s, wall {wall_l:.2f} s")
    print(
        f"ratios against the load (wall): inspect {wall_i / wall_l:.4f}, "
        f"sha256 {wall_d / wall_l:.2f}"
    )


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        claim_vs_training(Path(tmp))
        big_file(Path(tmp))


if __name__ == "__main__":
    main()
