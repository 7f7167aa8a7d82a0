"""The ``model_file`` claim: a model trained elsewhere, read from disk, measured as a trained one.

The claim's ``file`` resolves against the spec's folder (or the server's models folder,
:mod:`verifier.models.paths`); its ``adapter`` (:data:`verifier.models.registry.MODEL_ADAPTERS`)
checks the shapes, widths, parameters and bytes against the instance and the limits in
preflight, before any weight is read, and then loads the model in float64. On it:

- every fact through :func:`verifier.measure.recall.exact_recall` (the real forward pass,
  strict argmax among the attributes), as a training claim evaluates its trained model;
- with ``adapter: one_layer`` (a :class:`~verifier.model.OneLayerTransformer`) every mechanism
  measure of :mod:`verifier.measure.mechanism` but the untrained baseline (no initial model is in
  a file); with another adapter those that read ``W_E`` and ``W_U`` alone
  (:data:`~verifier.spec.claims.model_file.EMBEDDING_MEASURES`);
- a one-layer model is handed to ``transfer`` claims (probe, lp, random) as
  :class:`~verifier.checks.trained.TrainedModels`, exactly as a training claim's.

Its verdict key holds the sha256 of the model's bytes (``ModelFileClaim.external_inputs``), so
a changed file is verified again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from verifier import plugins
from verifier.checks.base import CheckContext, CheckKind, Measurement, register
from verifier.checks.construction import attribute_count, bijection_facts, fact_counterexample
from verifier.checks.trained import TrainedModels
from verifier.errors import SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits, require
from verifier.measure import mechanism as mech
from verifier.measure.recall import exact_recall
from verifier.model import OneLayerTransformer
from verifier.models.base import Expected, ModelAdapter, ModelInfo, RecallModel
from verifier.models.paths import resolve_model_path, source_digest
from verifier.models.registry import GROUP, adapters
from verifier.spec import BijectionInstance, ModelFileClaim
from verifier.spec.claims.model_file import EMBEDDING_MEASURES, FILE_MECHANISM_MEASURES

log = logging.getLogger(__name__)
BATCH = 4096
ModelFileContext = CheckContext[BijectionInstance, ModelFileClaim]
M = TypeVar("M")


def expected_of(instance: BijectionInstance) -> Expected:
    """The vocabulary a model of this instance's facts has: ``N + R`` inputs, its attributes."""
    return Expected(n_vocab=instance.entities + instance.relations, n_out=attribute_count(instance))


def adapter_of(claim: ModelFileClaim) -> ModelAdapter:
    """The registered adapter the claim names.

    Raises:
        SpecError: no adapter by that name (key ``<id>.adapter``).
    """
    registered = adapters()
    adapter = registered.get(claim.adapter)
    if adapter is None:
        broken = plugins.failure(GROUP, claim.adapter)
        raise SpecError(
            broken
            or f"expected a model adapter, one of {', '.join(sorted(registered))}, "
            f"got {claim.adapter!r}",
            key=f"{claim.id}.adapter",
        )
    return adapter


def inspect_model(
    instance: BijectionInstance, claim: ModelFileClaim, limits: Limits
) -> tuple[Path, ModelInfo]:
    """The model's real path and what its adapter reads of it before its weights.

    Raises:
        SpecError: a refused or unreadable path, or shapes that do not fit (key ``<id>.file``).
        LimitExceeded: bytes, widths or parameters over a limit.
    """
    adapter = adapter_of(claim)
    try:
        path = resolve_model_path(claim.file, claim.spec_file, limits)
        return path, adapter.inspect(path, expected_of(instance), limits)
    except SpecError as exc:
        raise SpecError(exc.message, key=f"{claim.id}.file") from None


