"""Combination augmentation: synthetic subjects from the superposition fit (docs/theory.md 7b).

A trained subject row is close to ``e_s = b + sum_r M_r u_(pi_r(s))`` (section 7's
superposition fit, ``u_j`` the column j of ``W_U``). From optimiser step ``start`` on, every step
draws, per replicate, ``S`` fresh attribute combinations ``(a_1, .., a_R)`` (each ``a_r``
uniform over relation r's attributes, from ``Stream.AUGMENT`` and the step) and adds the
synthetic subjects ``b + sum_r M_r u_(a_r)`` with their R facts ``[r, s'] -> a_r`` to the loss:

    L = mean_real CE + w * mean_synthetic CE.

The synthetic rows are constants (detached): only the network and ``W_U`` learn from them, so
the MLP sees subjects of the probe's form on combinations the real facts never hold. ``(b, M)``
is the float64 least squares of the detached rows ``W_E`` on ``[1, u_(pi_1(s)), .., u_(pi_R(s))]``
(``N x (1 + R d)``, so ``N > R d + 1``), refitted every ``refit_every`` steps from the rows and
``W_U`` at that step and held (with those ``u_j``) until the next refit; its in-sample R^2 at each
refit is the run's :attr:`~verifier.train.config.TrainResult.fit_history`. The rows are summed in
float64 and cast to the weights' dtype, so both engines (fused and reference) see the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from verifier.seeds import Stream, rng
from verifier.train.config import AugmentConfig
from verifier.train.fused import FusedStep
from verifier.train.tasks import TrainTask

if TYPE_CHECKING:
    from verifier.train.loop import StackedForward

REPLAY = 64  # steps back a fit is kept for: the windowed loop replays at most its window


@dataclass(frozen=True)
class _Fit:
    """One refit: ``bias`` ``(S, d)`` and ``tables`` ``(S, R, N, d)``, where
    ``tables[i, r, k] = M_r u_(range_r[k])`` for the k-th attribute of relation r (float64)."""

    bias: np.ndarray
    tables: np.ndarray


class Augmenter:
    """The synthetic subjects of a stacked run (one replicate per seed), step by step.

    Call :meth:`fused_gradient` between a fused step's backward and its update, or add
    :meth:`reference_loss` to the reference engine's loss; both refit when due and draw the
    step's combinations from the step number alone, so a replayed step draws the same.
    """

    def __init__(
        self,
        tasks: Sequence[TrainTask],
        cfg: AugmentConfig,
        seeds: Sequence[int],
        device: torch.device | None,
        dtype: torch.dtype,
    ) -> None:
        task = tasks[0]
        if task.positions is not None or task.n_ctx != 2:
            raise ValueError("augment: expected single-hop facts [r, s] -> pi_r(s)")
        self.cfg, self.seeds = cfg, tuple(seeds)
        self.device, self.dtype = device, dtype
        self.n = task.n_entities
        self.answers = np.stack([_bijections(t) for t in tasks])  # (S, R, N): pi_r(s)
        self.ranges = np.sort(self.answers, axis=2)  # (S, R, N): relation r's attributes
        self.n_rel = self.answers.shape[1]
        self.n_new = cfg.subjects if cfg.subjects is not None else self.n
        self._fits: dict[int, _Fit] = {}
        self.r2: dict[int, list[float]] = {}  # refit step -> in-sample R^2 per replicate
        new = np.arange(self.n_new)  # synthetic subject k is token k; relation r is n_new + r
        rows = [
            np.stack([self.n_new + np.full_like(new, r), new], axis=1) for r in range(self.n_rel)
        ]
        self._tokens = torch.from_numpy(np.concatenate(rows)).expand(len(self.seeds), -1, -1)

    @property
    def weight(self) -> float:
        return self.cfg.weight

    def active(self, step: int) -> bool:
        """Whether step ``step`` (0-based, before its update) adds synthetic subjects."""
        return self.cfg.weight > 0 and step >= self.cfg.start

    def refit(self, step: int, subjects: torch.Tensor, unembed: torch.Tensor) -> None:
        """Refit ``(b, M)`` from ``W_E`` ``(S, N, d)`` and ``W_U`` ``(S, d, n_out)`` when
        ``step`` is a refit step (``start``, then every ``refit_every``)."""
        if (step - self.cfg.start) % self.cfg.refit_every != 0 and self._fits:
            return
        e = subjects.detach().cpu().double().numpy()
        u = unembed.detach().cpu().double().numpy()
        s, n, d = e.shape
        if n <= self.n_rel * d + 1:
            raise ValueError(
                f"augment fits e_s ~ b + sum_r M_r u_(pi_r(s)) on all N subjects: expected "
                f"N > R*d + 1 = {self.n_rel * d + 1}, got N = {n}"
            )
        bias, tables, r2 = np.empty((s, d)), np.empty((s, self.n_rel, n, d)), []
        for i in range(s):
            cols = [u[i][:, self.answers[i, r]].T for r in range(self.n_rel)]  # (N, d) each
            x = np.concatenate([np.ones((n, 1)), *cols], axis=1)  # (N, 1 + R d)
            w = np.linalg.lstsq(x, e[i], rcond=None)[0]  # (1 + R d, d)
            bias[i] = w[0]
            for r in range(self.n_rel):
                tables[i, r] = u[i][:, self.ranges[i, r]].T @ w[1 + r * d : 1 + (r + 1) * d]
            total = float(((e[i] - e[i].mean(axis=0)) ** 2).sum())
            resid = float(((e[i] - x @ w) ** 2).sum())
            r2.append(1.0 - resid / total if total > 0 else 1.0)
        old = [k for k in self._fits if k <= step - REPLAY]
        keep = max(old, default=-1)  # the fit in force REPLAY steps back, and every later one
        self._fits = {k: v for k, v in self._fits.items() if keep <= k < step}
        self._fits[step] = _Fit(bias, tables)
        self.r2[step] = r2

    def draw(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The step's synthetic rows ``(S, S', d)``, tokens ``(S, S' R, 2)`` (subject k is
        token k, relation r token ``S' + r``) and targets ``(S, S' R)`` (relation-major)."""
        fit = self._fits[max(k for k in self._fits if k <= step)]
        rows, targets = [], []
        for i, seed in enumerate(self.seeds):
            pick = rng(seed, Stream.AUGMENT, step).integers(
                0, self.n, size=(self.n_rel, self.n_new)
            )
            row = fit.bias[i] + sum(fit.tables[i, r, pick[r]] for r in range(self.n_rel))
            rows.append(row)
            targets.append(np.concatenate([self.ranges[i, r, pick[r]] for r in range(self.n_rel)]))
        as_rows = torch.from_numpy(np.stack(rows)).to(self.device, self.dtype)
        as_targets = torch.from_numpy(np.stack(targets)).to(self.device)
        return as_rows, self._tokens.to(self.device), as_targets

    def fused_gradient(self, fused: FusedStep, step: int) -> None:
        """Turn the real gradient in ``fused.grads`` into that of ``L`` (module docstring):
        one more fused pass on the synthetic subjects, whose own row gradient is dropped."""
        if not self.active(step):
            return
        self.refit(step, fused.w["W_E"], fused.w["W_U"])
        rows, tokens, targets = self.draw(step)
        real = {name: g.clone() for name, g in fused.grads.items() if name != "W_E"}
        with fused.other_subjects(rows):
            fused.forward_backward(tokens, targets)
        for name, g in real.items():
            fused.grads[name].mul_(self.cfg.weight).add_(g)

    def reference_loss(
        self, forward: StackedForward, weights: dict[str, torch.Tensor], step: int
    ) -> torch.Tensor | None:
        """``w * sum_S mean_synthetic CE`` through the autograd forward, or None when off."""
        if not self.active(step):
            return None
        self.refit(step, weights["W_E"], weights["W_U"])
        rows, tokens, targets = self.draw(step)
        logits = forward({**weights, "W_E": rows}, tokens)  # (S, S' R, 1, n_out)
        per = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
        )
        return self.cfg.weight * per.reshape(len(self.seeds), -1).mean(dim=1).sum()

    def history(self, replicate: int, last_step: int) -> list[tuple[int, float]]:
        """``(step, R^2)`` of replicate ``replicate``'s refits up to ``last_step``."""
        return [(s, r2[replicate]) for s, r2 in sorted(self.r2.items()) if s <= last_step]


def _bijections(task: TrainTask) -> np.ndarray:
    """``(R, N)`` answers ``pi_r(s)`` of a single-hop task's facts ``[r, s] -> pi_r(s)``."""
    tokens, targets = task.tokens.numpy(), task.targets.numpy()
    relations, subjects = tokens[:, 0] - task.n_entities, tokens[:, 1]
    n_rel = int(relations.max()) + 1
    if len(targets) != n_rel * task.n_entities:
        raise ValueError("augment: expected every fact of every relation once")
    out = np.full((n_rel, task.n_entities), -1, dtype=np.int64)
    out[relations, subjects] = targets
    return out
