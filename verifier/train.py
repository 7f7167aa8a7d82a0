"""The trainer: gradient descent on the section 2 model over every fact (THEORY.md section 7).

Trains :class:`~verifier.model.OneLayerTransformer` (the class the constructions write) on all
``N*R`` single-hop facts ``[r, s] -> pi_r(s)`` with cross-entropy, in float32. Every random draw
comes from :mod:`verifier.seeds` (initialisation from ``Stream.INIT``, mini-batch order from
``Stream.BATCH``) and no torch random op is used, so a seed gives the same run on CPU.

Training stops early once every fact is recalled (strict argmax, as in :mod:`verifier.recall`)
and the loss is at most ``stop_loss``. A progress callback sees ``(step, loss, accuracy)``;
it may raise (for example :class:`~verifier.errors.Cancelled`) to stop the run. Checkpoints
live in ``<cache_dir>/training/<key>.pt``, keyed by a content hash of the instance and the
training settings, so a repeated claim reuses its trained model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from verifier.instances import BijectionFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.recall import margins_of
from verifier.seeds import Stream, rng

TRAINER_VERSION = 1  # bump when a change alters what a seed trains (invalidates checkpoints)
SEQ_LEN = 2  # [r, x]
WEIGHT_NAMES: tuple[str, ...] = (
    "W_E",
    "W_pos",
    "W_Q",
    "W_K",
    "W_V",
    "W_O",
    "W_in",
    "b_in",
    "W_out",
    "b_out",
    "W_U",
)
Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["constant", "cosine", "linear"]
TrainProgress = Callable[[int, float, float], None]  # (step, loss, accuracy)


@dataclass(frozen=True)
class TrainConfig:
    """Model shape and optimiser settings of one training run."""

    d_model: int
    d_mlp: int
    n_heads: int = 1
    d_head: int | None = None  # None: d_model // n_heads
    init_scale: float = 1.0  # multiplies every fan-in scaled Gaussian init
    optimizer: Optimizer = "adam"
    lr: float = 3e-3
    steps: int = 3000  # the most optimiser steps
    schedule: Schedule = "constant"  # lr multiplier after warmup: 1, cosine to 0, linear to 0
    warmup: int = 0  # linear warmup steps
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    batch_size: int | None = None  # None: full batch (every fact, every step)
    stop_loss: float = 0.05  # early stop once all facts are right and the loss is <= this
    eval_every: int = 50  # mini-batch runs: steps between full-set evaluations
    seed: int = 0  # initialisation and batch order
    freeze: tuple[str, ...] = ()  # weight names kept at their initial value

    def __post_init__(self) -> None:
        for name in self.freeze:
            if name not in WEIGHT_NAMES:
                raise ValueError(
                    f"freeze: expected names from {', '.join(WEIGHT_NAMES)}, got {name!r}"
                )

    @property
    def head_dim(self) -> int:
        """d_head, defaulting to ``d_model // n_heads`` (at least 1)."""
        return self.d_head if self.d_head is not None else max(1, self.d_model // self.n_heads)


@dataclass
class TrainResult:
    """A trained model and how it got there.

    Attributes:
        model: the float32 model after the last step.
        steps: optimiser steps taken.
        steps_to_perfect: first step count after which every fact was recalled (float32, strict
            argmax), or None if never. Exact per step for full batch; a multiple of
            ``eval_every`` for mini-batches.
        final_loss: mean cross-entropy over every fact after the last step (float32).
        final_accuracy: share of facts recalled after the last step (float32).
        stopped_early: the exact-recall + loss criterion was met.
        history: ``(step, loss, accuracy)`` at each evaluation, thinned to at most 200 rows.
        from_cache: loaded from a checkpoint rather than trained.
    """

    model: OneLayerTransformer
    steps: int
    steps_to_perfect: int | None
    final_loss: float
    final_accuracy: float
    stopped_early: bool
    history: list[tuple[int, float, float]] = field(default_factory=list)
    from_cache: bool = False


def build_model(facts: BijectionFacts, cfg: TrainConfig) -> OneLayerTransformer:
    """A float32 model with seeded fan-in scaled Gaussian weights (biases zero).

    ``W_E, W_pos ~ N(0, s^2)``; ``W_Q, W_K, W_V, W_in, W_U ~ N(0, s^2/d_model)``;
    ``W_O ~ N(0, s^2/d_head)``; ``W_out ~ N(0, s^2/d_mlp)``, with ``s = init_scale``. Each
    tensor has its own sub-stream of ``Stream.INIT``, so changing one shape shifts no other.
    """
    mcfg = ModelConfig(
        n_vocab=facts.n_vocab,
        n_ctx=SEQ_LEN,
        d_model=cfg.d_model,
        d_head=cfg.head_dim,
        n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp,
        n_out=facts.n_attributes,
    )
    model = OneLayerTransformer(mcfg, dtype=torch.float32)
    fan_in = {
        "W_E": 1,
        "W_pos": 1,
        "W_Q": cfg.d_model,
        "W_K": cfg.d_model,
        "W_V": cfg.d_model,
        "W_O": cfg.head_dim,
        "W_in": cfg.d_model,
        "W_out": cfg.d_mlp,
        "W_U": cfg.d_model,
    }
    with torch.no_grad():
        for i, name in enumerate(WEIGHT_NAMES):
            if name not in fan_in:
                continue  # biases start at zero
            param = getattr(model, name)
            std = cfg.init_scale / math.sqrt(fan_in[name])
            draw = rng(cfg.seed, Stream.INIT, i).standard_normal(tuple(param.shape)) * std
            param.copy_(torch.from_numpy(draw.astype(np.float32)))
    for name in cfg.freeze:
        getattr(model, name).requires_grad_(False)
    return model


def _optimizer(model: OneLayerTransformer, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``lr`` at optimiser step ``step`` (0-based): warmup, then the schedule."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    t = min(1.0, (step - cfg.warmup) / span)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if cfg.schedule == "linear":
        return 1.0 - t
    return 1.0


def _all_facts(facts: BijectionFacts) -> tuple[torch.Tensor, torch.Tensor]:
    subjects, relations = facts.fact_arrays()
    targets = torch.from_numpy(facts.answers(subjects, relations))
    return facts.tokens(subjects, relations), targets


def _evaluate(
    model: OneLayerTransformer, tokens: torch.Tensor, targets: torch.Tensor
) -> tuple[float, float]:
    """(mean loss, strict accuracy) over every fact, float32, in chunks."""
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(targets), 8192):
            logits = model(tokens[start : start + 8192])
            tgt = targets[start : start + 8192]
            loss_sum += float(torch.nn.functional.cross_entropy(logits, tgt, reduction="sum"))
            correct += int((margins_of(logits, tgt)[0] > 0).sum())
    return loss_sum / len(targets), correct / len(targets)


def train(
    facts: BijectionFacts, cfg: TrainConfig, progress: TrainProgress | None = None
) -> TrainResult:
    """Train a fresh model on every fact of ``facts``.

    Full batch: each step's forward pass gives the loss and accuracy of the current weights,
    so the stopping rule is checked at every step at no extra cost. Mini-batch: a seeded
    permutation per epoch, a full evaluation every ``eval_every`` steps.

    Args:
        facts: the instance's facts.
        cfg: shapes and optimiser settings.
        progress: called with ``(step, loss, accuracy)`` at each evaluation (at most about
            100 times a run); it may raise to stop training.
    """
    model = build_model(facts, cfg)
    opt = _optimizer(model, cfg)
    tokens, targets = _all_facts(facts)
    n = len(targets)
    full = cfg.batch_size is None or cfg.batch_size >= n
    eval_every = 1 if full else max(1, cfg.eval_every)
    report_every = max(eval_every, cfg.steps // 100 // eval_every * eval_every)
    history: list[tuple[int, float, float]] = []
    steps_to_perfect: int | None = None
    order = np.arange(n)
    cursor, epoch = n, 0
    loss_val, acc = math.inf, 0.0
    stopped = False
    step = 0
    while True:
        evaluate_now = step % eval_every == 0 or step == cfg.steps
        if full:
            logits = model(tokens)
            loss = torch.nn.functional.cross_entropy(logits, targets)
            loss_val = float(loss.detach())
            with torch.no_grad():
                acc = float((margins_of(logits.detach(), targets)[0] > 0).float().mean())
        elif evaluate_now:
            loss_val, acc = _evaluate(model, tokens, targets)
        if evaluate_now:
            if acc == 1.0 and steps_to_perfect is None:
                steps_to_perfect = step
            history.append((step, loss_val, acc))
            if progress is not None and (step % report_every == 0 or step == cfg.steps):
                progress(step, loss_val, acc)
            if acc == 1.0 and loss_val <= cfg.stop_loss:
                stopped = True
                break
        if step == cfg.steps:
            break
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg)
        if not full:
            if cursor >= n:
                order = rng(cfg.seed, Stream.BATCH, epoch).permutation(n)
                cursor, epoch = 0, epoch + 1
            idx = torch.from_numpy(order[cursor : cursor + int(cfg.batch_size or n)])
            cursor += len(idx)
            loss = torch.nn.functional.cross_entropy(model(tokens[idx]), targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        step += 1
    if history and history[-1][0] != step:
        loss_val, acc = _evaluate(model, tokens, targets)
        history.append((step, loss_val, acc))
    stride = max(1, math.ceil(len(history) / 200))
    thinned = history[::stride] + ([history[-1]] if (len(history) - 1) % stride else [])
    return TrainResult(
        model=model,
        steps=step,
        steps_to_perfect=steps_to_perfect,
        final_loss=loss_val,
        final_accuracy=acc,
        stopped_early=stopped,
        history=thinned,
    )


# --- checkpoints -------------------------------------------------------------------------------


def run_key(instance: dict[str, Any], cfg: TrainConfig) -> str:
    """sha256 of the instance, the training settings and the trainer version (canonical JSON)."""
    payload = {"trainer": TRAINER_VERSION, "instance": instance, "config": asdict(cfg)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def checkpoint_path(cache_dir: str | os.PathLike[str], key: str) -> Path:
    """Where the checkpoint of run ``key`` lives."""
    return Path(cache_dir) / "training" / f"{key}.pt"


def save_checkpoint(path: Path, result: TrainResult) -> None:
    """Write weights and the run's record atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state": {k: v.detach().clone() for k, v in result.model.state_dict().items()},
        "steps": result.steps,
        "steps_to_perfect": result.steps_to_perfect,
        "final_loss": result.final_loss,
        "final_accuracy": result.final_accuracy,
        "stopped_early": result.stopped_early,
        "history": [list(row) for row in result.history],
    }
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, facts: BijectionFacts, cfg: TrainConfig) -> TrainResult | None:
    """The checkpointed run at ``path``, or None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(facts, cfg)
        model.load_state_dict(payload["state"])
    except (OSError, RuntimeError, KeyError, ValueError, EOFError):
        return None
    return TrainResult(
        model=model,
        steps=int(payload["steps"]),
        steps_to_perfect=payload["steps_to_perfect"],
        final_loss=float(payload["final_loss"]),
        final_accuracy=float(payload["final_accuracy"]),
        stopped_early=bool(payload["stopped_early"]),
        history=[(int(s), float(lo), float(a)) for s, lo, a in payload["history"]],
        from_cache=True,
    )


def train_cached(
    facts: BijectionFacts,
    cfg: TrainConfig,
    key: str,
    cache_dir: str | os.PathLike[str] | None,
    progress: TrainProgress | None = None,
) -> TrainResult:
    """:func:`train`, reusing ``<cache_dir>/training/<key>.pt`` when present (None: no cache)."""
    if cache_dir is not None:
        cached = load_checkpoint(checkpoint_path(cache_dir, key), facts, cfg)
        if cached is not None:
            return cached
    result = train(facts, cfg, progress)
    if cache_dir is not None:
        save_checkpoint(checkpoint_path(cache_dir, key), result)
    return result
