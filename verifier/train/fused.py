"""The fused training step: forward, hand-derived backward and optimiser update of the stacked
replicates, without autograd or ``torch.optim`` (docs/theory.md section 2's model).

Per step the work is a fixed list of batched matmuls and element-wise kernels:

- forward as :class:`~verifier.train.loop.StackedForward` (the same products, so the logits
  agree with it to float32 rounding), keeping what the backward reads;
- the loss ``sum_S mean_rows CE`` and its logit gradient ``G = (softmax(z) - onehot) / rows``
  per replicate from one softmax (on the CPU ``2^z'`` over its row sum, with ``z'`` the logits
  of the output-centred ``W_U`` in base 2: no pass for the row maximum), and a bound on the
  rows right (:meth:`FusedStep.exact_correct` counts them exactly on the logits ``h2 W_U``:
  the target logit above every other logit);
- the backward, written out: ``dW_U = h2^T G``, ``dh2 = G W_U^T`` (for a frozen ``W_U`` in
  full batch ``(P W_U^T - W_U^T[t]) / rows``, the one-hot's rows gathered once),
  ``dW_out = relu(pre)^T dh2``,
  ``dpre = (dh2 W_out^T) * [pre > 0]``, ``dW_in = h1^T dpre``, ``dh1 = dh2 + dpre W_in^T``, then
  through ``W_O``, the attention (``dS = A * (dA - rowsum(dA * A))`` for a learned pattern, the
  constant pattern's transpose for a uniform one) and ``W_V, W_Q, W_K`` to ``h0``, and by
  ``index_add`` to the rows of ``W_E`` and ``W_pos``. Frozen weights get no gradient and a part of
  the graph that reaches only frozen weights is not differentiated;
- the update, on one buffer per optimiser setting (optimizer, lr, momentum, decay; one row a
  replicate, every trained tensor with that setting a view of it), by torch's fused kernels
  (``_fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_``: the formulas of ``torch.optim``'s
  Adam with L2 decay, AdamW with decoupled decay, SGD with momentum and L2 decay; betas 0.9,
  0.999, eps 1e-8), so a step's update is one kernel call per setting.

When the embeddings (and the attention, or all of it frozen) take no gradient, ``h0`` (and
``h1``) are the same every full-batch step and are computed once; ``W_in`` and ``b_in`` then
form one block, so the first layer and its two gradients are one product each with ``[h1, 1]``.
Replicates are independent to the bit: a stacked run gives each replicate the floats of its
serial run. The batched products compute each replicate's matrices alone; the optimiser
buffers are ``(S, B)``, one row a replicate, updated as S tensors; and the tensors that a
transcendental kernel (``exp2``, ``log``) reads are :func:`_blocked`, so its vector chunks
and scalar tail fall on each replicate's block as on a serial run's tensor (an element in a
contiguous stack's tail is rounded by a different routine than in a vector).

At small shapes a step's time is mostly per-operation dispatch, so the step is written for
few operations (``bench/train_bench.py --must-show``). Every tensor lives on the
weights' device and dtype: the same code runs float64 on the CPU in the tests, and float32 on
the CPU or CUDA in training.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from verifier.train.config import ATTENTION_WEIGHTS, PARAM_NAMES, RELATION_ROWS, TrainConfig
from verifier.train.tasks import TrainTask

BETAS = (0.9, 0.999)  # torch.optim.Adam / AdamW defaults
EPS = 1e-8
EMBEDDINGS = ("W_E", RELATION_ROWS, "W_pos")
LOG2E = 1.0 / math.log(2.0)  # e^z = 2^(z log2 e)
_THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.default  # dx * [x > 0]
STABLE_STEPS = 64  # steps with the row maxima subtracted after an overflow, before a retry
SCREEN_TOPK = 8  # most smallest p_t read for the screen's bound (more: the count itself)
BLOCK = 64  # floats: each replicate's block of a stacked buffer starts at a multiple of this


@dataclass
class _Kind:
    """The trained tensors sharing one optimiser setting, as ``(S, B)`` buffers, one row a
    replicate (each tensor a view).

    ``state``: Adam's first and second moments, or SGD's momentum buffer (none at momentum 0).
    """

    kind: str
    lr: float
    momentum: float
    decay: float
    param: torch.Tensor
    grad: torch.Tensor
    state: list[torch.Tensor] = field(default_factory=list)
    step: int = 0
    count: torch.Tensor = field(default_factory=lambda: torch.zeros(()))  # step, for the kernel

    rows: list[list[torch.Tensor]] = field(default_factory=list)  # param, grad, *state

    def split(self) -> None:
        """:attr:`rows`: each buffer ``(S, B)`` as its S replicate rows (views), for the
        optimiser kernels, which take one tensor a replicate and so update each row as a
        serial run's buffer."""
        self.rows = [list(t.unbind(0)) for t in (self.param, self.grad, *self.state)]


