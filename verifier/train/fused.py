"""The fused training step: forward, hand-derived backward and optimiser update of the stacked
replicates, without autograd or ``torch.optim`` (docs/theory.md section 2's model).

Per step the work is a fixed list of batched matmuls and element-wise kernels:

- forward as :class:`~verifier.train.loop.StackedForward` (the same ops, so the logits agree
  to the last bit), keeping what the backward reads;
- the loss ``sum_S mean_rows CE`` and its logit gradient ``G = (softmax(z) - onehot) / rows``
  per replicate, and the strict-argmax count (target logit above every other logit);
- the backward, written out: ``dW_U = h2^T G``, ``dh2 = G W_U^T``, ``dW_out = relu(pre)^T dh2``,
  ``dpre = (dh2 W_out^T) * [pre > 0]``, ``dW_in = h1^T dpre``, ``dh1 = dh2 + dpre W_in^T``, then
  through ``W_O``, the attention (``dS = A * (dA - rowsum(dA * A))`` for a learned pattern, the
  constant pattern's transpose for a uniform one) and ``W_V, W_Q, W_K`` to ``h0``, and by
  ``index_add`` to the rows of ``W_E`` and ``W_pos``. Frozen weights get no gradient and a part of
  the graph that reaches only frozen weights is not differentiated;
- the update, on one flat buffer per optimiser kind (every trained tensor of that kind is a view
  of it), so a step costs a handful of kernels whatever the number of tensors. The formulas are
  ``torch.optim``'s (Adam with L2 decay, AdamW with decoupled decay, SGD with momentum and L2
  decay; betas 0.9, 0.999, eps 1e-8), with each tensor's own learning rate, momentum and decay.

When the embeddings (and the attention, or all of it frozen) take no gradient, ``h0`` (and
``h1``) are the same every full-batch step and are computed once. Every tensor lives on the
weights' device and dtype: the same code runs float64 on the CPU in the tests and float32 on
CUDA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from verifier.train.config import ATTENTION_WEIGHTS, PARAM_NAMES, RELATION_ROWS, TrainConfig
from verifier.train.tasks import TrainTask

BETAS = (0.9, 0.999)  # torch.optim.Adam / AdamW defaults
EPS = 1e-8
EMBEDDINGS = ("W_E", RELATION_ROWS, "W_pos")


@dataclass
class _Kind:
    """One optimiser kind's flat buffers: parameters, gradients, state, per-tensor settings.

    ``lr``, ``momentum`` and ``decay`` are floats when every tensor of the kind shares them,
    else per-element vectors (the tensors' values repeated over their elements).
    """

    kind: str
    param: torch.Tensor
    grad: torch.Tensor
    lr: float | torch.Tensor
    momentum: float | torch.Tensor
    decay: float | torch.Tensor
    state: list[torch.Tensor] = field(default_factory=list)  # adam: m, v; sgd: momentum buffer
    step: int = 0


def _setting(values: list[float], sizes: list[int], like: torch.Tensor) -> float | torch.Tensor:
    """One float when the values agree, else the per-element vector."""
    if len(set(values)) == 1:
        return float(values[0])
    return torch.cat(
        [
            torch.full((k,), v, dtype=like.dtype, device=like.device)
            for v, k in zip(values, sizes, strict=True)
        ]
    )


class FusedStep:
    """Forward, backward and update of stacked weights ``(S, ...)`` for one task's geometry.

    On construction the trained tensors of ``weights`` are replaced (in the dict) by views of
    flat per-kind buffers holding the same values, so the caller's dict always shows the
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

    def _build_kinds(self) -> None:
        by_kind: dict[str, list[str]] = {}
        for name in self.trained:
            by_kind.setdefault(self.cfg.group(name)[0], []).append(name)
        for kind, names in by_kind.items():
            sizes = [self.w[n].numel() for n in names]
            param = torch.cat([self.w[n].detach().reshape(-1) for n in names]).to(self.dtype)
            grad = torch.zeros_like(param)
            settings = [self.cfg.group(n) for n in names]
            entry = _Kind(
                kind,
                param,
                grad,
                _setting([s[1] for s in settings], sizes, param),
                _setting([s[2] for s in settings], sizes, param),
                _setting([s[3] for s in settings], sizes, param),
            )
            if kind in ("adam", "adamw"):
                entry.state = [torch.zeros_like(param), torch.zeros_like(param)]
            elif not (isinstance(entry.momentum, float) and entry.momentum == 0.0):
                entry.state = [torch.zeros_like(param)]
            offset = 0
            for name, size in zip(names, sizes, strict=True):
                shape = self.w[name].shape
                self.w[name] = param[offset : offset + size].view(shape)
                self.grads[name] = grad[offset : offset + size].view(shape)
                offset += size
            self.kinds.append(entry)

    # --- state (for the back-off replay) ---------------------------------------------------

    def state(self) -> list[torch.Tensor]:
        """Clones of every buffer that a step changes (parameters and optimiser state)."""
        return [t.clone() for k in self.kinds for t in (k.param, *k.state)]

    def steps_taken(self) -> int:
        """Optimiser steps taken so far."""
        return self.kinds[0].step if self.kinds else 0

    def restore(self, saved: list[torch.Tensor], steps: int) -> None:
        """Put back a :meth:`state` taken after ``steps`` optimiser steps."""
        it = iter(saved)
        for k in self.kinds:
            for t in (k.param, *k.state):
                t.copy_(next(it))
            k.step = steps

    # --- forward and backward ---------------------------------------------------------------

    def forward_backward(
        self, tokens: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and gradient of ``(S, n, L)`` tokens against ``(S, n, T)`` targets.

        Returns the per-replicate mean cross-entropy ``(S,)`` and the number of rows whose
        every target is the strict argmax ``(S,)``; leaves the gradients in :attr:`grads`.
        """
        s, n, _ = tokens.shape
        h1 = self._front_forward(tokens)  # (S, n Q, d)
        w = self.w
        pre = torch.baddbmm(w["b_in"][:, None], h1, w["W_in"])  # (S, rows, m)
        act = torch.relu(pre)
        h2 = h1 + torch.baddbmm(w["b_out"][:, None], act, w["W_out"])
        logits = torch.bmm(h2, w["W_U"])  # (S, rows, n_out)
        rows = logits.shape[1]
        target = targets.reshape(s, rows, 1)
        logp = torch.log_softmax(logits, dim=-1)
        loss = logp.gather(2, target).sum(dim=(1, 2)).mul_(-1.0 / rows)
        top = logits.gather(2, target)  # strict argmax: above every other logit
        runner_up = logits.scatter(2, target, -math.inf).amax(dim=2, keepdim=True)
        ok = (top > runner_up).reshape(s, n, -1).all(dim=2).sum(dim=1)
        g = logp.exp_()
        g.scatter_add_(2, target, torch.full_like(top, -1.0)).mul_(1.0 / rows)  # dL/dlogits
        grads = self.grads
        if "W_U" in grads:
            torch.bmm(h2.transpose(1, 2), g, out=grads["W_U"])
        dh2 = torch.bmm(g, w["W_U"].transpose(1, 2))  # (S, rows, d)
        if "b_out" in grads:
            torch.sum(dh2, dim=1, out=grads["b_out"])
        if "W_out" in grads:
            torch.bmm(act.transpose(1, 2), dh2, out=grads["W_out"])
        needs_pre = any(k in grads for k in ("W_in", "b_in")) or self.front_trained
        if not needs_pre:
            return loss, ok
        dpre = torch.ops.aten.threshold_backward(torch.bmm(dh2, w["W_out"].transpose(1, 2)), act, 0)
        if "W_in" in grads:
            torch.bmm(h1.transpose(1, 2), dpre, out=grads["W_in"])
        if "b_in" in grads:
            torch.sum(dpre, dim=1, out=grads["b_in"])
        if self.front_trained:
            dh1 = torch.baddbmm(dh2, dpre, w["W_in"].transpose(1, 2))
            self._front_backward(tokens, dh1)
        if self.per_subject:
            grads["W_E"].mul_(self.n_entities)  # each subject row: its own mean loss
        return loss, ok

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
                self._cache_key, self._front = tokens, (h1,)
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
            self._cache_key, self._front = tokens, (h1,)
        return h1

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

    # --- update -----------------------------------------------------------------------------

    def update(self, factor: float) -> None:
        """One optimiser step of every kind at learning rate ``lr * factor``."""
        for k in self.kinds:
            k.step += 1
            if k.kind == "sgd":
                _sgd(k, factor)
            else:
                _adam(k, factor)


def _per_head(grad: torch.Tensor, h: int, dh: int) -> torch.Tensor:
    """``(S, d, H dh)`` -> the ``(S, H, d, dh)`` layout of ``W_Q, W_K, W_V``."""
    s, d = grad.shape[:2]
    return grad.reshape(s, d, h, dh).permute(0, 2, 1, 3)


def _adam(k: _Kind, factor: float) -> None:
    """torch.optim.Adam (L2 decay in the gradient) or AdamW (decoupled decay) on a flat buffer."""
    p, g = k.param, k.grad
    m, v = k.state
    decay = k.decay
    has_decay = not (isinstance(decay, float) and decay == 0.0)
    if has_decay and k.kind == "adam":
        g = g.add(p, alpha=decay) if isinstance(decay, float) else g.addcmul(p, decay)
    if has_decay and k.kind == "adamw":  # decoupled: p *= 1 - lr decay
        if isinstance(decay, float) and isinstance(k.lr, float):
            p.mul_(1 - k.lr * factor * decay)
        else:
            lr_decay = torch.as_tensor(k.lr, dtype=p.dtype, device=p.device) * decay
            p.addcmul_(p, lr_decay, value=-factor)
    b1, b2 = BETAS
    m.lerp_(g, 1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    bias1 = 1 - b1**k.step
    denom = v.sqrt().div_(math.sqrt(1 - b2**k.step)).add_(EPS)
    if isinstance(k.lr, float):
        p.addcdiv_(m, denom, value=-k.lr * factor / bias1)
    else:
        p.addcdiv_(m * k.lr, denom, value=-factor / bias1)


def _sgd(k: _Kind, factor: float) -> None:
    """torch.optim.SGD (momentum, L2 decay, no dampening or Nesterov) on a flat buffer."""
    p, g = k.param, k.grad
    decay = k.decay
    if not (isinstance(decay, float) and decay == 0.0):
        g = g.add(p, alpha=decay) if isinstance(decay, float) else g.addcmul(p, decay)
    if k.state:  # buf = momentum buf + d_p (buf starts at 0, so the first step is d_p)
        (buf,) = k.state
        g = buf.mul_(k.momentum).add_(g)
    if isinstance(k.lr, float):
        p.add_(g, alpha=-k.lr * factor)
    else:
        p.addcmul_(g, k.lr, value=-factor)
