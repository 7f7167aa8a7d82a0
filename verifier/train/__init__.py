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
weights (instance, settings, replicate seeds, thread count, the trainer's source, torch's version),
so a repeated claim reuses its trained models and a changed one never does.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import verifier
from verifier import codekey
from verifier.errors import VerifierError
from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.seeds import Stream, rng

log = logging.getLogger(__name__)
TRAINER_VERSION = 3  # bump when a change alters what a seed trains (invalidates checkpoints)
SMALL_TASK_FLOATS = 1 << 18  # activations below which a run trains on one thread
TRAIN_THREADS_VAR = "VERIFIER_TRAIN_THREADS"  # intra-op threads of larger runs (default 1)
TRAIN_ORDER_VAR = "VERIFIER_TRAIN_ORDER"  # 0: examples in canonical order; else a permutation seed
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
RELATION_ROWS = "W_E_relations"  # the rows of W_E after the entities (relations, specials)
# The trainer's tensors: W_E is split into its subject rows ("W_E") and the rest, so that the
# two can have their own init scale, optimiser step and freezing.
PARAM_NAMES: tuple[str, ...] = ("W_E", RELATION_ROWS, *WEIGHT_NAMES[1:])
INIT_NAMES: tuple[str, ...] = tuple(n for n in PARAM_NAMES if not n.startswith("b_"))
Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["constant", "cosine", "linear"]
Attention = Literal["learned", "uniform", "none"]
ATTENTION_WEIGHTS: tuple[str, ...] = ("W_Q", "W_K", "W_V", "W_O")
UNIT_NORM_NAMES: tuple[str, ...] = ("W_E", RELATION_ROWS, "W_U")  # rows of W_E, columns of W_U
TrainProgress = Callable[[int, float, float], None]  # (step, loss, accuracy)


