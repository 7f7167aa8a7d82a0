"""Fixtures of the engine's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

import verifier.train as train_module


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the trainer itself (a checkpoint hit does not call it)."""
    calls: list[int] = []
    real = train_module.train_replicates

    def counting(*args: Any, **kwargs: Any) -> list[train_module.TrainResult]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_replicates", counting)
    return calls


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models on one torch thread: avoids oversubscription on a shared machine (a module
    asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# (rows, inner, cols) of products the stacked trainer batches: below ATen's 400-product
# threshold (its own loop) and above it (the BLAS's batched gemm)
_BATCHED_SHAPES = ((7, 8, 5), (37, 9, 8), (37, 8, 37), (37, 37, 8), (96, 12, 48), (181, 16, 181))


@pytest.fixture
def batches_round_alone(one_thread: None) -> None:
    """Skip unless ``torch.bmm`` computes each matrix of a batch of three to the bit as it
    computes that matrix alone on this CPU (as MKL does on the 2-core box, for plain and
    transposed operands): the precondition under which stacked replicates can equal serial
    runs bitwise. The trainer controls everything else (verifier/train/fused.py), which the
    tests using this fixture check."""
    g = torch.Generator().manual_seed(0)
    for rows, inner, cols in _BATCHED_SHAPES:
        a = torch.randn(3, rows, inner, generator=g)
        b = torch.randn(3, inner, cols, generator=g)
        flipped_a = a.transpose(1, 2).contiguous().transpose(1, 2)  # a transposed view
        flipped_b = b.transpose(1, 2).contiguous().transpose(1, 2)
        for left, right in ((a, b), (flipped_a, b), (a, flipped_b)):
            together = torch.bmm(left, right)
            for i in range(3):
                if not torch.equal(together[i], torch.bmm(left[i : i + 1], right[i : i + 1])[0]):
                    pytest.skip(
                        f"torch.bmm rounds a {rows} x {inner} x {cols} product in a batch of "
                        "three differently from alone on this CPU: stacked replicates cannot "
                        "equal serial runs to the bit here"
                    )