class FusedStep:
    """Forward, backward and update of stacked weights ``(S, ...)`` for one task's geometry.

    On construction the trained tensors of ``weights`` are replaced (in the dict) by views of
    per-kind buffers holding the same values, so the caller's dict always shows the
    current weights. Call :meth:`forward_backward`, read its loss and count, then :meth:`update`.
    """

    def __init__(
        self,
        task: TrainTask,
        cfg: TrainConfig,
        weights: dict[str, torch.Tensor],
        per_subject: bool = False,
    ) -> None:
        self.w = weights
        self.cfg = cfg
        self.trained = [name for name in PARAM_NAMES if not cfg.frozen(name)]
        self.n_entities = task.n_entities
        self.per_subject = per_subject and "W_E" in self.trained
        length = task.n_ctx
        ref = weights["W_U"]
        self.device, self.dtype = ref.device, ref.dtype
        self.on_cpu = self.device.type == "cpu"
        self._n_out = ref.shape[2]
        self.positions = list(task.positions) if task.positions is not None else [length - 1]
        self.pos_index = torch.tensor(self.positions, device=self.device)
        self.n_heads, self.d_head = cfg.n_heads, cfg.head_dim
        self.uniform = cfg.attention == "uniform"
        self.attention_free = cfg.attention == "none"
        keys = torch.arange(length, device=self.device)
        self.mask = keys[None, :] > self.pos_index[:, None]  # (Q, L): key after query
        allowed = (~self.mask).double()
        self.pattern = (allowed / allowed.sum(dim=1, keepdim=True)).to(self.dtype)  # (Q, L)
        self.embed_trained = any(n in self.trained for n in EMBEDDINGS)
        attention_trained = any(n in self.trained for n in ATTENTION_WEIGHTS)
        self.front_trained = self.embed_trained or (not self.attention_free and attention_trained)
        self.kinds: list[_Kind] = []
        self.grads: dict[str, torch.Tensor] = {}
        self._build_kinds()
        self._cache_key: torch.Tensor | None = None
        self._h0: torch.Tensor | None = None
        self._front: tuple[torch.Tensor, ...] | None = None
        self._saved: dict[str, torch.Tensor] = {}
        self._h1_out: torch.Tensor | None = None  # h1 + b_out when both are fixed
        self._neg: torch.Tensor | None = None
        self._zero = torch.zeros((1, 1, 1), dtype=self.dtype, device=self.device)
        self._h1_t: torch.Tensor | None = None  # h1^T when h1 is fixed
        self._h2: torch.Tensor | None = None
        self._logits: torch.Tensor | None = None
        self._target = torch.empty(0)
        self._target_key: torch.Tensor | None = None
        self._target_rows = torch.empty(0)
        self._rows_of_u: torch.Tensor | None = None
        self._fixed: Callable[[], None] | None = None  # _fixed_step's closure ...
        self._fixed_for: tuple[object, object] = (None, None)  # ... for these tokens, targets
        self._h1_one = self._h1_one_t = torch.empty(0)  # [h1, 1] and its transpose
        w_u = weights["W_U"]  # (S, d, n_out); centred over the outputs, in base 2 (_softmax)
        self._w_u2 = None if "W_U" in self.grads else (w_u - w_u.mean(dim=2, keepdim=True)) * LOG2E
        self._rows_per_replicate = 0
        self._threshold = (1.0 - 1e-3 - 1e-6 * self._n_out) / self._n_out  # the screen on p_t
        self._picked = self._log_sum = self._probs = torch.empty(0)
        self._lowest: tuple[torch.Tensor, torch.Tensor] | None = None  # the screen's topk
        self._stable = [0] * ref.shape[0]  # per replicate: steps left shifted (_softmax)
        self._host_log_sum: list[float] = []
        w = self.w  # views made once: they follow the in-place updates of the buffers
        self._views = {
            "b_in": w["b_in"][:, None],
            "b_out": w["b_out"][:, None],
            "W_U_T": w["W_U"].transpose(1, 2),
            "W_out_T": w["W_out"].transpose(1, 2),
            "W_in_T": w["W_in"].transpose(1, 2),
        }

    def _build_kinds(self) -> None:
        """One buffer per distinct (optimizer, lr, momentum, weight_decay), ``(S, B)``: each
        replicate's trained tensors of that setting side by side in its row, which the
        optimiser kernels update as a serial run's one buffer (the same vector chunks and
        scalar tail: a replicate's floats do not depend on the replicates stacked with it).

        When ``W_in`` and ``b_in`` share one and ``h1`` is fixed, each replicate's
        ``[W_in; b_in]`` is one ``(d + 1, m)`` block of it (:attr:`_in_block`): the MLP's
        first layer is then ``[h1, 1] [W_in; b_in]`` and both gradients ``[h1, 1]^T dpre``,
        one product each.
        """
        by_setting: dict[tuple[str, float, float, float], list[str]] = {}
        for name in self.trained:
            group = self.cfg.group(name)
            key = (str(group[0]), float(group[1]), float(group[2]), float(group[3]))
            by_setting.setdefault(key, []).append(name)
        self._in_block: torch.Tensor | None = None  # (S, d + 1, m): [W_in; b_in]
        self._in_grad: torch.Tensor | None = None
        for (kind, lr, momentum, decay), names in by_setting.items():
            joint = not self.front_trained and "W_in" in names and "b_in" in names
            names = [n for n in names if not (joint and n == "b_in")]  # b_in: in W_in's block
            parts = [
                torch.cat([self.w["W_in"], self.w["b_in"][:, None]], dim=1)
                if joint and name == "W_in"
                else self.w[name]
                for name in names
            ]
            per_replicate = [t.detach().reshape(t.shape[0], -1) for t in parts]
            param = torch.cat(per_replicate, dim=1).to(self.dtype)
            entry = _Kind(kind, lr, momentum, decay, param, torch.zeros_like(param))
            entry.count = torch.zeros((), dtype=self.dtype, device=self.device)
            if kind in ("adam", "adamw"):
                entry.state = [torch.zeros_like(param), torch.zeros_like(param)]
            elif momentum != 0.0:
                entry.state = [torch.zeros_like(param)]
            entry.split()
            offset = 0
            for name, part in zip(names, parts, strict=True):
                shape, size = part.shape, part[0].numel()
                value = param[:, offset : offset + size].view(shape)
                grad = entry.grad[:, offset : offset + size].view(shape)
                offset += size
                if joint and name == "W_in":
                    d = shape[1] - 1
                    self.w["W_in"], self.w["b_in"] = value[:, :d], value[:, d]
                    self.grads["W_in"], self.grads["b_in"] = grad[:, :d], grad[:, d]
                    self._in_block, self._in_grad = value, grad
                else:
                    self.w[name], self.grads[name] = value, grad
            self.kinds.append(entry)

    # --- state (for the back-off replay) ---------------------------------------------------

    def state(self) -> list[torch.Tensor]:
        """Clones of every buffer that a step changes (parameters and optimiser state)."""
        return [t.clone() for k in self.kinds for t in (k.param, *k.state)]

    def restore(self, saved: list[torch.Tensor], steps: int) -> None:
        """Put back a :meth:`state` taken after ``steps`` optimiser steps."""
        it = iter(saved)
        for k in self.kinds:
            for t in (k.param, *k.state):
                t.copy_(next(it))
            k.step = steps
            k.count.fill_(steps)

    # --- forward and backward ---------------------------------------------------------------

    def forward_backward(
        self, tokens: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and gradient of ``(S, n, L)`` tokens against ``(S, n, T)`` targets.

        Returns ``(S,)`` each: ``sum log p_t`` over the ``n T`` targets (minus the summed
        cross-entropy; ``-inf`` where a ``p_t`` underflowed to 0, which :meth:`exact_loss`
        then recomputes), and an upper bound on the rows whose every target
        is the strict argmax: rows whose targets all have ``p_t >= (1 - margin) / n_out`` (a
        strict argmax has ``p_t > 1/n_out``; the margin covers the rounding of the softmax's
        sum). Leaves the gradients in :attr:`grads`; :meth:`exact_loss` and
        :meth:`exact_correct` read this step's logits until :meth:`update`.
        """
        n = self._step(tokens, targets)
        right = self._passes(n) >= self._threshold
        return self._log_sum, right.sum(dim=(1, 2))

    def forward_backward_read(
        self, tokens: torch.Tensor, targets: torch.Tensor, need: int
    ) -> tuple[list[float], list[int]]:
        """:meth:`forward_backward`, read to the host: the sums of ``log p_t``, and an upper
        bound on the rows right that is exact in what it decides against ``n`` (all right)
        and ``need`` (the stopping rule's count): ``n`` when every row passes the screen,
        else ``n - 1`` when at least ``need`` do, else ``need - 1``. The screen's count is
        then the ``n - need + 1`` smallest ``p_t``, one ``topk`` (or, when that is many, the
        count itself, as :meth:`forward_backward`).
        """
        n = self._step(tokens, targets)
        self._lowest = None
        log_sums = self._host_log_sum if self._host_log_sum else self._log_sum.tolist()
        passes, k = self._passes(n), n - need + 1
        if k > min(SCREEN_TOPK, n):
            return log_sums, (passes >= self._threshold).sum(dim=(1, 2)).tolist()
        smallest = passes.topk(k, 1, False)
        if passes is self._picked:  # for tight_bounds: the rows, and their p_t
            self._lowest = smallest
        low = smallest.values.tolist()  # (S, k, 1), ascending
        cut = self._threshold
        bounds = [n if r[0][0] >= cut else (n - 1 if r[-1][0] >= cut else need - 1) for r in low]
        return log_sums, bounds

    def tight_bounds(self, n: int, need: int | None = None) -> list[int]:
        """An upper bound on the rows right of the last :meth:`forward_backward`, per replicate,
        tighter than the screen (for a run stuck below perfect, whose every ``p_t`` may pass
        ``1 / n_out``): rows whose every ``p_t`` is at least ``1 - 1e-3`` of its row's largest
        ``p_j`` (of ``P``, or of ``P - onehot`` where the gradient subtracted it in place: the
        largest other). A strict argmax of the logits has ``p_t >= p_j`` up to the rounding
        of the two products; one pass over ``P``, cheaper than the exact count.

        With ``need`` (the count a caller would act on), the ``n - need + 1`` rows of smallest
        ``p_t`` that :meth:`forward_backward_read` found are tested first (a gather of
        ``n - need + 1`` rows of ``P``): a row failing the test is wrong, so when all of them
        fail in every replicate, ``need - 1`` bounds each, and the pass over ``P`` is skipped.
        """
        probs, picked, lowest = self._probs, self._picked, self._lowest
        if need is not None and lowest is not None and lowest[0].shape[1] == n - need + 1:
            index, p_t = lowest[1], lowest[0]  # (S, k, 1) each
            rows = probs.gather(1, index.expand(-1, -1, probs.shape[2]))  # (S, k, n_out)
            if bool((p_t < rows.amax(dim=2, keepdim=True).mul_(1.0 - 1e-3)).all()):
                return [need - 1] * probs.shape[0]
        ok = picked >= probs.amax(dim=2, keepdim=True).mul_(1.0 - 1e-3)  # (S, rows, 1)
        if ok.shape[1] != n:
            ok = ok.reshape(ok.shape[0], n, -1).all(dim=2, keepdim=True)
        return ok.sum(dim=(1, 2)).tolist()

    def _passes(self, n: int) -> torch.Tensor:
        """``(S, n, 1)`` the screened value of each row: its ``p_t``, the least over its
        targets when a row has several."""
        picked = self._picked
        if picked.shape[1] == n:
            return picked
        return picked.reshape(picked.shape[0], n, -1).amin(dim=2, keepdim=True)

    def _step(self, tokens: torch.Tensor, targets: torch.Tensor) -> int:
        """Forward, loss and gradient (:meth:`forward_backward`); ``n``, the rows per
        replicate."""
        key = self._fixed_for
        if key[0] is tokens and key[1] is targets and self._fixed is not None:
            self._fixed()
            return self._rows_per_replicate
        s, n, _ = tokens.shape
        h1 = self._front_forward(tokens)  # (S, n Q, d)
        w, v, grads = self.w, self._views, self.grads
        if self._in_block is not None:  # [h1, 1] [W_in; b_in]
            act = torch.bmm(self._h1_one, self._in_block).relu_()  # (S, rows, m); [pre > 0]
        else:
            act = torch.baddbmm(v["b_in"], h1, w["W_in"]).relu_()
        if self._h1_out is not None and self._cache_key is tokens:  # h1 + b_out, both fixed
            h2 = torch.baddbmm(self._h1_out, act, w["W_out"])
        else:
            h2 = h1 + torch.baddbmm(v["b_out"], act, w["W_out"])
        target, rows_of_u = self._targets(targets, s, h2.shape[1])
        rows = target.shape[1]
        if rows_of_u is not None and (key[0] is not tokens or key[1] is not targets):
            self._fixed_for, self._fixed = (tokens, targets), self._fixed_step(target, rows_of_u)
        self._h2, self._target, self._logits, self._rows_per_replicate = h2, target, None, n
        probs = self._softmax(h2, target)  # one exp pass: loss and gradient
        picked, self._probs = self._picked, probs
        scale = 1.0 / rows  # dL/dlogits = (P - onehot) / rows
        if rows_of_u is not None:  # (P W_U^T - W_U^T[t]) / rows: the one-hot by a cached gather
            dh2 = torch.baddbmm(rows_of_u, probs, v["W_U_T"], alpha=scale)  # (S, rows, d)
        else:
            probs.scatter_add_(2, target, self._minus(picked))  # P - onehot
            if "W_U" in grads:
                torch.baddbmm(
                    self._zero, h2.transpose(1, 2), probs, beta=0.0, alpha=scale,
                    out=grads["W_U"],
                )  # fmt: skip
            dh2 = torch.baddbmm(self._zero, probs, v["W_U_T"], beta=0.0, alpha=scale)
        if "b_out" in grads:
            torch.sum(dh2, dim=1, out=grads["b_out"])
        if "W_out" in grads:
            torch.bmm(act.transpose(1, 2), dh2, out=grads["W_out"])
        if not (self.front_trained or "W_in" in grads or "b_in" in grads):
            return n
        dpre = _THRESHOLD_BACKWARD(torch.bmm(dh2, v["W_out_T"]), act, 0)
        if self._in_grad is not None:
            torch.bmm(self._h1_one_t, dpre, out=self._in_grad)
        else:
            if "W_in" in grads:
                h1_t = self._h1_t if self._h1_t is not None else h1.transpose(1, 2)
                torch.bmm(h1_t, dpre, out=grads["W_in"])
            if "b_in" in grads:
                torch.sum(dpre, dim=1, out=grads["b_in"])
        if self.front_trained:
            dh1 = torch.baddbmm(dh2, dpre, v["W_in_T"])
            self._front_backward(tokens, dh1)
        if self.per_subject:
            grads["W_E"].mul_(self.n_entities)  # each subject row: its own mean loss
        return n

    def _softmax(self, h2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``P = softmax(h2 W_U)`` ``(S, rows, n_out)``; keeps ``p_t`` ``(S, rows, 1)`` and
        ``sum log p_t`` ``(S,)`` (``-inf`` where a ``p_t`` underflowed to 0).

        On the CPU, ``P = 2^z / sum_j 2^z_j`` with ``z = h2 (W_U - mean_j u_j) log2 e``: the
        same softmax (it is invariant to a shift of a row), with no pass for the row maximum
        (and ``exp2`` is the cheaper kernel). Every row of ``z`` sums to 0, so its largest
        entry is >= 0 and its sum of powers >= 1: no sum underflows, and a power that does is
        below ``2^-126`` of its row. An overflow makes a row's sum infinite (and some ``p_t``
        0 or NaN: the sums of logs, read here, are then not finite); then that replicate's
        rows have their maxima subtracted before the powers (:func:`_shifted_powers`), for
        this step and the next :data:`STABLE_STEPS` (large logits stay large), and it retries
        without. The shift is per replicate: the others' floats are those of their serial runs
        (the module docstring). A ``p_t`` that is 0 in a finite row is the softmax's own
        underflow, as in ``torch.softmax``. On a GPU, ``torch.softmax`` of the logits (there
        the read of an overflow would wait for the device).
        """
        if not self.on_cpu:
            probs = torch.softmax(self.logits(), dim=-1)
            self._picked, self._log_sum = _picked_log_sum(probs, target)
            self._host_log_sum = []
            return probs
        if self._w_u2 is not None:
            w_u2 = self._w_u2
        else:
            w_u = self.w["W_U"]
            w_u2 = (w_u - w_u.mean(dim=2, keepdim=True)).mul_(LOG2E)
        s, rows, n_out = h2.shape[0], h2.shape[1], w_u2.shape[2]
        new = h2.new_empty
        probs, picked = _blocked((s, rows, n_out), h2), _blocked((s, rows, 1), h2)
        log_sum = new(s)
        host = self._powers(
            h2, w_u2, target, probs, new((s, rows, 1)), picked, new((s, rows, 1)), log_sum
        )
        self._picked, self._log_sum, self._host_log_sum = picked, log_sum, host
        return probs

    def _powers(
        self,
        h2: torch.Tensor,
        w_u2: torch.Tensor,
        target: torch.Tensor,
        probs: torch.Tensor,
        sums: torch.Tensor,
        picked: torch.Tensor,
        logs: torch.Tensor,
        log_sum: torch.Tensor,
    ) -> list[float]:
        """The CPU softmax of :meth:`_softmax` into ``probs`` ``(S, rows, n_out)`` (and its
        row sums into ``sums``), ``p_t`` into ``picked`` and ``sum log p_t`` into ``log_sum``
        (``logs``: the logs of ``p_t``), written in place, with the overflow fallback and its
        per-replicate countdown; returns ``sum log p_t`` read to the host. ``probs`` and
        ``picked`` are :func:`_blocked`. Shared by :meth:`_softmax` and the bound step."""
        stable = self._stable
        slow = [i for i, left in enumerate(stable) if left]  # shifted, as they were
        for i in slow:
            stable[i] -= 1
        torch.bmm(h2, w_u2, out=probs)
        for i in slow:
            _shift_rows(probs[i])
        probs.exp2_()
        torch.sum(probs, 2, True, out=sums)
        probs.div_(sums)
        host = _read_log_sum(probs, target, picked, logs, log_sum)
        over = [i for i in _overflowed(host, sums) if i not in slow]
        if over:  # these replicates shifted from now on
            for i in over:
                stable[i] = STABLE_STEPS
                _shifted_powers(h2, w_u2, probs, i)
            host = _read_log_sum(probs, target, picked, logs, log_sum)
        return host

    def logits(self) -> torch.Tensor:
        """``(S, rows, n_out)`` logits ``h2 W_U`` of the last :meth:`forward_backward`, the
        products of :class:`~verifier.train.loop.StackedForward` (computed on first read)."""
        if self._logits is None:
            if self._h2 is None:
                raise RuntimeError("FusedStep: read the logits before update")
            self._logits = torch.bmm(self._h2, self.w["W_U"])
        return self._logits

    def exact_loss(self) -> torch.Tensor:
        """``(S,)`` summed cross-entropy of the last :meth:`forward_backward` by
        ``log_softmax`` (finite where a probability underflowed)."""
        logp = torch.log_softmax(self.logits(), dim=-1)
        return -logp.gather(2, self._target).sum(dim=(1, 2))

    def exact_correct(self) -> torch.Tensor:
        """``(S,)`` rows of the last :meth:`forward_backward` whose every target is the strict
        argmax of the logits (above every other logit: a tie or a NaN is wrong), as
        :func:`~verifier.train.loop._loss_and_correct` counts them."""
        logits, target = self.logits(), self._target
        s = logits.shape[0]
        top = logits.gather(2, target)
        self._logits = None  # the logits' targets are overwritten: a later read recomputes them
        runner_up = logits.scatter_(2, target, -math.inf).amax(dim=2, keepdim=True)
        ok = top > runner_up  # (S, rows, 1)
        n = self._rows_per_replicate
        if ok.shape[1] != n:
            ok = ok.reshape(s, n, -1).all(dim=2)
        return ok.reshape(s, -1).sum(dim=1)

    def _minus(self, like: torch.Tensor) -> torch.Tensor:
        """A cached tensor of ``-1`` shaped like ``like``."""
        if self._neg is None or self._neg.shape != like.shape:
            self._neg = torch.full_like(like, -1.0)
        return self._neg

    def _targets(
        self, targets: torch.Tensor, s: int, rows: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``targets`` as ``(S, rows, 1)``, and ``-W_U^T[t] / rows`` ``(S, rows, d)`` for a frozen
        ``W_U`` once the same ``targets`` come a second step in a row (full batch; None
        before: a mini-batch's targets change every step, and a scatter of the one-hot then
        costs less than a new gather)."""
        if self._target_key is not targets:
            self._target_key, self._rows_of_u = targets, None
            self._target_rows = targets.reshape(s, rows, 1)
            return self._target_rows, None
        target = self._target_rows
        if self._rows_of_u is None and "W_U" not in self.grads:
            w_u_t = self._views["W_U_T"]
            picked = torch.gather(w_u_t, 1, target.expand(-1, -1, w_u_t.shape[2]))
            self._rows_of_u = picked.mul_(-1.0 / rows)
        return target, self._rows_of_u

    def _fixed_step(
        self, target: torch.Tensor, rows_of_u: torch.Tensor
    ) -> Callable[[], None] | None:
        """:meth:`_step`'s own operations, bound once, for a full batch on the CPU where only
        ``W_in, b_in`` (one block) and ``W_out`` train: at small shapes the step's Python
        costs as much as some of its kernels. A replicate whose softmax overflowed has its
        rows' maxima subtracted here as :meth:`_softmax` does it (a failing capacity probe
        overflows on most steps). Its intermediates live in buffers reused every step, so
        what :meth:`forward_backward` returns and keeps is valid until the next step (as the
        logits are until :meth:`update`)."""
        grads = self.grads
        if not (
            self.on_cpu
            and self._in_block is not None
            and self._in_grad is not None
            and self._h1_out is not None
            and self._w_u2 is not None
            and set(grads) == {"W_in", "b_in", "W_out"}
        ):
            return None
        h1_one, block, h1_out, w_out = self._h1_one, self._in_block, self._h1_out, self.w["W_out"]
        w_u2, w_u_t, w_out_t = self._w_u2, self._views["W_U_T"], self._views["W_out_T"]
        h1_one_t, in_grad, out_grad = self._h1_one_t, self._in_grad, grads["W_out"]
        scale = 1.0 / target.shape[1]
        # every intermediate in a buffer of its own, written in place each step (out=): the
        # same kernels, without a fresh allocation and tensor per operation
        s, rows, m = h1_one.shape[0], h1_one.shape[1], block.shape[2]
        new = h1_one.new_empty
        act, h2 = new((s, rows, m)), new(h1_out.shape)
        probs, picked = _blocked((s, rows, self._n_out), h1_one), _blocked((s, rows, 1), h1_one)
        sums, logs = new((s, rows, 1)), new((s, rows, 1))
        log_sum = new(s)
        dh2, dact, dpre = new(h2.shape), new((s, rows, m)), new((s, rows, m))
        act_t = act.transpose(1, 2)
        bmm, baddbmm, powers = torch.bmm, torch.baddbmm, self._powers
        relu_back = torch.ops.aten.threshold_backward.grad_input

        def step() -> None:
            bmm(h1_one, block, out=act).relu_()
            baddbmm(h1_out, act, w_out, out=h2)
            host = powers(h2, w_u2, target, probs, sums, picked, logs, log_sum)
            self._h2, self._target, self._logits, self._probs = h2, target, None, probs
            self._picked, self._log_sum, self._host_log_sum = picked, log_sum, host
            baddbmm(rows_of_u, probs, w_u_t, alpha=scale, out=dh2)
            bmm(act_t, dh2, out=out_grad)
            relu_back(bmm(dh2, w_out_t, out=dact), act, 0, grad_input=dpre)
            bmm(h1_one_t, dpre, out=in_grad)

        return step

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(S, n, L')`` tokens -> ``(S, n, L', d)`` rows of the stacked ``W_E`` table."""
        s = tokens.shape[0]
        table = torch.cat([self.w["W_E"], self.w[RELATION_ROWS]], dim=1)  # (S, V, d)
        vocab, d = table.shape[1:]
        offset = (torch.arange(s, device=tokens.device) * vocab)[:, None, None]
        return torch.nn.functional.embedding(tokens + offset, table.reshape(s * vocab, d))

    def _front_forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """h1 ``(S, n Q, d)``: embeddings and attention, saving what the backward reads."""
        if self._front is not None and self._cache_key is tokens:
            return self._front[0]
        s, n, length = tokens.shape
        w, h, dh = self.w, self.n_heads, self.d_head
        d = w["W_U"].shape[1]
        if self.attention_free:
            h0 = self._embed(tokens[:, :, self.positions]) + w["W_pos"][:, None, self.positions]
            h1 = h0.reshape(s, -1, d)
            if not self.front_trained:
                self._fix_front(tokens, h1)
            return h1
        if self._h0 is not None and self._cache_key is tokens:
            h0 = self._h0
        else:
            h0 = self._embed(tokens) + w["W_pos"][:, None, :length]  # (S, n, L, d)
            if not self.embed_trained:
                self._cache_key, self._h0 = tokens, h0
        flat = h0.reshape(s, n * length, d)
        wv = w["W_V"].permute(0, 2, 1, 3).reshape(s, d, h * dh)
        v = torch.bmm(flat, wv).reshape(s, n, length, h, dh).transpose(2, 3)  # (S,n,H,L,dh)
        hq = h0[:, :, self.positions]  # (S, n, Q, d)
        n_q = len(self.positions)
        saved = {"flat": flat, "wv": wv, "v": v, "hq": hq}
        if self.uniform:
            z = torch.matmul(self.pattern, v)  # (S, n, H, Q, dh)
        else:
            wq = w["W_Q"].permute(0, 2, 1, 3).reshape(s, d, h * dh)
            wk = w["W_K"].permute(0, 2, 1, 3).reshape(s, d, h * dh)
            q = torch.bmm(hq.reshape(s, n * n_q, d), wq).reshape(s, n, n_q, h, dh).transpose(2, 3)
            k = torch.bmm(flat, wk).reshape(s, n, length, h, dh).transpose(2, 3)
            scores = q @ k.transpose(-1, -2) / dh**0.5  # (S, n, H, Q, L)
            pattern = scores.masked_fill(self.mask, float("-inf")).softmax(dim=-1)
            z = pattern @ v
            saved.update(wq=wq, wk=wk, q=q, k=k, pattern=pattern)
        zc = z.transpose(2, 3).reshape(s, n * n_q, h * dh)  # heads concatenated
        wo = w["W_O"].reshape(s, h * dh, d)
        h1 = hq.reshape(s, n * n_q, d) + torch.bmm(zc, wo)
        saved.update(zc=zc, wo=wo)
        self._saved = saved
        if not self.front_trained:
            self._fix_front(tokens, h1)
        return h1

    def _fix_front(self, tokens: torch.Tensor, h1: torch.Tensor) -> None:
        """Keep h1 (and h1 + b_out when b_out is frozen) for the later steps on ``tokens``."""
        self._cache_key, self._front, self._h1_t = tokens, (h1,), h1.transpose(1, 2)
        if "b_out" not in self.grads:
            self._h1_out = h1 + self._views["b_out"]
        if self._in_block is not None:
            self._h1_one = torch.cat([h1, torch.ones_like(h1[:, :, :1])], dim=2)
            self._h1_one_t = self._h1_one.transpose(1, 2)

    def _front_backward(self, tokens: torch.Tensor, dh1: torch.Tensor) -> None:
        """Gradients of the attention and embedding weights from ``dh1`` ``(S, n Q, d)``."""
        s, n, length = tokens.shape
        grads, n_q, d = self.grads, len(self.positions), dh1.shape[2]
        if self.attention_free:
            dhq = dh1.reshape(s, n, n_q, d)
            if "W_pos" in grads:
                grads["W_pos"].zero_().index_add_(1, self.pos_index, dhq.sum(dim=1))
            self._table_backward(tokens[:, :, self.positions], dhq)
            return
        h, dh, sv = self.n_heads, self.d_head, self._saved
        if "W_O" in grads:
            torch.bmm(sv["zc"].transpose(1, 2), dh1, out=grads["W_O"].view(s, h * dh, d))
        dzc = torch.bmm(dh1, sv["wo"].transpose(1, 2))  # (S, n Q, H dh)
        dz = dzc.reshape(s, n, n_q, h, dh).transpose(2, 3)  # (S, n, H, Q, dh)
        dhq = dh1
        dflat: torch.Tensor | None = None
        if self.uniform:
            dv = torch.matmul(self.pattern.transpose(0, 1), dz)  # (S, n, H, L, dh)
        else:
            pattern = sv["pattern"]
            da = dz @ sv["v"].transpose(-1, -2)  # (S, n, H, Q, L)
            dv = pattern.transpose(-1, -2) @ dz
            ds = pattern * (da - (da * pattern).sum(dim=-1, keepdim=True))
            ds = ds / dh**0.5
            dq = (ds @ sv["k"]).transpose(2, 3).reshape(s, n * n_q, h * dh)
            dk = (ds.transpose(-1, -2) @ sv["q"]).transpose(2, 3).reshape(s, n * length, h * dh)
            hq_flat = sv["hq"].reshape(s, n * n_q, d)
            if "W_Q" in grads:
                grads["W_Q"].copy_(_per_head(torch.bmm(hq_flat.transpose(1, 2), dq), h, dh))
            if "W_K" in grads:
                grads["W_K"].copy_(_per_head(torch.bmm(sv["flat"].transpose(1, 2), dk), h, dh))
            if self.embed_trained:
                dhq = torch.baddbmm(dh1, dq, sv["wq"].transpose(1, 2))
                dflat = torch.bmm(dk, sv["wk"].transpose(1, 2))
        dv_flat = dv.transpose(2, 3).reshape(s, n * length, h * dh)
        if "W_V" in grads:
            grads["W_V"].copy_(_per_head(torch.bmm(sv["flat"].transpose(1, 2), dv_flat), h, dh))
        if not self.embed_trained:
            return
        dflat = (
            torch.bmm(dv_flat, sv["wv"].transpose(1, 2))
            if dflat is None
            else torch.baddbmm(dflat, dv_flat, sv["wv"].transpose(1, 2))
        )
        dh0 = dflat.reshape(s, n, length, d).index_add_(
            2, self.pos_index, dhq.reshape(s, n, n_q, d)
        )
        if "W_pos" in grads:
            torch.sum(dh0, dim=1, out=grads["W_pos"])
        self._table_backward(tokens, dh0)

    def _table_backward(self, tokens: torch.Tensor, dh0: torch.Tensor) -> None:
        """Scatter ``(S, n, L', d)`` row gradients into the ``W_E`` rows that ``tokens`` read."""
        grads = self.grads
        if "W_E" not in grads and RELATION_ROWS not in grads:
            return
        s, d = tokens.shape[0], dh0.shape[-1]
        n_sub = self.w["W_E"].shape[1]
        vocab = n_sub + self.w[RELATION_ROWS].shape[1]
        offset = (torch.arange(s, device=tokens.device) * vocab)[:, None, None]
        table = torch.zeros(s * vocab, d, dtype=dh0.dtype, device=dh0.device)
        table.index_add_(0, (tokens + offset).reshape(-1), dh0.reshape(-1, d))
        table = table.reshape(s, vocab, d)
        if "W_E" in grads:
            grads["W_E"].copy_(table[:, :n_sub])
        if RELATION_ROWS in grads:
            grads[RELATION_ROWS].copy_(table[:, n_sub:])

    @contextlib.contextmanager
    def other_subjects(self, rows: torch.Tensor) -> Iterator[None]:
        """Within the block, ``rows`` ``(S, n', d)`` stand in for the subject rows of ``W_E``
        (tokens ``0..n'-1``, relation r at ``n' + r``): a :meth:`forward_backward` there writes
        every other gradient as usual, and the rows' own gradient to scratch, never to ``W_E``.
        """
        table, grad = self.w["W_E"], self.grads.get("W_E")
        self.w["W_E"] = rows
        if grad is not None:
            self.grads["W_E"] = torch.empty_like(rows)
        try:
            yield
        finally:
            self.w["W_E"] = table
            if grad is not None:
                self.grads["W_E"] = grad

    # --- update -----------------------------------------------------------------------------

    def update(self, factor: float) -> None:
        """One optimiser step of every setting at learning rate ``lr * factor``: torch's own
        fused kernels (``_fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_``), which implement
        the formulas of ``torch.optim.Adam``, ``AdamW`` and ``SGD``. The last step's logits
        are no longer readable after it (``W_U`` may have moved)."""
        self._h2 = None
        for k in self.kinds:
            k.step += 1
            lr = k.lr * factor
            params, grads, *state = k.rows
            if k.kind == "sgd":
                torch._fused_sgd_(
                    params, grads, state[0] if state else [], weight_decay=k.decay,
                    momentum=k.momentum, lr=lr, dampening=0.0, nesterov=False, maximize=False,
                    is_first_step=k.step == 1,
                )  # fmt: skip
                continue
            k.count.fill_(k.step)
            fused = torch._fused_adam_ if k.kind == "adam" else torch._fused_adamw_
            fused(
                params, grads, state[0], state[1], [], [k.count] * len(params), lr=lr,
                beta1=BETAS[0], beta2=BETAS[1], weight_decay=k.decay, eps=EPS, amsgrad=False,
                maximize=False,
            )  # fmt: skip


def _blocked(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised ``(S, ...)`` tensor of ``like``'s dtype and device whose replicate
    blocks start :data:`BLOCK`-float apart or more (padded between): an element-wise kernel
    then runs its vector chunks and scalar tail over each replicate's block as over a serial
    run's tensor, so a replicate's floats do not depend on the replicates stacked with it."""
    s, size = shape[0], math.prod(shape[1:])
    padded = -(-size // BLOCK) * BLOCK
    return like.new_empty((s, padded))[:, :size].view(shape)


def _picked_log_sum(probs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``p_t`` ``(S, rows, 1)`` (in a :func:`_blocked` tensor, so the ``log`` runs replicate by
    replicate) and ``sum log p_t`` ``(S,)``."""
    picked = torch.gather(probs, 2, target, out=_blocked(tuple(target.shape), probs))
    return picked, picked.log().sum(dim=(1, 2))


def _overflowed(log_sums: list[float], sums: torch.Tensor) -> list[int]:
    """The replicates whose row sums of ``2^z`` (``sums``, ``(S, rows, 1)``) did not stay
    finite: read only where a replicate's sum of ``log p_t`` is not finite (a ``p_t`` that
    underflowed to 0 in a finite row is the softmax's own, not an overflow)."""
    if math.isfinite(sum(log_sums)):
        return []
    return [
        i for i, x in enumerate(log_sums)
        if not math.isfinite(x) and not bool(torch.isfinite(sums[i]).all())
    ]  # fmt: skip


def _read_log_sum(
    probs: torch.Tensor,
    target: torch.Tensor,
    picked: torch.Tensor,
    logs: torch.Tensor,
    log_sum: torch.Tensor,
) -> list[float]:
    """``p_t`` of ``probs`` into ``picked``, ``sum log p_t`` into ``log_sum`` (``(S,)``, by way
    of ``logs``), and that sum read to the host."""
    torch.gather(probs, 2, target, out=picked)
    torch.sum(torch.log(picked, out=logs), (1, 2), out=log_sum)
    return log_sum.tolist()


def _shift_rows(z: torch.Tensor) -> None:
    """Subtract from each row of ``z`` ``(rows, n_out)`` (one replicate's block) its maximum,
    in place: then ``2^z`` is at most 1 and its row sum at least 1."""
    z.sub_(z.amax(dim=1, keepdim=True))


def _shifted_powers(h2: torch.Tensor, w_u2: torch.Tensor, probs: torch.Tensor, i: int) -> None:
    """Replicate ``i``'s block of ``probs`` again, its rows shifted: ``2^(z - max z)`` over its
    row sums, ``z = h2 w_u2`` (the same product as for the stack: each matrix is computed as
    alone)."""
    block = probs[i : i + 1]
    torch.bmm(h2[i : i + 1], w_u2[i : i + 1], out=block)
    _shift_rows(block[0])
    block.exp2_()
    block.div_(block.sum(dim=2, keepdim=True))


def _per_head(grad: torch.Tensor, h: int, dh: int) -> torch.Tensor:
    """``(S, d, H dh)`` -> the ``(S, H, d, dh)`` layout of ``W_Q, W_K, W_V``."""
    s, d = grad.shape[:2]
    return grad.reshape(s, d, h, dh).permute(0, 2, 1, 3)
