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

Training stops early once every example is right (strict argmax, as in :mod:`verifier.recall`)
and the loss is at most ``stop_loss``. A progress callback sees ``(step, loss, accuracy)``;
it may raise (for example :class:`~verifier.errors.Cancelled`) to stop the run. Checkpoints
live in ``<cache_dir>/training/<key>.pt``; :func:`run_key` hashes everything that determines the
trained weights (instance, settings, thread count, the trainer's source, torch's version), so a
repeated claim reuses its trained model and a changed one never does.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import verifier
from verifier.chains import ChainFacts
from verifier.errors import VerifierError
from verifier.instances import BijectionFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.recall import margins_of
from verifier.seeds import Stream, rng

log = logging.getLogger(__name__)
TRAINER_VERSION = 2  # bump when a change alters what a seed trains (invalidates checkpoints)
SMALL_TASK_FLOATS = 1 << 18  # activations below which a run trains on one thread
TRAIN_THREADS_VAR = "VERIFIER_TRAIN_THREADS"  # intra-op threads of larger runs (default 1)
# Modules (in this package) whose source determines the trained weights: part of the cache key.
KEY_MODULES: tuple[str, ...] = (
    "train.py",
    "model.py",
    "instances.py",
    "chains.py",
    "seeds.py",
    "recall.py",
)
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
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    positions: tuple[int, ...] | None
    n_vocab: int
    n_out: int

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

    def logits(self, model: OneLayerTransformer, tokens: torch.Tensor) -> torch.Tensor:
        """``(b, n_out)`` at the last position, or ``(b, T, n_out)`` at ``positions``."""
        if self.positions is None:
            return model.forward(tokens)
        return model.forward(tokens, last_only=False)[:, list(self.positions)]

    def loss(
        self, logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        """Cross-entropy over every target (a query's k teacher-forced steps count k times)."""
        flat = logits.reshape(-1, logits.shape[-1])
        return torch.nn.functional.cross_entropy(flat, targets.reshape(-1), reduction=reduction)

    def loss_and_correct(
        self, logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`loss`, and ``(b,)`` rows whose every target wins strictly."""
        loss = self.loss(logits, targets, reduction)
        with torch.no_grad():
            flat = logits.detach().reshape(-1, logits.shape[-1])
            ok = margins_of(flat, targets.reshape(-1))[0] > 0
            if targets.dim() == 2:
                ok = ok.reshape(targets.shape).all(dim=1)
        return loss, ok


def fact_task(facts: BijectionFacts) -> TrainTask:
    """All ``N*R`` single-hop facts: ``[r, s]`` -> ``pi_r(s)`` (relation-major order)."""
    subjects, relations = facts.fact_arrays()
    targets = torch.from_numpy(facts.answers(subjects, relations))
    return TrainTask(
        facts.tokens(subjects, relations), targets, None, facts.n_vocab, facts.n_attributes
    )


def query_task(facts: ChainFacts, cot: bool) -> TrainTask:
    """All ``N*|C|`` depth-k queries, in the canonical (chain-major) order.

    Without chain-of-thought: ``[r_1..r_k, x]`` -> ``pi_c(x)`` at the last position. With it
    (teacher forcing): ``[r_1..r_k, x, y_1..y_{k-1}]`` with the true intermediates, targets
    ``(y_1..y_k)`` at positions ``k..2k-1``.
    """
    subjects, chains = facts.query_arrays()
    if not cot:
        targets = torch.from_numpy(facts.answers(subjects, chains))
        return TrainTask(
            facts.tokens(subjects, chains), targets, None, facts.n_vocab, facts.n_entities
        )
    k = facts.hops
    path = torch.from_numpy(facts.path(subjects, chains))  # (n, k): y_1..y_k
    positions = tuple(range(k, 2 * k))
    return TrainTask(
        facts.cot_tokens(subjects, chains), path, positions, facts.n_vocab, facts.n_entities
    )


def as_task(data: BijectionFacts | TrainTask) -> TrainTask:
    """A task as is; single-hop facts as :func:`fact_task`."""
    return data if isinstance(data, TrainTask) else fact_task(data)


def build_model(data: BijectionFacts | TrainTask, cfg: TrainConfig) -> OneLayerTransformer:
    """A float32 model for the task's vocabulary and length, seeded fan-in scaled Gaussian init.

    ``W_E, W_pos ~ N(0, s^2)``; ``W_Q, W_K, W_V, W_in, W_U ~ N(0, s^2/d_model)``;
    ``W_O ~ N(0, s^2/d_head)``; ``W_out ~ N(0, s^2/d_mlp)``, with ``s = init_scale``. Each
    tensor has its own sub-stream of ``Stream.INIT``, so changing one shape shifts no other.
    """
    task = as_task(data)
    mcfg = ModelConfig(
        n_vocab=task.n_vocab,
        n_ctx=task.n_ctx,
        d_model=cfg.d_model,
        d_head=cfg.head_dim,
        n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp,
        n_out=task.n_out,
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


def _evaluate(model: OneLayerTransformer, task: TrainTask) -> tuple[float, float]:
    """(mean loss over every target, strict accuracy over every row), float32, in chunks."""
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, task.n_examples, 8192):
            tokens = task.tokens[start : start + 8192]
            loss, ok = task.loss_and_correct(
                task.logits(model, tokens), task.targets[start : start + 8192], reduction="sum"
            )
            loss_sum += float(loss)
            correct += int(ok.sum())
    n_targets = task.n_examples * task.steps_per_example
    return loss_sum / n_targets, correct / task.n_examples


def training_threads(data: BijectionFacts | TrainTask, cfg: TrainConfig) -> int:
    """Intra-op threads a run uses: ``VERIFIER_TRAIN_THREADS`` (default 1), and 1 on small tasks.

    float32 results differ with the thread count, so the count must not come from the machine
    or from torch's current setting (which other code may have changed): with the fixed default
    a seed trains the same weights on every machine, and the count is part of :func:`run_key`.
    Below :data:`SMALL_TASK_FLOATS` activations (``n (L max(d, d_mlp) + T n_out)`` floats) more
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
    return 1 if task.n_examples * width < SMALL_TASK_FLOATS else int(raw)


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


def train(
    data: BijectionFacts | TrainTask, cfg: TrainConfig, progress: TrainProgress | None = None
) -> TrainResult:
    """Train a fresh model on every example of ``data`` (single-hop facts, or a task).

    Full batch: each step's forward pass gives the loss and accuracy of the current weights,
    so the stopping rule is checked at every step at no extra cost. Mini-batch: a seeded
    permutation per epoch, a full evaluation every ``eval_every`` steps. Runs on
    :func:`training_threads` threads.

    Args:
        data: the instance's facts, or a :class:`TrainTask` (multi-hop queries).
        cfg: shapes and optimiser settings.
        progress: called with ``(step, loss, accuracy)`` at each evaluation (at most about
            100 times a run); it may raise to stop training.
    """
    task = as_task(data)
    with _intra_op_threads(training_threads(task, cfg)):
        return _train(task, cfg, progress)


def _train(task: TrainTask, cfg: TrainConfig, progress: TrainProgress | None) -> TrainResult:
    model = build_model(task, cfg)
    opt = _optimizer(model, cfg)
    tokens, targets = task.tokens, task.targets
    n = task.n_examples
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
            loss, ok = task.loss_and_correct(task.logits(model, tokens), targets)
            loss_val = float(loss.detach())
            acc = float(ok.float().mean())
        elif evaluate_now:
            loss_val, acc = _evaluate(model, task)
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
            loss = task.loss(task.logits(model, tokens[idx]), targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        step += 1
    if history and history[-1][0] != step:
        loss_val, acc = _evaluate(model, task)
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


@functools.cache
def code_fingerprint() -> str:
    """sha256 of the source of :data:`KEY_MODULES`, the package and torch versions.

    Any edit to the code that trains (model, data, seeds, stopping rule) changes the key, so a
    checkpoint is never reused across code that could train differently. Falls back to the
    versions alone where the source is not readable (a zipped install).
    """
    digest = hashlib.sha256(f"{verifier.__version__}|torch {torch.__version__}".encode())
    here = Path(__file__).parent
    for name in KEY_MODULES:
        try:
            digest.update(name.encode() + b"\0" + (here / name).read_bytes())
        except OSError:
            digest.update(name.encode() + b"\0unreadable")
    return digest.hexdigest()


def run_key(instance: dict[str, Any], cfg: TrainConfig, threads: int | None = None) -> str:
    """sha256 (canonical JSON) of everything that determines a trained model.

    That is the instance (kind, N, R, k, cot, chains, attributes, seed: a sweep point's values
    are substituted before this), every training setting (shapes, optimiser, lr, schedule,
    batch, stopping rule, init and batch seed, frozen weights), the intra-op thread count
    (``threads``, :func:`training_threads`; None: torch's setting), :data:`TRAINER_VERSION` and
    :func:`code_fingerprint`. A claim's id, description and expectations are not in it: claims
    that train the same model share one checkpoint.
    """
    payload = {
        "trainer": TRAINER_VERSION,
        "code": code_fingerprint(),
        "threads": torch.get_num_threads() if threads is None else threads,
        "instance": instance,
        "config": asdict(cfg),
    }
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


def load_checkpoint(
    path: Path, data: BijectionFacts | TrainTask, cfg: TrainConfig
) -> TrainResult | None:
    """The checkpointed run at ``path``, or None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(data, cfg)
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
    data: BijectionFacts | TrainTask,
    cfg: TrainConfig,
    key: str,
    cache_dir: str | os.PathLike[str] | None,
    progress: TrainProgress | None = None,
) -> TrainResult:
    """:func:`train`, reusing ``<cache_dir>/training/<key>.pt`` when present (None: no cache).

    A checkpoint that cannot be written (a read-only folder) is logged and skipped: the run's
    result does not depend on the cache.
    """
    task = as_task(data)
    if cache_dir is not None:
        cached = load_checkpoint(checkpoint_path(cache_dir, key), task, cfg)
        if cached is not None:
            return cached
    result = train(task, cfg, progress)
    if cache_dir is not None:
        try:
            save_checkpoint(checkpoint_path(cache_dir, key), result)
        except OSError as exc:
            log.warning("training checkpoint not written to %s: %s", cache_dir, exc)
    return result
