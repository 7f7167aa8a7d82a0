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