@register("model_file")
class ModelFileCheck(CheckKind[BijectionInstance, ModelFileClaim]):
    """Read a model from a file, evaluate exactly, measure its mechanism."""

    INSTANCE_NOTE = "a model file is measured on single-hop facts, docs/model-files.md"

    def preflight(self, instance: BijectionInstance, claim: ModelFileClaim, limits: Limits) -> None:
        n, r = instance.entities, instance.relations
        require("max_entities", n, limits.max_entities, "N")
        require("max_facts", n * r, limits.max_facts, "N*R (facts)")
        _, info = inspect_model(instance, claim, limits)
        mech.refuse_underdetermined(
            claim.id,
            (e.measure for e in claim.expectations),
            n,
            r,
            info.d_model,
            "d is the model file's d_model",
        )

    def run(self, ctx: ModelFileContext) -> Measurement:
        claim, instance = ctx.claim, ctx.instance
        path, info = inspect_model(instance, claim, ctx.limits)  # the file may have changed
        ctx.report(0.0, f"reading {claim.file} ({claim.adapter})")
        try:
            model = adapter_of(claim).load(path, expected_of(instance), ctx.limits)
        except SpecError as exc:  # the bytes behind a good header did not read
            raise SpecError(exc.message, key=f"{claim.id}.file") from None
        facts = bijection_facts(instance)
        ctx.report(0.1, "exact recall in float64")
        recall = exact_recall(model, facts.batches(BATCH), facts.n_facts)
        d = int(model.W_E.shape[1])
        values: dict[str, Any] = {
            "accuracy": recall.accuracy,
            "margin": recall.margin,
            "params": model.n_params(),
            "fact_params": facts.n_entities * d,
            "embedding_dim": d,
            "n_facts": recall.total,
        }
        if isinstance(model, OneLayerTransformer):
            values["mlp_width"] = model.cfg.d_mlp
        evidence: dict[str, Any] = {
            "file": claim.file,
            "adapter": claim.adapter,
            "architecture": info.architecture,
            "sha256": source_digest(path, ctx.limits),
            "bytes": info.size,
            "seeds": {"instance": instance.seed},
        }
        if claim.mechanism:
            self._mechanism(ctx, model, facts, values, evidence)
        counterexample = fact_counterexample(facts, recall)
        if counterexample is not None:
            evidence["counterexample"] = counterexample
        ctx.report(1.0, "done")
        artifacts: dict[str, Any] = {}
        if isinstance(model, OneLayerTransformer):  # what transfer claims read
            artifacts = TrainedModels((model,), (facts,), (instance.seed,)).as_artifacts()
        return Measurement(
            method="exact",
            values=values,
            evidence=evidence,
            symbols={"d": d},
            artifacts=artifacts,
            message=f"{recall.correct}/{recall.total} facts from {claim.file}",
        )

    def _mechanism(
        self,
        ctx: ModelFileContext,
        model: RecallModel,
        facts: BijectionFacts,
        values: dict[str, Any],
        evidence: dict[str, Any],
    ) -> None:
        """The mechanism measures the model's architecture allows, into ``values``."""
        if isinstance(model, OneLayerTransformer):
            weights = [p.detach() for p in model.parameters()]
            found = _measures({k: mech.MEASURES[k] for k in FILE_MECHANISM_MEASURES}, model, facts)
        else:
            weights = [model.W_E, model.W_U]
            found = _measures({k: EMBEDDING_FUNCTIONS[k] for k in EMBEDDING_MEASURES}, model, facts)
        finite = all(bool(torch.isfinite(w).all()) for w in weights)
        underdetermined: dict[str, str] = {}
        details: dict[str, Any] = {}
        for i, (name, measure) in enumerate(found):
            ctx.report(0.2 + 0.8 * i / len(found), name)
            if not finite:  # an SVD or a fit of inf/nan weights has no answer
                values[name] = None
                underdetermined[name] = "the model's weights are not finite"
                continue
            measured = measure()
            values[name] = measured.value
            if measured.underdetermined is not None:
                underdetermined[name] = measured.underdetermined
            if measured.detail:
                details[name] = measured.detail
        evidence["mechanism"] = details
        if underdetermined:
            evidence["underdetermined"] = underdetermined


# The measures another architecture gives: those that read W_E and W_U alone.
EMBEDDING_FUNCTIONS: dict[str, Callable[[mech.Embedded, BijectionFacts], mech.MeasureResult]] = {
    "superposition_r2": mech.superposition_r2,
    "probe_accuracy": mech.probe_accuracy,
}


def _measures(
    functions: Mapping[str, Callable[[M, BijectionFacts], mech.MeasureResult]],
    model: M,
    facts: BijectionFacts,
) -> list[tuple[str, Callable[[], mech.MeasureResult]]]:
    """Each measure by name, bound to the model and the facts (run when called)."""
    return [(name, partial(fn, model, facts)) for name, fn in functions.items()]


__all__ = ["ModelFileCheck", "adapter_of", "expected_of", "inspect_model"]