@dataclass(frozen=True)
class OptimGroup:
    """Optimiser settings for one weight, overriding :class:`TrainConfig`'s where set.

    ``per_subject`` (``W_E`` only): the subject rows step on each subject's own mean loss, i.e.
    their gradient of the mean loss over every example times N (a subject's R facts are R of the
    N R examples), so one learning rate works at every N.
    """

    optimizer: Optimizer | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    per_subject: bool = False


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
    freeze: tuple[str, ...] = ()  # weights kept at their initial value (W_E: the whole table)
    attention: Attention = "learned"  # uniform: W_Q = W_K = 0, not trained (as in G1); none:
    # W_Q = W_K = W_V = W_O = 0, not trained, so h1 = h0 and the MLP alone stores the facts
    init: tuple[tuple[str, float], ...] = ()  # per-weight init multipliers (W_E: subject rows)
    groups: tuple[tuple[str, OptimGroup], ...] = ()  # per-weight optimiser overrides
    min_steps: int = 0  # keep training after the stopping rule holds until this many steps
    stop_accuracy: float = 1.0  # early stop once this share of examples is right (and the loss)
    unit_norm: tuple[str, ...] = ()  # W_E rows / W_U columns rescaled to norm 1 at init

    def __post_init__(self) -> None:
        for name in self.freeze:
            if name not in (*WEIGHT_NAMES, RELATION_ROWS):
                raise ValueError(
                    f"freeze: expected names from {', '.join(WEIGHT_NAMES)}, got {name!r}"
                )
        for name, scale in self.init:
            if name not in INIT_NAMES:
                raise ValueError(f"init: expected names from {', '.join(INIT_NAMES)}, got {name!r}")
            if not (math.isfinite(scale) and scale >= 0):
                raise ValueError(f"init.{name}: expected a finite multiplier >= 0, got {scale}")
        for name, group in self.groups:
            if name not in WEIGHT_NAMES:
                raise ValueError(
                    f"groups: expected names from {', '.join(WEIGHT_NAMES)}, got {name!r}"
                )
            if group.per_subject and name != "W_E":
                raise ValueError(f"groups.{name}.per_subject: only W_E has subject rows")
        for name in self.unit_norm:
            if name not in UNIT_NORM_NAMES:
                raise ValueError(
                    f"unit_norm: expected names from {', '.join(UNIT_NORM_NAMES)}, got {name!r}"
                )
        if not 0 < self.stop_accuracy <= 1:
            raise ValueError(f"stop_accuracy: expected a share in (0, 1], got {self.stop_accuracy}")

    @property
    def head_dim(self) -> int:
        """d_head, defaulting to ``d_model // n_heads`` (at least 1)."""
        return self.d_head if self.d_head is not None else max(1, self.d_model // self.n_heads)

    def init_multiplier(self, name: str) -> float:
        """The init multiplier of trainer tensor ``name`` (1 unless set)."""
        return dict(self.init).get(name, 1.0)

    def frozen(self, name: str) -> bool:
        """Whether trainer tensor ``name`` keeps its initial value."""
        if name in ("W_Q", "W_K") and self.attention == "uniform":
            return True
        if name in ATTENTION_WEIGHTS and self.attention == "none":
            return True
        if name in self.freeze:
            return True
        return name == RELATION_ROWS and "W_E" in self.freeze

    def group(self, name: str) -> tuple[Optimizer, float, float, float, bool]:
        """(optimizer, lr, momentum, weight_decay, per_subject) of trainer tensor ``name``."""
        groups = dict(self.groups)
        g = groups.get("W_E" if name == RELATION_ROWS else name, OptimGroup())
        return (
            g.optimizer or self.optimizer,
            self.lr if g.lr is None else g.lr,
            self.momentum if g.momentum is None else g.momentum,
            self.weight_decay if g.weight_decay is None else g.weight_decay,
            g.per_subject and name == "W_E",
        )


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
        stopped_early: the stopping rule (accuracy, loss, min_steps) was met.
        history: ``(step, loss, accuracy)`` at each evaluation, thinned to at most 200 rows.
        from_cache: loaded from a checkpoint rather than trained.
        seed: the replicate's seed (initialisation and batch order).
        peak_loss: the largest loss at any evaluation (inf once one was not finite): a run
            whose loss blew up above its start diverged, whatever it ended at.
    """

    model: OneLayerTransformer
    steps: int
    steps_to_perfect: int | None
    final_loss: float
    final_accuracy: float
    stopped_early: bool
    history: list[tuple[int, float, float]] = field(default_factory=list)
    from_cache: bool = False
    seed: int = 0
    peak_loss: float = math.nan


@dataclass(frozen=True)
class TrainTask:
    """Every training example of an instance, as token rows and their targets.

    Attributes:
        tokens: ``(n, L)`` int64 input sequences.
        targets: ``(n,)`` int64 answers read at the last position, or ``(n, T)`` answers read at
            ``positions`` (teacher forcing: ``T = k`` steps per query).
        positions: the ``T`` target positions, or None for the last position only.
        n_vocab: input vocabulary (entities then relations).
        n_out: output vocabulary (attributes).
        n_entities: the first ``n_entities`` tokens are entities (the subject rows of ``W_E``).
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    positions: tuple[int, ...] | None
    n_vocab: int
    n_out: int
    n_entities: int

    def __post_init__(self) -> None:
        n, length = self.tokens.shape
        shape = (n,) if self.positions is None else (n, len(self.positions))
        if tuple(self.targets.shape) != shape:
            raise ValueError(f"targets: expected shape {shape}, got {tuple(self.targets.shape)}")
        if self.positions is not None and not all(0 <= p < length for p in self.positions):
            raise ValueError(f"positions: expected 0..{length - 1}, got {self.positions}")

    @property
    def n_examples(self) -> int:
        """Rows: facts or queries."""
        return int(self.tokens.shape[0])

    @property
    def n_ctx(self) -> int:
        """Sequence length L."""
        return int(self.tokens.shape[1])

    @property
    def steps_per_example(self) -> int:
        """Targets per row: 1, or k under teacher forcing."""
        return 1 if self.positions is None else len(self.positions)


def fact_task(facts: BijectionFacts) -> TrainTask:
    """All ``N*R`` single-hop facts: ``[r, s]`` -> ``pi_r(s)`` (relation-major order)."""
    subjects, relations = facts.fact_arrays()
    targets = torch.from_numpy(facts.answers(subjects, relations))
    tokens = facts.tokens(subjects, relations)
    return TrainTask(tokens, targets, None, facts.n_vocab, facts.n_attributes, facts.n_entities)


def query_task(facts: ChainFacts, cot: bool) -> TrainTask:
    """All ``N*|C|`` depth-k queries, in the canonical (chain-major) order.

    Without chain-of-thought: ``[r_1..r_k, x]`` -> ``pi_c(x)`` at the last position. With it
    (teacher forcing): ``[r_1..r_k, x, y_1..y_{k-1}]`` with the true intermediates, targets
    ``(y_1..y_k)`` at positions ``k..2k-1``.
    """
    subjects, chains = facts.query_arrays()
    n_vocab, n_entities = facts.n_vocab, facts.n_entities
    if not cot:
        targets = torch.from_numpy(facts.answers(subjects, chains))
        tokens = facts.tokens(subjects, chains)
        return TrainTask(tokens, targets, None, n_vocab, n_entities, n_entities)
    k = facts.hops
    path = torch.from_numpy(facts.path(subjects, chains))  # (n, k): y_1..y_k
    tokens = facts.cot_tokens(subjects, chains)
    return TrainTask(tokens, path, tuple(range(k, 2 * k)), n_vocab, n_entities, n_entities)


def as_task(data: BijectionFacts | TrainTask) -> TrainTask:
    """A task as is; single-hop facts as :func:`fact_task`."""
    return data if isinstance(data, TrainTask) else fact_task(data)


def model_config(task: TrainTask, cfg: TrainConfig) -> ModelConfig:
    """The section 2 model's shapes for ``task`` and ``cfg``."""
    return ModelConfig(
        n_vocab=task.n_vocab,
        n_ctx=task.n_ctx,
        d_model=cfg.d_model,
        d_head=cfg.head_dim,
        n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp,
        n_out=task.n_out,
    )


def initial_weights(task: TrainTask, cfg: TrainConfig, seed: int) -> dict[str, torch.Tensor]:
    """Seeded fan-in scaled Gaussian init of every trainer tensor, float32.

    ``W_E, W_pos ~ N(0, s^2)``; ``W_Q, W_K, W_V, W_in, W_U ~ N(0, s^2/d_model)``;
    ``W_O ~ N(0, s^2/d_head)``; ``W_out ~ N(0, s^2/d_mlp)``, with ``s = init_scale`` times the
    tensor's ``init`` multiplier (``W_E``: the subject rows; ``W_E_relations``: the other rows).
    Biases start at zero, and so do ``W_Q, W_K`` under uniform attention and every attention
    weight under ``attention="none"``. A tensor in ``unit_norm`` has its rows (``W_E``,
    ``W_E_relations``) or columns (``W_U``, one per attribute) rescaled to norm 1 before its
    multiplier, as the associative-memory peer draws its frozen embeddings (Nichani, Lee,
    Bietti 2025; docs/theory.md section 3): a Gaussian column can fall inside the convex hull of the
    others and never be the argmax, a unit one cannot. Each weight has its own sub-stream of
    ``Stream.INIT``, so changing one shape or multiplier shifts no other draw.
    """
    mcfg = model_config(task, cfg)
    shapes = OneLayerTransformer.shapes(mcfg)
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
    out: dict[str, torch.Tensor] = {}
    zero = {"uniform": ("W_Q", "W_K"), "none": ATTENTION_WEIGHTS}.get(cfg.attention, ())
    for i, name in enumerate(WEIGHT_NAMES):
        if name not in fan_in or name in zero:
            draw = np.zeros(shapes[name])
        else:
            std = cfg.init_scale / math.sqrt(fan_in[name])
            draw = rng(seed, Stream.INIT, i).standard_normal(shapes[name]) * std
        if name == "W_U":
            out[name] = _f32(_unembedding(draw, cfg))
        elif name == "W_E":
            n = task.n_entities
            subjects, rest = draw[:n], draw[n:]
            if "W_E" in cfg.unit_norm:
                subjects = _unit(subjects, axis=1)
            if RELATION_ROWS in cfg.unit_norm:
                rest = _unit(rest, axis=1)
            out["W_E"] = _f32(subjects * cfg.init_multiplier("W_E"))
            out[RELATION_ROWS] = _f32(rest * cfg.init_multiplier(RELATION_ROWS))
        else:
            out[name] = _f32(draw * cfg.init_multiplier(name))
    return out


def _unembedding(draw: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """W_U from its Gaussian draw: unit columns (one per attribute) if asked, the multiplier."""
    if "W_U" in cfg.unit_norm:
        draw = _unit(draw, axis=0)
    return draw * cfg.init_multiplier("W_U")


def initial_unembedding(n_out: int, cfg: TrainConfig, seed: int) -> np.ndarray:
    """The ``(d_model, n_out)`` W_U that :func:`initial_weights` draws for ``seed`` (float32
    values, as float64): what a frozen unembedding stays at, without building the task."""
    std = cfg.init_scale / math.sqrt(cfg.d_model)
    index = WEIGHT_NAMES.index("W_U")
    draw = rng(seed, Stream.INIT, index).standard_normal((cfg.d_model, n_out)) * std
    out: np.ndarray = _unembedding(draw, cfg).astype(np.float32).astype(np.float64)
    return out


def _unit(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` with every slice along ``axis`` rescaled to Euclidean norm 1 (zero slices stay 0)."""
    norm = np.linalg.norm(a, axis=axis, keepdims=True)
    out: np.ndarray = np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)
    return out


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def build_model(data: BijectionFacts | TrainTask, cfg: TrainConfig) -> OneLayerTransformer:
    """A float32 model for the task's vocabulary and length at :func:`initial_weights`.

    Frozen weights (``cfg.freeze``) have ``requires_grad`` off.
    """
    task = as_task(data)
    model = to_model(task, cfg, initial_weights(task, cfg, cfg.seed))
    for name in WEIGHT_NAMES:
        if cfg.frozen(name):
            getattr(model, name).requires_grad_(False)
    return model


def to_model(
    task: TrainTask, cfg: TrainConfig, weights: dict[str, torch.Tensor]
) -> OneLayerTransformer:
    """The float32 :class:`OneLayerTransformer` holding one replicate's trainer tensors."""
    model = OneLayerTransformer(model_config(task, cfg), dtype=torch.float32)
    with torch.no_grad():
        for name in WEIGHT_NAMES:
            value = (
                torch.cat([weights["W_E"], weights[RELATION_ROWS]])
                if name == "W_E"
                else weights[name]
            )
            getattr(model, name).copy_(value)
    return model


def from_model(model: OneLayerTransformer, n_entities: int) -> dict[str, torch.Tensor]:
    """One replicate's trainer tensors (float32 copies) from a model."""
    out = {
        name: getattr(model, name).detach().float().clone()
        for name in WEIGHT_NAMES
        if name != "W_E"
    }
    table = model.W_E.detach().float()
    out["W_E"], out[RELATION_ROWS] = table[:n_entities].clone(), table[n_entities:].clone()
    return out


class StackedForward:
    """The section 2 forward pass on S replicates at once (weights with a leading S axis).

    Computes only what the loss reads: the residual at the target positions (the last, or the
    teacher-forced ones), attending causally to every earlier position. With uniform attention
    the pattern is the constant causal average (what ``softmax`` of ``W_Q = W_K = 0`` gives),
    so the scores are not computed. Matches :meth:`OneLayerTransformer.forward` replicate by
    replicate.
    """

    def __init__(self, task: TrainTask, cfg: TrainConfig) -> None:
        length = task.n_ctx
        self.positions = list(task.positions) if task.positions is not None else [length - 1]
        self.n_heads, self.d_head = cfg.n_heads, cfg.head_dim
        self.uniform = cfg.attention == "uniform"
        self.attention_free = cfg.attention == "none"  # W_V = W_O = 0: the attention adds 0
        keys = torch.arange(length)
        query = torch.tensor(self.positions)
        self.mask = keys[None, :] > query[:, None]  # (Q, L): key after query
        allowed = (~self.mask).float()
        self.pattern = allowed / allowed.sum(dim=1, keepdim=True)  # uniform causal average

    def __call__(self, w: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        """``(S, n, L)`` tokens -> logits ``(S, n, Q, n_out)`` at the target positions."""
        s, n, length = tokens.shape
        h, dh = self.n_heads, self.d_head
        table = torch.cat([w["W_E"], w[RELATION_ROWS]], dim=1)  # (S, vocab, d)
        vocab, d = table.shape[1:]
        offset = (torch.arange(s) * vocab)[:, None, None]  # replicate i's rows in the flat table
        if self.attention_free:  # only the target positions reach the MLP
            tokens = tokens[:, :, self.positions]
        h0 = torch.nn.functional.embedding(tokens + offset, table.reshape(s * vocab, d))
        if self.attention_free:
            h1 = (h0 + w["W_pos"][:, None, self.positions]).reshape(s, -1, d)  # (S, n Q, d)
            return self._mlp_unembed(w, h1).reshape(s, n, len(self.positions), -1)
        h0 = h0 + w["W_pos"][:, None, :length]  # (S, n, L, d)
        flat = h0.reshape(s, n * length, d)
        v = torch.bmm(flat, w["W_V"].permute(0, 2, 1, 3).reshape(s, d, h * dh))
        v = v.reshape(s, n, length, h, dh).transpose(2, 3)  # (S, n, H, L, dh)
        hq = h0[:, :, self.positions]  # (S, n, Q, d)
        n_q = len(self.positions)
        if self.uniform:
            z = torch.matmul(self.pattern, v)  # (S, n, H, Q, dh)
        else:
            q = (
                torch.bmm(
                    hq.reshape(s, n * n_q, d), w["W_Q"].permute(0, 2, 1, 3).reshape(s, d, h * dh)
                )
                .reshape(s, n, n_q, h, dh)
                .transpose(2, 3)
            )
            k = torch.bmm(flat, w["W_K"].permute(0, 2, 1, 3).reshape(s, d, h * dh))
            k = k.reshape(s, n, length, h, dh).transpose(2, 3)
            scores = q @ k.transpose(-1, -2) / dh**0.5  # (S, n, H, Q, L)
            z = scores.masked_fill(self.mask, float("-inf")).softmax(dim=-1) @ v
        z = z.transpose(2, 3).reshape(s, n * n_q, h * dh)  # heads concatenated
        h1 = hq.reshape(s, n * n_q, d) + torch.bmm(z, w["W_O"].reshape(s, h * dh, d))
        return self._mlp_unembed(w, h1).reshape(s, n, n_q, -1)

    @staticmethod
    def _mlp_unembed(w: dict[str, torch.Tensor], h1: torch.Tensor) -> torch.Tensor:
        """``(S, rows, d)`` h1 -> logits ``(S, rows, n_out)``: the MLP with its residual, W_U."""
        pre = torch.baddbmm(w["b_in"][:, None], h1, w["W_in"])  # (S, rows, d_mlp)
        h2 = h1 + torch.baddbmm(w["b_out"][:, None], torch.relu(pre), w["W_out"])
        return torch.bmm(h2, w["W_U"])


def _optimizers(weights: dict[str, torch.Tensor], cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """One torch optimiser per kind in use, one param group per trained tensor.

    Every kind is element-wise (no norm across a tensor), so a stacked tensor steps each
    replicate exactly as its own run would.
    """
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for name in PARAM_NAMES:
        if cfg.frozen(name):
            continue
        kind, lr, momentum, decay, _ = cfg.group(name)
        group: dict[str, Any] = {"params": [weights[name]], "lr": lr, "weight_decay": decay}
        if kind == "sgd":
            group["momentum"] = momentum
        group["base_lr"] = lr
        by_kind.setdefault(kind, []).append(group)
    classes = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW, "adam": torch.optim.Adam}
    return [classes[kind](groups) for kind, groups in by_kind.items()]


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


def training_threads(
    data: BijectionFacts | TrainTask, cfg: TrainConfig, replicates: int = 1
) -> int:
    """Intra-op threads a run uses: ``VERIFIER_TRAIN_THREADS`` (default 1), and 1 on small tasks.

    float32 results differ with the thread count, so the count must not come from the machine
    or from torch's current setting (which other code may have changed): with the fixed default
    a seed trains the same weights on every machine, and the count is part of :func:`run_key`.
    Below :data:`SMALL_TASK_FLOATS` activations (``S n (L max(d, d_mlp) + T n_out)`` floats
    for S replicates) more
    threads only cost hand-offs (``bench/train_bench.py --threads-check``: 37 ms/step on 2
    threads against 7.7 on 1 for specs/training/multi_hop.spec.yaml's 256 two-hop queries).

    Raises:
        VerifierError: ``VERIFIER_TRAIN_THREADS`` is not a positive integer.
    """
    raw = os.environ.get(TRAIN_THREADS_VAR, "1")
    if not raw.isdigit() or int(raw) < 1:
        raise VerifierError(f"{TRAIN_THREADS_VAR}: expected a positive integer, got {raw!r}")
    task = as_task(data)
    width = task.n_ctx * max(cfg.d_model, cfg.d_mlp) + task.steps_per_example * task.n_out
    return 1 if replicates * task.n_examples * width < SMALL_TASK_FLOATS else int(raw)


def example_order() -> int:
    """``VERIFIER_TRAIN_ORDER``: 0 (default) trains on the examples in their canonical order;
    any other value is the seed of a permutation of them.

    The loss and its gradient are sums over examples, so a permutation leaves them equal
    mathematically and changes only the float32 summation order: the trajectory then differs
    as it would on another CPU. (With the stacked trainer the thread count alone does not:
    ``bench/train_bench.py --threads-check`` finds bitwise equal weights at 1 and 2 threads.)
    The order is part of :func:`run_key`.

    Raises:
        VerifierError: ``VERIFIER_TRAIN_ORDER`` is not a non-negative integer.
    """
    raw = os.environ.get(TRAIN_ORDER_VAR, "0")
    if not raw.isdigit():
        raise VerifierError(f"{TRAIN_ORDER_VAR}: expected a non-negative integer, got {raw!r}")
    return int(raw)


@contextlib.contextmanager
def _intra_op_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads; restore the setting after."""
    before = torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads != before:
            torch.set_num_threads(before)


@dataclass
class _Replicates:
    """Per-replicate bookkeeping of a stacked run: the first perfect step, the stop, history."""

    seeds: tuple[int, ...]
    steps_to_perfect: list[int | None]
    stopped_at: list[int | None]
    final: list[tuple[float, float]]  # (loss, accuracy) when stopped (or at the end)
    snapshots: list[dict[str, torch.Tensor] | None]
    history: list[list[tuple[int, float, float]]]
    peak: list[float]  # largest loss evaluated (inf after a non-finite one)

    @classmethod
    def empty(cls, seeds: Sequence[int]) -> _Replicates:
        s = len(seeds)
        return cls(
            tuple(seeds), [None] * s, [None] * s, [(math.inf, 0.0)] * s, [None] * s,
            [[] for _ in range(s)], [-math.inf] * s,
        )  # fmt: skip

    @property
    def running(self) -> list[int]:
        return [i for i, stop in enumerate(self.stopped_at) if stop is None]


def _stack(
    tasks: Sequence[TrainTask],
    cfg: TrainConfig,
    seeds: Sequence[int],
    start: Sequence[dict[str, torch.Tensor]] | None,
) -> dict[str, torch.Tensor]:
    """The stacked trainer tensors ``(S, ...)``: seeded init, or ``start`` when given."""
    per = (
        [{k: v.detach().float() for k, v in w.items()} for w in start]
        if start is not None
        else [initial_weights(t, cfg, seed) for t, seed in zip(tasks, seeds, strict=True)]
    )
    weights = {name: torch.stack([w[name] for w in per]).contiguous() for name in PARAM_NAMES}
    for name, tensor in weights.items():
        tensor.requires_grad_(not cfg.frozen(name))
    return weights


def _check_alike(tasks: Sequence[TrainTask]) -> None:
    first = tasks[0]
    for t in tasks[1:]:
        same = (
            t.tokens.shape == first.tokens.shape
            and t.targets.shape == first.targets.shape
            and t.positions == first.positions
            and (t.n_vocab, t.n_out, t.n_entities) == (first.n_vocab, first.n_out, first.n_entities)
        )
        if not same:
            raise ValueError("replicates: expected tasks of one shape (the same instance sizes)")


def _loss_and_correct(
    logits: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-replicate mean cross-entropy ``(S,)`` and rows whose every target wins ``(S, n)``.

    ``logits`` ``(S, n, T, n_out)``, ``targets`` ``(S, n, T)``.
    """
    s, n, t, n_out = logits.shape
    flat = logits.reshape(-1, n_out)
    target = targets.reshape(-1)
    per = torch.nn.functional.cross_entropy(flat, target, reduction="none")
    with torch.no_grad():  # strict argmax: the answer first and above the runner-up
        top, index = flat.detach().topk(min(2, n_out), dim=1)  # a NaN ranks first, ties fail
        ok = index[:, 0] == target
        if n_out > 1:
            ok &= top[:, 0] > top[:, 1]
    return per.reshape(s, n * t).mean(dim=1), ok.reshape(s, n, t).all(dim=2)


def _evaluate_all(
    forward: StackedForward,
    weights: dict[str, torch.Tensor],
    tokens: torch.Tensor,
    targets: torch.Tensor,
) -> tuple[list[float], list[float]]:
    """Per replicate: mean loss over every target and strict accuracy over every row."""
    s, n = tokens.shape[:2]
    loss_sum = torch.zeros(s, dtype=torch.float64)
    correct = torch.zeros(s, dtype=torch.int64)
    with torch.no_grad():
        for lo in range(0, n, 8192):
            logits = forward(weights, tokens[:, lo : lo + 8192])
            loss, ok = _loss_and_correct(logits, targets[:, lo : lo + 8192])
            loss_sum += loss.double() * ok.shape[1]
            correct += ok.sum(dim=1)
    return (loss_sum / n).tolist(), (correct.double() / n).tolist()


def train_replicates(
    tasks: Sequence[TrainTask],
    cfg: TrainConfig,
    seeds: Sequence[int],
    progress: TrainProgress | None = None,
    start: Sequence[dict[str, torch.Tensor]] | None = None,
) -> list[TrainResult]:
    """Train one model per ``(task, seed)`` as a single stacked run; one result each.

    Every tensor carries a leading replicate axis; the loss is the sum of the replicates' mean
    losses, so each replicate's gradient is its own run's, and the optimisers are element-wise,
    so each replicate follows its own trajectory (up to float32 summation order). A replicate
    that meets the stopping rule (a share ``stop_accuracy`` of the examples right, loss <=
    ``stop_loss``, at least ``min_steps`` steps) is snapshotted there and its later steps are
    discarded. Runs on :func:`training_threads` threads.

    Args:
        tasks: one task per replicate, all of one shape (the instance redrawn per seed).
        cfg: shapes and optimiser settings (``cfg.seed`` is ignored: ``seeds`` rule).
        seeds: initialisation and batch-order seed of each replicate.
        progress: called with ``(step, mean loss, least accuracy)`` of the running replicates
            at most about 100 times a run; it may raise to stop training.
        start: per replicate, trainer tensors to start from (see :func:`from_model`) instead
            of the seeded init.
    """
    if len(tasks) != len(seeds) or not tasks:
        raise ValueError(
            f"replicates: expected one seed per task, got {len(seeds)} for {len(tasks)}"
        )
    _check_alike(tasks)
    with _intra_op_threads(training_threads(tasks[0], cfg, len(tasks))):
        return _train_stacked(tasks, cfg, seeds, progress, start)


def _train_stacked(
    tasks: Sequence[TrainTask],
    cfg: TrainConfig,
    seeds: Sequence[int],
    progress: TrainProgress | None,
    start: Sequence[dict[str, torch.Tensor]] | None,
) -> list[TrainResult]:
    task = tasks[0]
    weights = _stack(tasks, cfg, seeds, start)
    optimizers = _optimizers(weights, cfg)
    forward = StackedForward(task, cfg)
    tokens = torch.stack([t.tokens for t in tasks])  # (S, n, L)
    targets = torch.stack([t.targets.reshape(t.n_examples, -1) for t in tasks])  # (S, n, T)
    if order := example_order():  # the same sums in another float32 order
        permutation = torch.from_numpy(rng(order, Stream.ORDER).permutation(task.n_examples))
        tokens, targets = tokens[:, permutation], targets[:, permutation]
    per_subject = not cfg.frozen("W_E") and cfg.group("W_E")[4]
    n_rep, n = len(tasks), task.n_examples
    full = cfg.batch_size is None or cfg.batch_size >= n
    eval_every = 1 if full else max(1, cfg.eval_every)
    report_every = max(eval_every, cfg.steps // 100 // eval_every * eval_every)
    reps = _Replicates.empty(seeds)
    orders = [np.arange(n) for _ in range(n_rep)]
    cursor, epoch = n, 0
    losses: list[float] = []
    accs: list[float] = []
    replica = torch.arange(n_rep)[:, None]
    step = 0
    while True:
        evaluate_now = step % eval_every == 0 or step == cfg.steps
        if full:
            per_loss, ok = _loss_and_correct(forward(weights, tokens), targets)
            total = per_loss.sum()
            losses = per_loss.detach().tolist()
            accs = ok.float().mean(dim=1).tolist()
        elif evaluate_now:
            losses, accs = _evaluate_all(forward, weights, tokens, targets)
        if evaluate_now:
            for i in reps.running:
                if accs[i] == 1.0 and reps.steps_to_perfect[i] is None:
                    reps.steps_to_perfect[i] = step
                reps.history[i].append((step, losses[i], accs[i]))
                reps.peak[i] = max(
                    reps.peak[i], losses[i] if math.isfinite(losses[i]) else math.inf
                )
                if (
                    accs[i] >= cfg.stop_accuracy
                    and losses[i] <= cfg.stop_loss
                    and step >= cfg.min_steps
                ):
                    reps.stopped_at[i] = step
                    reps.final[i] = (losses[i], accs[i])
                    reps.snapshots[i] = {k: v[i].detach().clone() for k, v in weights.items()}
            running = reps.running
            if progress is not None and (step % report_every == 0 or step == cfg.steps):
                shown = running or list(range(n_rep))
                progress(
                    step,
                    float(np.mean([losses[i] for i in shown])),
                    min(accs[i] for i in shown),
                )
            if not running:
                break
        if step == cfg.steps:
            break
        factor = lr_factor(step, cfg)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * factor
        if not full:
            if cursor >= n:
                orders = [rng(seed, Stream.BATCH, epoch).permutation(n) for seed in seeds]
                cursor, epoch = 0, epoch + 1
            idx = torch.from_numpy(
                np.stack([o[cursor : cursor + int(cfg.batch_size or n)] for o in orders])
            )
            cursor += idx.shape[1]
            per_loss, _ = _loss_and_correct(
                forward(weights, tokens[replica, idx]), targets[replica, idx]
            )
            total = per_loss.sum()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[no-untyped-call]
        if per_subject and weights["W_E"].grad is not None:
            weights["W_E"].grad.mul_(task.n_entities)  # each subject row: its own mean loss
        for opt in optimizers:
            opt.step()
        step += 1
    results = []
    for i, seed in enumerate(seeds):
        snap = reps.snapshots[i]
        if snap is None:  # ran to the step budget
            snap = {k: v[i].detach().clone() for k, v in weights.items()}
            final, steps, stopped = (losses[i], accs[i]), step, False
        else:
            final, steps, stopped = reps.final[i], int(reps.stopped_at[i] or 0), True
        history = reps.history[i]
        stride = max(1, math.ceil(len(history) / 200))
        thinned = history[::stride] + ([history[-1]] if (len(history) - 1) % stride else [])
        model = to_model(task, cfg, snap)
        for name in WEIGHT_NAMES:
            if cfg.frozen(name):
                getattr(model, name).requires_grad_(False)
        results.append(
            TrainResult(
                model=model,
                steps=steps,
                steps_to_perfect=reps.steps_to_perfect[i],
                final_loss=final[0],
                final_accuracy=final[1],
                stopped_early=stopped,
                history=thinned,
                seed=seed,
                peak_loss=reps.peak[i],
            )
        )
    return results


def train(
    data: BijectionFacts | TrainTask, cfg: TrainConfig, progress: TrainProgress | None = None
) -> TrainResult:
    """Train a fresh model on every example of ``data`` (single-hop facts, or a task).

    Full batch: each step's forward pass gives the loss and accuracy of the current weights,
    so the stopping rule is checked at every step at no extra cost. Mini-batch: a seeded
    permutation per epoch, a full evaluation every ``eval_every`` steps. The one-replicate case
    of :func:`train_replicates`, seeded by ``cfg.seed``.

    Args:
        data: the instance's facts, or a :class:`TrainTask` (multi-hop queries).
        cfg: shapes and optimiser settings.
        progress: called with ``(step, loss, accuracy)`` at each evaluation (at most about
            100 times a run); it may raise to stop training.
    """
    return train_replicates([as_task(data)], cfg, [cfg.seed], progress)[0]


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
    setting), the example order (:func:`example_order`), :data:`TRAINER_VERSION` and
    :func:`code_fingerprint`. A claim's id, description and expectations are not in it: claims
    that train the same model share one checkpoint.
    """
    payload = {
        "trainer": TRAINER_VERSION,
        "code": code_fingerprint(),
        "threads": torch.get_num_threads() if threads is None else threads,
        "order": example_order(),
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
            save_checkpoint(checkpoint_path(cache_dir, key), results)
        except OSError as exc:
            log.warning("training checkpoint not written to %s: %s", cache_dir, exc)
    return results
