"""The trainer: gradient descent on the section 2 model over all facts (docs/theory.md 5, 7).

Trains :class:`~verifier.model.OneLayerTransformer` (the class the constructions write) with
cross-entropy, in float32, on a :class:`TrainTask`, every example of an instance at once:

- single hop: all ``N*R`` facts ``[r, s] -> pi_r(s)``, answer at the last position;
- multi-hop without chain-of-thought: all ``N*|C|`` queries ``[r_1..r_k, x] -> pi_c(x)``, answer
  at the last position (the Gk layout);
- multi-hop with chain-of-thought, by teacher forcing: the input ``[r_1..r_k, x, y_1..y_{k-1}]``
  holds the *true* intermediates, and ``y_i`` is the target at the position of ``y_{i-1}``
  (``k + i - 1``), so each query contributes k targets (the Ck layout). A query counts as right
  when all its k steps are; with every teacher-forced step right, greedy decoding feeds back
  exactly the true tokens, so it is right too (the claim still evaluates greedily, in float64).

Every random draw comes from :mod:`verifier.seeds` (initialisation from ``Stream.INIT``,
mini-batch order from ``Stream.BATCH``) and no torch random op is used, so a seed gives the
same run on CPU.

The settings of docs/theory.md section 7b: ``attention="uniform"`` fixes ``W_Q = W_K = 0`` (G1's
attention, not trained); ``init`` multiplies a weight's default init (``W_E``: the subject rows,
``W_E_relations``: the other rows); ``groups`` gives a weight its own optimiser, and
``per_subject`` steps the subject rows on each subject's own mean loss (gradient times N);
``min_steps`` keeps training after exact recall. Replicates (one per seed, each on its own
instance) train as one stacked model through :func:`train_replicates`; every optimiser here is
element-wise, so a replicate's trajectory is its serial run's (bitwise on this CPU, see
tests/verifier/test_train_stacked.py).

Training stops early once every example is right (strict argmax, as in
:mod:`verifier.measure.recall`; or a share ``stop_accuracy`` of them, the associative-memory peer's
0.99), the loss is at most ``stop_loss`` and at least ``min_steps`` steps were taken.
``attention="none"`` zeroes and freezes every attention weight, so the MLP reads ``W_E[s] + W_pos``
alone (the peer's MLP-only memory), and ``unit_norm`` draws unit-norm embedding rows or unembedding
columns. A progress callback sees ``(step, loss, accuracy)``; it may raise (for example
:class:`~verifier.errors.Cancelled`) to stop the run. Checkpoints live in
``<cache_dir>/training/<key>.pt``; :func:`run_key` hashes everything that determines the trained
weights (instance, settings, replicate seeds, thread count, device type, the trainer's source,
torch's version), so a repeated claim reuses its trained models and a changed one never does.

Each step is fused (:mod:`~verifier.train.fused`: hand-derived gradients and a flat-buffer
optimiser update, no autograd) and runs on :func:`verifier.device.resolve_device`
(``VERIFIER_DEVICE``); the autograd loop stays as the reference the tests compare it with.

The package: :mod:`~verifier.train.config` (settings and results), :mod:`~verifier.train.tasks`
(examples), :mod:`~verifier.train.weights` (initial weights), :mod:`~verifier.train.fused` (the
fused step), :mod:`~verifier.train.loop` (the
stacked loop), :mod:`~verifier.train.augment` (combination augmentation: synthetic subjects from the
superposition fit, ``TrainConfig.augment``), :mod:`~verifier.train.relearn` (re-learning a subject
table); this module holds
the checkpoint cache and re-exports the rest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

import verifier
from verifier import codekey
from verifier.cache_folder import ignore_in_git
from verifier.device import device_type
from verifier.facts.bijections import BijectionFacts
from verifier.train.augment import Augmenter
from verifier.train.config import (
    ATTENTION_WEIGHTS,
    INIT_NAMES,
    PARAM_NAMES,
    RELATION_ROWS,
    UNIT_NORM_NAMES,
    WEIGHT_NAMES,
    Attention,
    AugmentConfig,
    OptimGroup,
    Optimizer,
    Schedule,
    TrainConfig,
    TrainProgress,
    TrainResult,
)
from verifier.train.loop import (
    SMALL_TASK_FLOATS,
    TRAIN_ORDER_VAR,
    TRAIN_THREADS_VAR,
    StackedForward,
    example_order,
    lr_factor,
    train,
    train_replicates,
    training_threads,
)
from verifier.train.tasks import TrainTask, as_task, fact_task, query_task
from verifier.train.weights import (
    build_model,
    from_model,
    initial_unembedding,
    initial_weights,
    model_config,
    to_model,
)

log = logging.getLogger(__name__)
__all__ = [
    "ATTENTION_WEIGHTS",
    "INIT_NAMES",
    "PARAM_NAMES",
    "RELATION_ROWS",
    "SMALL_TASK_FLOATS",
    "TRAINER_VERSION",
    "TRAIN_ORDER_VAR",
    "TRAIN_THREADS_VAR",
    "UNIT_NORM_NAMES",
    "WEIGHT_NAMES",
    "Attention",
    "AugmentConfig",
    "Augmenter",
    "OptimGroup",
    "Optimizer",
    "Schedule",
    "StackedForward",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "TrainTask",
    "as_task",
    "build_model",
    "checkpoint_path",
    "code_fingerprint",
    "example_order",
    "fact_task",
    "from_model",
    "initial_unembedding",
    "initial_weights",
    "load_checkpoint",
    "lr_factor",
    "model_config",
    "query_task",
    "run_key",
    "save_checkpoint",
    "to_model",
    "train",
    "train_cached",
    "train_replicates",
    "train_replicates_cached",
    "training_threads",
]
TRAINER_VERSION = 7  # bump when a change alters what a seed trains (invalidates checkpoints)


# --- checkpoints -------------------------------------------------------------------------------


@functools.cache
def code_fingerprint() -> str:
    """sha256 of the trainer's source: every module of its import closure, and torch's version.

    The closure (:func:`verifier.codekey.kind_modules`' graph, rooted at this package) holds the
    model, the facts, the seeds and the stopping rule, so any edit to code that could train
    differently changes the key and a checkpoint is never reused across it.
    """
    return codekey.source_digest(
        (__name__,), f"{verifier.__version__}|torch {torch.__version__}".encode()
    )


def run_key(
    instance: dict[str, Any],
    cfg: TrainConfig,
    threads: int | None = None,
    seeds: Sequence[int] | None = None,
) -> str:
    """sha256 (canonical JSON) of everything that determines a trained model.

    That is the instance (kind, N, R, k, cot, chains, attributes, seed: a sweep point's values
    are substituted before this), every training setting (shapes, attention, init, optimiser
    and its groups, lr, schedule, batch, stopping rule, init and batch seed, frozen weights),
    the replicate seeds of a stacked run (``seeds``; each replicate's instance is redrawn from
    its seed), the intra-op thread count (``threads``, :func:`training_threads`; None: torch's
    setting), the example order (:func:`example_order`), the device type
    (:func:`verifier.device.device_type`: float32 sums differ between CPU and GPU),
    :data:`TRAINER_VERSION` and :func:`code_fingerprint`. A claim's id, description and
    expectations are not in it: claims that train the same model share one checkpoint.
    """
    payload = {
        "trainer": TRAINER_VERSION,
        "code": code_fingerprint(),
        "threads": torch.get_num_threads() if threads is None else threads,
        "order": example_order(),
        "device": device_type(),
        "instance": instance,
        "config": asdict(cfg),
        "seeds": None if seeds is None else list(seeds),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def checkpoint_path(cache_dir: str | os.PathLike[str], key: str) -> Path:
    """Where the checkpoint of run ``key`` lives."""
    return Path(cache_dir) / "training" / f"{key}.pt"


def _record(result: TrainResult) -> dict[str, Any]:
    return {
        "state": {k: v.detach().clone() for k, v in result.model.state_dict().items()},
        "steps": result.steps,
        "steps_to_perfect": result.steps_to_perfect,
        "final_loss": result.final_loss,
        "final_accuracy": result.final_accuracy,
        "stopped_early": result.stopped_early,
        "history": [list(row) for row in result.history],
        "peak_loss": result.peak_loss,
        "seed": result.seed,
        "fit_history": [list(row) for row in result.fit_history],
    }


def save_checkpoint(path: Path, results: TrainResult | Sequence[TrainResult]) -> None:
    """Write every replicate's weights and record atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = [results] if isinstance(results, TrainResult) else list(results)
    payload = {"replicates": [_record(r) for r in runs]}
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: Path, data: BijectionFacts | TrainTask | Sequence[TrainTask], cfg: TrainConfig
) -> list[TrainResult] | None:
    """The checkpointed replicates at ``path``, or None when absent, unreadable or of another
    replicate count."""
    if not path.is_file():
        return None
    tasks = list(data) if isinstance(data, Sequence) else [as_task(data)]
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        records = payload["replicates"]
        if len(records) != len(tasks):
            return None
        results = []
        for task, rec in zip(tasks, records, strict=True):
            model = build_model(task, cfg)
            model.load_state_dict(rec["state"])
            results.append(
                TrainResult(
                    model=model,
                    steps=int(rec["steps"]),
                    steps_to_perfect=rec["steps_to_perfect"],
                    final_loss=float(rec["final_loss"]),
                    final_accuracy=float(rec["final_accuracy"]),
                    stopped_early=bool(rec["stopped_early"]),
                    history=[(int(s), float(lo), float(a)) for s, lo, a in rec["history"]],
                    peak_loss=float(rec.get("peak_loss", math.nan)),
                    from_cache=True,
                    seed=int(rec["seed"]),
                    fit_history=[(int(s), float(v)) for s, v in rec.get("fit_history", [])],
                )
            )
    except (OSError, RuntimeError, KeyError, ValueError, EOFError, TypeError):
        return None
    return results


