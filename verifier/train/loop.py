"""The training loop: replicates (one per seed) as one stacked model, per-weight optimiser
groups, the learning-rate schedule, the example order and the stopping rule."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from verifier.device import resolve_device
from verifier.errors import VerifierError
from verifier.facts.bijections import BijectionFacts
from verifier.model import causal_mask
from verifier.seeds import Stream, rng
from verifier.train.augment import Augmenter
from verifier.train.config import (
    PARAM_NAMES,
    RELATION_ROWS,
    WEIGHT_NAMES,
    TrainConfig,
    TrainProgress,
    TrainResult,
)
from verifier.train.fused import FusedStep
from verifier.train.tasks import TrainTask, as_task
from verifier.train.weights import initial_weights, to_model

SMALL_TASK_FLOATS = 1 << 18  # activations below which a run trains on one thread
TRAIN_THREADS_VAR = "VERIFIER_TRAIN_THREADS"  # intra-op threads of larger runs (default 1)
TRAIN_ORDER_VAR = "VERIFIER_TRAIN_ORDER"  # 0: examples in canonical order; else a permutation seed
DEVICE_WINDOW = 32  # fused steps between reads of the accuracy on a GPU (see _full_batch_windowed)
Engine = Literal["fused", "reference"]


class StackedForward:
    """The section 2 forward pass on S replicates at once (weights with a leading S axis).

    Computes only what the loss reads: the residual at the target positions (the last, or the
    teacher-forced ones), attending causally to every earlier position. With uniform attention
    the pattern is the constant causal average (what ``softmax`` of ``W_Q = W_K = 0`` gives),
    so the scores are not computed. Matches :meth:`OneLayerTransformer.forward` replicate by
    replicate (tests/verifier/test_forward_passes.py).

    Why not that model's code: this pass takes the trainer's stacked tensors (``W_E`` split from
    its relation rows, a leading replicate axis) and batches the replicates in ``bmm`` and
    ``baddbmm``, whose rounding differs from the model's ``einsum`` and ``matmul`` (float64: most
    entries of a fused bias add differ in the last bit), so sharing a kernel would change the
    trained weights or the measured values; the causal mask is shared
    (:func:`verifier.model.causal_mask`).
    """

    def __init__(
        self, task: TrainTask, cfg: TrainConfig, device: torch.device | None = None
    ) -> None:
        length = task.n_ctx
        self.positions = list(task.positions) if task.positions is not None else [length - 1]
        self.n_heads, self.d_head = cfg.n_heads, cfg.head_dim
        self.uniform = cfg.attention == "uniform"
        self.attention_free = cfg.attention == "none"  # W_V = W_O = 0: the attention adds 0
        self.mask = causal_mask(length, self.positions, device)  # (Q, L): key after query
        allowed = (~self.mask).double()  # cast to the weights' dtype where used
        self.pattern = allowed / allowed.sum(dim=1, keepdim=True)  # uniform causal average

    def __call__(self, w: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        """``(S, n, L)`` tokens -> logits ``(S, n, Q, n_out)`` at the target positions."""
        s, n, length = tokens.shape
        h, dh = self.n_heads, self.d_head
        table = torch.cat([w["W_E"], w[RELATION_ROWS]], dim=1)  # (S, vocab, d)
        vocab, d = table.shape[1:]
        offset = (torch.arange(s, device=tokens.device) * vocab)[
            :, None, None
        ]  # replicate i's rows
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
            z = torch.matmul(self.pattern.to(v.dtype), v)  # (S, n, H, Q, dh)
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
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """The stacked trainer tensors ``(S, ...)``: seeded init, or ``start`` when given."""
    per = (
        [{k: v.detach().to(dtype) for k, v in w.items()} for w in start]
        if start is not None
        else [initial_weights(t, cfg, seed) for t, seed in zip(tasks, seeds, strict=True)]
    )
    weights = {
        name: torch.stack([w[name] for w in per]).to(dtype).contiguous() for name in PARAM_NAMES
    }
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
    loss_sum = torch.zeros(s, dtype=torch.float64, device=tokens.device)
    correct = torch.zeros(s, dtype=torch.int64, device=tokens.device)
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
    discarded. Runs the fused step (:mod:`verifier.train.fused`) on :func:`resolve_device`,
    on :func:`training_threads` threads.

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
        return _train_stacked(tasks, cfg, seeds, progress, start, device=resolve_device())


def _train_stacked(
    tasks: Sequence[TrainTask],
    cfg: TrainConfig,
    seeds: Sequence[int],
    progress: TrainProgress | None,
    start: Sequence[dict[str, torch.Tensor]] | None,
    *,
    engine: Engine = "fused",
    device: torch.device | None = None,
    window: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> list[TrainResult]:
    """The stacked run on ``engine``: ``fused`` (the trainer) or ``reference`` (autograd and
    ``torch.optim`` on the CPU, kept to check the fused step against). ``window``: fused
    full-batch steps between reads of the accuracy (None: 1 on the CPU, where a read costs
    nothing, :data:`DEVICE_WINDOW` on a GPU). ``dtype``: float32 (the trainer); the tests run
    float64 to compare the two engines."""
    if engine == "reference":
        return _train_reference(tasks, cfg, seeds, progress, start, dtype)
    device = device or torch.device("cpu")
    window = window or (1 if device.type == "cpu" else DEVICE_WINDOW)
    return _train_fused(tasks, cfg, seeds, progress, start, device, window, dtype)


def _examples(
    tasks: Sequence[TrainTask], device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked tokens ``(S, n, L)`` and targets ``(S, n, T)``, in :func:`example_order`."""
    tokens = torch.stack([t.tokens for t in tasks])
    targets = torch.stack([t.targets.reshape(t.n_examples, -1) for t in tasks])
    if order := example_order():  # the same sums in another float32 order
        permutation = torch.from_numpy(rng(order, Stream.ORDER).permutation(tasks[0].n_examples))
        tokens, targets = tokens[:, permutation], targets[:, permutation]
    return tokens.to(device), targets.to(device)


