"""The trainer's settings and results: weight names, per-weight optimiser groups,
:class:`TrainConfig` (docs/theory.md section 7b), :func:`train_config` (the one place a training
claim's settings become a :class:`TrainConfig`) and :class:`TrainResult`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from verifier.model import OneLayerTransformer
from verifier.spec.claims.training import TrainingClaim
from verifier.spec.instances import BijectionInstance, MultiHopInstance

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
class AugmentConfig:
    """Combination augmentation (docs/theory.md section 7b, :mod:`verifier.train.augment`).

    From optimiser step ``start`` on, each step adds ``subjects`` synthetic subjects (None: N)
    whose rows are the superposition fit ``b + sum_r M_r u_(a_r)`` (float64 least squares of
    the subject rows on ``[1, u_(pi_1(s)), .., u_(pi_R(s))]``, refitted every ``refit_every``
    steps) at freshly drawn attributes ``a_r``; their facts join the loss as
    ``mean_real + weight * mean_synthetic``, with the rows detached.
    """

    subjects: int | None = None
    refit_every: int = 25
    weight: float = 1.0
    start: int = 50

    def __post_init__(self) -> None:
        if self.subjects is not None and self.subjects < 1:
            raise ValueError(f"augment.subjects: expected at least 1, got {self.subjects}")
        if self.refit_every < 1:
            raise ValueError(f"augment.refit_every: expected at least 1, got {self.refit_every}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"augment.weight: expected a finite weight >= 0, got {self.weight}")
        if self.start < 0:
            raise ValueError(f"augment.start: expected a step >= 0, got {self.start}")


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
    augment: AugmentConfig | None = None  # combination augmentation (None: off)

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


RENAMED: dict[str, str] = {"heads": "n_heads"}  # spec field -> TrainConfig field
# A training claim's fields that set no TrainConfig field, and why.
NOT_SETTINGS: dict[str, str] = {
    "seeds": "replicates: each seed is one replicate's instance and init seed, handed to the "
    "trainer beside the settings (checks/training.replicate_instances)",
    "require": "how the runner judges the replicates, after training",
    "mechanism": "which measures run on the trained models, after training",
    "train_seed": "read as TrainConfig.seed (the instance's seed when unset)",
}


def train_config(
    instance: BijectionInstance | MultiHopInstance, claim: TrainingClaim
) -> TrainConfig:
    """The trainer's settings for a training claim: every field of ``model`` and ``optim`` under
    its own name (``heads``: ``n_heads``), ``freeze``, and the seed (``train_seed``, else the
    instance's). Mappings become sorted tuples, so equal settings give equal configs (and one
    checkpoint key)."""
    m, o = claim.model, claim.optim
    settings: dict[str, Any] = {
        **m.model_dump(exclude={"init", "unit_norm"}),
        **o.model_dump(exclude={"groups", "augment"}),
    }
    for spec_name, name in RENAMED.items():
        settings[name] = settings.pop(spec_name)
    return TrainConfig(
        **settings,
        init=tuple(sorted(m.init.items())),
        unit_norm=tuple(sorted(set(m.unit_norm))),
        groups=tuple((name, OptimGroup(**g.model_dump())) for name, g in sorted(o.groups.items())),
        augment=None if o.augment is None else AugmentConfig(**o.augment.model_dump()),
        freeze=tuple(claim.freeze),
        seed=instance.seed if claim.train_seed is None else claim.train_seed,
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
        history: ``(step, loss, accuracy)`` at evaluations (full batch: about 200 evenly
            spaced steps, and the stop), thinned to at most about 200 rows.
        from_cache: loaded from a checkpoint rather than trained.
        seed: the replicate's seed (initialisation and batch order).
        peak_loss: the largest loss at any evaluation (inf once one was not finite): a run
            whose loss blew up above its start diverged, whatever it ended at.
        fit_history: with augmentation, ``(step, R^2)`` of the superposition fit at each
            refit up to the last step kept (in-sample, float64).
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
    fit_history: list[tuple[int, float]] = field(default_factory=list)
