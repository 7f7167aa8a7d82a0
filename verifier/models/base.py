"""The types a model adapter deals in: what the instance expects, what a source holds, what
loads (docs/model-files.md; the registry is :mod:`verifier.models.registry`).

The token convention is the verifier's own (:mod:`verifier.facts.bijections`): entity ``s`` is
input token ``s``, relation ``r`` is token ``N + r``, a query is ``[r, s]`` and its answer is
output class ``pi_r(s)`` among the first ``n_out`` logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch-free at run time: paths and the claim model import this package
    import torch

    from verifier.limits import Limits


@dataclass(frozen=True)
class Expected:
    """What the spec's instance asks of a model (docs/theory.md section 1).

    Attributes:
        n_vocab: input tokens the queries use, ``N + R`` (entities, then relations).
        n_out: attribute classes the answers index, ``N`` (shared) or ``R N`` (disjoint).
        n_ctx: positions of a query ``[r, s]``.
    """

    n_vocab: int
    n_out: int
    n_ctx: int = 2


@dataclass(frozen=True)
class ModelInfo:
    """What a model source holds, read before its weights are.

    Attributes:
        architecture: the adapter's words for it (``one-layer transformer``, ``gpt2``).
        d_model: the residual width d.
        d_mlp: the MLP width, where the architecture has one.
        params: parameters the weights hold.
        files: every file whose bytes the model is read from (their digest keys the verdict).
        size: their bytes together.
    """

    architecture: str
    d_model: int
    d_mlp: int | None
    params: int
    files: tuple[Path, ...]
    size: int


@runtime_checkable
class RecallModel(Protocol):
    """A loaded model as exact recall and the embedding-level measures read it (float64)."""

    @property
    def W_E(self) -> torch.Tensor:  # (n_vocab, d_model): row s is the subject embedding e_s
        ...

    @property
    def W_U(self) -> torch.Tensor:  # (d_model, n_out): column j is the attribute vector u_j
        ...

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(batch, pos)`` tokens -> ``(batch, n_out)`` logits at the last position."""
        ...

    def n_params(self) -> int:
        """Parameters of the whole model."""
        ...


class ModelAdapter(Protocol):
    """Loads one kind of model source (a file format, an architecture)."""

    def inspect(self, path: Path, expected: Expected, limits: Limits) -> ModelInfo:
        """Check the source against the instance and the limits without reading its weights.

        Raises:
            SpecError: a source this adapter cannot read, or shapes that do not fit the instance
                (the message names what was expected and what came).
            LimitExceeded: bytes, widths or parameters over a limit.
        """
        ...

    def load(self, path: Path, expected: Expected, limits: Limits) -> RecallModel:
        """The model in float64 (after :meth:`inspect` passed)."""
        ...


__all__ = ["Expected", "ModelAdapter", "ModelInfo", "RecallModel"]