def _observe(
    reps: _Replicates,
    step: int,
    losses: list[float],
    accs: list[float],
    cfg: TrainConfig,
    record: bool = True,
) -> list[int]:
    """One evaluation of every running replicate (a history row when ``record``, or when it
    stops); the replicates it stops."""
    stopped = []
    _peak(reps, losses)
    for i in reps.running:
        if accs[i] == 1.0 and reps.steps_to_perfect[i] is None:
            reps.steps_to_perfect[i] = step
        stops = (
            accs[i] >= cfg.stop_accuracy and losses[i] <= cfg.stop_loss and step >= cfg.min_steps
        )
        if record or stops:
            reps.history[i].append((step, losses[i], accs[i]))
        if stops:
            reps.stopped_at[i] = step
            reps.final[i] = (losses[i], accs[i])
            stopped.append(i)
    return stopped


def _peak(reps: _Replicates, losses: list[float]) -> None:
    """The largest loss so far of each running replicate (inf once one was not finite)."""
    for i in reps.running:
        reps.peak[i] = max(reps.peak[i], losses[i] if math.isfinite(losses[i]) else math.inf)


def _snapshot(reps: _Replicates, stopped: list[int], weights: dict[str, torch.Tensor]) -> None:
    for i in stopped:
        reps.snapshots[i] = {k: v[i].detach().clone() for k, v in weights.items()}


def _report(
    progress: TrainProgress | None,
    reps: _Replicates,
    step: int,
    losses: list[float],
    accs: list[float],
) -> None:
    if progress is not None:
        shown = reps.running or list(range(len(reps.seeds)))
        progress(step, float(np.mean([losses[i] for i in shown])), min(accs[i] for i in shown))


def _train_fused(
    tasks: Sequence[TrainTask],
    cfg: TrainConfig,
    seeds: Sequence[int],
    progress: TrainProgress | None,
    start: Sequence[dict[str, torch.Tensor]] | None,
    device: torch.device,
    window: int,
    dtype: torch.dtype,
) -> list[TrainResult]:
    task = tasks[0]
    stacked = _stack(tasks, cfg, seeds, start, dtype)
    weights = {k: v.detach().to(device) for k, v in stacked.items()}
    tokens, targets = _examples(tasks, device)
    per_subject = not cfg.frozen("W_E") and cfg.group("W_E")[4]
    fused = FusedStep(task, cfg, weights, per_subject)
    reps = _Replicates.empty(seeds)
    n = task.n_examples
    aug = None if cfg.augment is None else Augmenter(tasks, cfg.augment, seeds, device, dtype)
    if cfg.batch_size is None or cfg.batch_size >= n:
        run = _full_batch_windowed if window > 1 else _full_batch
        step, losses, accs = run(fused, tokens, targets, cfg, reps, progress, window, aug)
    else:
        step, losses, accs = _mini_batch(fused, tokens, targets, cfg, reps, progress, task, aug)
    return _results(task, cfg, reps, weights, step, losses, accs, aug)