def train_cached(
    data: BijectionFacts | TrainTask,
    cfg: TrainConfig,
    key: str,
    cache_dir: str | os.PathLike[str] | None,
    progress: TrainProgress | None = None,
) -> TrainResult:
    """:func:`train`, reusing ``<cache_dir>/training/<key>.pt`` when present (None: no cache)."""
    return train_replicates_cached([as_task(data)], cfg, [cfg.seed], key, cache_dir, progress)[0]


def train_replicates_cached(
    tasks: Sequence[TrainTask],
    cfg: TrainConfig,
    seeds: Sequence[int],
    key: str,
    cache_dir: str | os.PathLike[str] | None,
    progress: TrainProgress | None = None,
) -> list[TrainResult]:
    """:func:`train_replicates`, reusing ``<cache_dir>/training/<key>.pt`` when present.

    A checkpoint that cannot be written (a read-only folder) is logged and skipped: the run's
    result does not depend on the cache.
    """
    if cache_dir is not None:
        cached = load_checkpoint(checkpoint_path(cache_dir, key), tasks, cfg)
        if cached is not None:
            return cached
    results = train_replicates(tasks, cfg, seeds, progress)
    if cache_dir is not None:
        try:
            ignore_in_git(cache_dir)
            save_checkpoint(checkpoint_path(cache_dir, key), results)
        except OSError as exc:
            log.warning("training checkpoint not written to %s: %s", cache_dir, exc)
    return results
