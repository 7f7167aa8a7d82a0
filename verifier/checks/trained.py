"""What a ``training`` claim (or a one-layer ``model_file`` claim) hands to the ``transfer``
claims that read it: :class:`TrainedModels`, kept in its measurement's ``artifacts`` under
:data:`TRAINED_MODELS` (a mapping, so that a reused claim's objects still load on first read,
:class:`verifier.engine.reuse.OnFirstRead`)."""

from __future__ import annotations

from dataclasses import dataclass

from verifier.checks.base import Measurement
from verifier.errors import VerifierError
from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts
from verifier.model import OneLayerTransformer
from verifier.train.config import TrainConfig

TRAINED_MODELS = "trained_models"  # the key of :class:`TrainedModels` in ``artifacts``


@dataclass(frozen=True)
class TrainedModels:
    """One claim's models, one per replicate in seed order.

    Attributes:
        models: the trained (float32) or loaded models, shapes ``OneLayerTransformer.shapes``.
        facts: the facts each model was trained on (chains on a multi-hop instance).
        seeds: each replicate's seed as the claim reports it (``seeds:``, else the init seed;
            a model file: the instance's seed).
        config: the settings the models were trained with (relearning reuses them); None for
            a model file.
    """

    models: tuple[OneLayerTransformer, ...]
    facts: tuple[BijectionFacts | ChainFacts, ...]
    seeds: tuple[int, ...]
    config: TrainConfig | None = None

    def __post_init__(self) -> None:
        if not len(self.models) == len(self.facts) == len(self.seeds) >= 1:
            raise ValueError(
                f"TrainedModels: expected one model, facts and seed per replicate, got "
                f"{len(self.models)} models, {len(self.facts)} facts, {len(self.seeds)} seeds"
            )

    def as_artifacts(self) -> dict[str, TrainedModels]:
        """The ``artifacts`` of the measurement that hands these models on."""
        return {TRAINED_MODELS: self}

    def bijections(self, claim_id: str) -> tuple[BijectionFacts, ...]:
        """The single-hop facts of every replicate (what transfer re-draws).

        Raises:
            VerifierError: the models were trained on multi-hop chains.
        """
        out = tuple(f for f in self.facts if isinstance(f, BijectionFacts))
        if len(out) != len(self.facts):
            raise VerifierError(
                f"expected models of {claim_id!r} trained on single-hop facts (a bijection "
                "instance), got models trained on multi-hop chains"
            )
        return out

    def training_config(self, claim_id: str) -> TrainConfig:
        """The settings the models were trained with.

        Raises:
            VerifierError: the models came from a file, with no training settings.
        """
        if self.config is None:
            raise VerifierError(
                f"expected the training settings of {claim_id!r}, got a model read from a "
                "file (no optimiser settings to relearn with)"
            )
        return self.config


def trained_models(source: Measurement, claim_id: str) -> TrainedModels:
    """The :class:`TrainedModels` that claim ``claim_id`` handed on in ``source``.

    Raises:
        VerifierError: ``source`` holds none (a claim of another kind, or a model file of
            another architecture), naming what it holds instead.
    """
    found = source.artifacts.get(TRAINED_MODELS)
    if isinstance(found, TrainedModels):
        return found
    held = sorted(source.artifacts)
    what = f"its artifacts {', '.join(held)}" if held else "none"
    raise VerifierError(
        f"expected the trained models of claim {claim_id!r} (a training claim, or a model_file "
        f"claim with adapter one_layer), got {what}"
    )


__all__ = ["TRAINED_MODELS", "TrainedModels", "trained_models"]