def _share(count: float, n: int) -> float:
    """``count / n`` rounded to float32, as the reference's float32 mean of 0/1 rows."""
    return float(np.float32(count) / np.float32(n))


def _full_batch(
    fused: FusedStep,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    cfg: TrainConfig,
    reps: _Replicates,
    progress: TrainProgress | None,
    window: int,
    aug: Augmenter | None = None,
) -> tuple[int, list[float], list[float]]:
    """Every step: forward and backward, read the loss and the screen, observe, update.

    The exact strict-argmax count runs on the history's cadence (about 200 rows), at each
    progress report (when there is a ``progress``), and whenever the screen and then the
    tighter bound (upper bounds on the rows right) allow the first perfect step or the
    stopping rule: a step where a bound rules both out cannot be either, so
    ``steps_to_perfect`` and the stop are those of an exact check at every step.
    """
    del window
    n, targets_per_replicate = tokens.shape[1], targets.shape[1] * targets.shape[2]
    report_every = max(1, cfg.steps // 100)
    record_every = max(1, math.ceil((cfg.steps + 1) / 200))
    need = _least_count(cfg.stop_accuracy, n)
    step, last = 0, cfg.steps
    accs: list[float] = []
    constant_lr = cfg.warmup == 0 and cfg.schedule == "constant"  # lr_factor is then 1
    read, update, running = fused.forward_backward_read, fused.update, reps.running
    while True:
        summed, bound = read(tokens, targets, need)
        if not math.isfinite(sum(summed)) and any(map(math.isinf, summed)):  # log_softmax
            exact = fused.exact_loss().tolist()  # for those replicates only, as run alone
            summed = [-e if math.isinf(x) else x for x, e in zip(summed, exact, strict=True)]
        losses = [-x / targets_per_replicate for x in summed]
        record = step % record_every == 0 or step == last
        report = progress is not None and (step % report_every == 0 or step == last)
        if (
            record
            or report
            or (
                _may_count(reps, step, losses, bound, n, need, cfg)
                and _may_count(reps, step, losses, fused.tight_bounds(n, need), n, need, cfg)
            )
        ):
            accs = [_share(c, n) for c in fused.exact_correct().tolist()]
            _snapshot(reps, _observe(reps, step, losses, accs, cfg, record), fused.w)
            running = reps.running
            if report:
                _report(progress, reps, step, losses, accs)
        else:
            _peak(reps, losses)
        if not running or step == last:
            return step, losses, accs
        if aug is not None:
            aug.fused_gradient(fused, step)
        update(1.0 if constant_lr else lr_factor(step, cfg))
        step += 1


def _least_count(share: float, n: int) -> int:
    """The fewest rows right of ``n`` whose float32 share (:func:`_share`) is >= ``share``."""
    count = max(0, math.floor(share * n) - 2)
    while count < n and _share(count, n) < share:
        count += 1
    return count


def _may_count(
    reps: _Replicates,
    step: int,
    losses: list[float],
    bound: list[int],
    n: int,
    need: int,
    cfg: TrainConfig,
) -> bool:
    """Whether a running replicate's bound on rows right allows its first perfect step or its
    stop (``need``: :func:`_least_count` of ``stop_accuracy``; the float32 share is monotone
    in the count, so a bound below rules the count out)."""
    if max(bound) < need and max(bound) < n:
        return False
    for i in reps.running:
        if bound[i] >= n and reps.steps_to_perfect[i] is None:
            return True
        if bound[i] >= need and losses[i] <= cfg.stop_loss and step >= cfg.min_steps:
            return True
    return False


def _full_batch_windowed(
    fused: FusedStep,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    cfg: TrainConfig,
    reps: _Replicates,
    progress: TrainProgress | None,
    window: int,
    aug: Augmenter | None = None,
) -> tuple[int, list[float], list[float]]:
    """``window`` steps between reads, with a back-off to the exact step.

    Each step's loss and exact strict-argmax count stay on the device; after ``window`` steps
    they are read in order, so ``steps_to_perfect`` and the stop are those of
    :func:`_full_batch`. When a replicate meets the stopping rule at step t inside the
    window, the state saved at the window's start is restored and the steps up to t are
    replayed (the same kernels on the same inputs), where the replicate is snapshotted;
    training goes on from t.
    """
    n, targets_per_replicate = tokens.shape[1], targets.shape[1] * targets.shape[2]
    report_every = max(1, cfg.steps // 100)
    record_every = max(1, math.ceil((cfg.steps + 1) / 200))
    step, seen = 0, -1  # seen: the last step observed
    dtype = fused.dtype
    losses: list[float] = []
    accs: list[float] = []
    while True:
        base, saved = step, fused.state()
        rows = []
        for _ in range(window):
            fused.forward_backward(tokens, targets)
            rows.append(torch.stack([fused.exact_loss(), fused.exact_correct().to(dtype)]))
            if step == cfg.steps:
                break
            if aug is not None:
                aug.fused_gradient(fused, step)
            fused.update(lr_factor(step, cfg))
            step += 1
        read = torch.stack(rows).tolist()  # (steps, 2, S)
        for j, (summed, counts) in enumerate(read):
            t = base + j
            if t <= seen:
                continue
            seen = t
            losses = [x / targets_per_replicate for x in summed]
            accs = [_share(c, n) for c in counts]
            record = t % record_every == 0 or t == cfg.steps
            stopped = _observe(reps, t, losses, accs, cfg, record)
            if t % report_every == 0 or t == cfg.steps:
                _report(progress, reps, t, losses, accs)
            if stopped:
                if t < step:  # the weights moved on: replay from the window's start to t
                    fused.restore(saved, base)
                    for u in range(base, t):
                        fused.forward_backward(tokens, targets)
                        if aug is not None:
                            aug.fused_gradient(fused, u)
                        fused.update(lr_factor(u, cfg))
                    step = t
                _snapshot(reps, stopped, fused.w)
                break
        if not reps.running or seen == cfg.steps:
            return seen, losses, accs


def _mini_batch(
    fused: FusedStep,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    cfg: TrainConfig,
    reps: _Replicates,
    progress: TrainProgress | None,
    task: TrainTask,
    aug: Augmenter | None = None,
) -> tuple[int, list[float], list[float]]:
    """A seeded permutation per epoch and replicate; a full evaluation every ``eval_every``."""
    n, n_rep = task.n_examples, len(reps.seeds)
    eval_every = max(1, cfg.eval_every)
    report_every = max(eval_every, cfg.steps // 100 // eval_every * eval_every)
    forward = StackedForward(task, cfg, tokens.device)
    orders = [np.arange(n) for _ in range(n_rep)]
    cursor, epoch, step = n, 0, 0
    replica = torch.arange(n_rep, device=tokens.device)[:, None]
    losses: list[float] = []
    accs: list[float] = []
    while True:
        if step % eval_every == 0 or step == cfg.steps:
            losses, accs = _evaluate_all(forward, fused.w, tokens, targets)
            _snapshot(reps, _observe(reps, step, losses, accs, cfg), fused.w)
            if step % report_every == 0 or step == cfg.steps:
                _report(progress, reps, step, losses, accs)
            if not reps.running:
                return step, losses, accs
        if step == cfg.steps:
            return step, losses, accs
        if cursor >= n:
            orders = [rng(seed, Stream.BATCH, epoch).permutation(n) for seed in reps.seeds]
            cursor, epoch = 0, epoch + 1
        idx = torch.from_numpy(
            np.stack([o[cursor : cursor + int(cfg.batch_size or n)] for o in orders])
        ).to(tokens.device)
        cursor += idx.shape[1]
        fused.forward_backward(tokens[replica, idx], targets[replica, idx])
        if aug is not None:
            aug.fused_gradient(fused, step)
        fused.update(lr_factor(step, cfg))
        step += 1


def _results(
    task: TrainTask,
    cfg: TrainConfig,
    reps: _Replicates,
    weights: dict[str, torch.Tensor],
    step: int,
    losses: list[float],
    accs: list[float],
    aug: Augmenter | None = None,
) -> list[TrainResult]:
    """One :class:`TrainResult` per replicate: its snapshot (or last weights), thinned history
    (and the augmentation fit's R^2 at each refit up to its last step)."""
    results = []
    for i, seed in enumerate(reps.seeds):
        snap = reps.snapshots[i]
        if snap is None:  # ran to the step budget
            snap = {k: v[i].detach().clone() for k, v in weights.items()}
            final, steps, stopped = (losses[i], accs[i]), step, False
        else:
            final, steps, stopped = reps.final[i], int(reps.stopped_at[i] or 0), True
        history = reps.history[i]
        stride = max(1, math.ceil(len(history) / 200))
        thinned = history[::stride] + ([history[-1]] if (len(history) - 1) % stride else [])
        model = to_model(task, cfg, {k: v.detach().cpu().float() for k, v in snap.items()})
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
                fit_history=[] if aug is None else aug.history(i, steps - 1),
            )
        )
    return results


def reference_step(
    optimizers: list[torch.optim.Optimizer],
    weights: dict[str, torch.Tensor],
    total: torch.Tensor,
    factor: float,
    subject_scale: int | None,
) -> None:
    """One autograd step: the gradient of ``total``, ``W_E``'s times ``subject_scale`` when
    per-subject, then every optimiser at ``base_lr * factor``. Leaves the gradients in
    ``.grad``."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * factor
        opt.zero_grad(set_to_none=True)
    total.backward()  # type: ignore[no-untyped-call]
    if subject_scale is not None and weights["W_E"].grad is not None:
        weights["W_E"].grad.mul_(subject_scale)  # each subject row: its own mean loss
    for opt in optimizers:
        opt.step()


def _train_reference(
    tasks: Sequence[TrainTask],
    cfg: TrainConfig,
    seeds: Sequence[int],
    progress: TrainProgress | None,
    start: Sequence[dict[str, torch.Tensor]] | None,
    dtype: torch.dtype = torch.float32,
) -> list[TrainResult]:
    """The reference: autograd through :class:`StackedForward` and ``torch.optim``, CPU."""
    task = tasks[0]
    weights = _stack(tasks, cfg, seeds, start, dtype)
    optimizers = _optimizers(weights, cfg)
    forward = StackedForward(task, cfg)
    tokens, targets = _examples(tasks)
    per_subject = not cfg.frozen("W_E") and cfg.group("W_E")[4]
    n_rep, n = len(tasks), task.n_examples
    aug = None if cfg.augment is None else Augmenter(tasks, cfg.augment, seeds, None, dtype)
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
            _snapshot(reps, _observe(reps, step, losses, accs, cfg), weights)
            if step % report_every == 0 or step == cfg.steps:
                _report(progress, reps, step, losses, accs)
            if not reps.running:
                break
        if step == cfg.steps:
            break
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
        if aug is not None and (extra := aug.reference_loss(forward, weights, step)) is not None:
            total = total + extra
        scale = task.n_entities if per_subject else None
        reference_step(optimizers, weights, total, lr_factor(step, cfg), scale)
        step += 1
    return _results(task, cfg, reps, weights, step, losses, accs, aug)


def train(
    data: BijectionFacts | TrainTask, cfg: TrainConfig, progress: TrainProgress | None = None
) -> TrainResult:
    """Train a fresh model on every example of ``data`` (single-hop facts, or a task).

    Full batch: each step's forward pass gives the loss of the current weights and a bound on
    its accuracy, so the stopping rule is checked at every step (the exact count runs when the
    bound allows a stop or the first perfect step). Mini-batch: a seeded
    permutation per epoch, a full evaluation every ``eval_every`` steps. The one-replicate case
    of :func:`train_replicates`, seeded by ``cfg.seed``.

    Args:
        data: the instance's facts, or a :class:`TrainTask` (multi-hop queries).
        cfg: shapes and optimiser settings.
        progress: called with ``(step, loss, accuracy)`` at each evaluation (at most about
            100 times a run); it may raise to stop training.
    """
    return train_replicates([as_task(data)], cfg, [cfg.seed], progress)[0]
