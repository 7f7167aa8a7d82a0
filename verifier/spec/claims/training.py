"""Training claims: train the section 2 model, evaluate it exactly, measure its mechanism."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from verifier.measure.registry import MECHANISM_MEASURES, plugin_measure_names
from verifier.spec.base import MAX_SCALE, StrictModel
from verifier.spec.claims.base import ClaimBase
from verifier.spec.instances import BijectionInstance, MultiHopInstance

WeightName = Literal[
    "W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "b_in", "W_out", "b_out", "W_U"
]


InitName = Literal[
    "W_E", "W_E_relations", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U"
]
Multiplier = Annotated[float, Field(ge=0, le=MAX_SCALE, allow_inf_nan=False)]
RequireRule = Literal["all", "majority", "median"]
MAX_REPLICATES = 32  # seeds per claim; the work is also bounded by max_replicates (limits)


class TrainingModel(StrictModel):
    """Shape, attention and initialisation of the trained model (docs/theory.md section 2)."""

    d_model: int = Field(ge=1, description="residual width d")
    d_mlp: int = Field(ge=1, description="MLP width")
    heads: int = Field(1, ge=1, description="attention heads H")
    d_head: int | None = Field(None, ge=1, description="default d_model // heads")
    init_scale: float = Field(
        1.0,
        gt=0,
        le=MAX_SCALE,
        allow_inf_nan=False,
        description="multiplies the fan-in scaled init",
    )
    attention: Literal["learned", "uniform", "none"] = Field(
        "learned",
        description="uniform: W_Q = W_K = 0 and not trained (G1's attention); none: every "
        "attention weight 0 and not trained, so the MLP reads the subject's embedding alone",
    )
    init: dict[InitName, Multiplier] = Field(
        default_factory=dict,
        description="per-weight multipliers of the default init, on top of init_scale; "
        "W_E scales the subject rows, W_E_relations the relation rows",
    )
    unit_norm: list[Literal["W_E", "W_E_relations", "W_U"]] = Field(
        default_factory=list,
        description="tensors drawn with unit-norm rows (W_E, W_E_relations) or columns (W_U), "
        "then scaled by their init multiplier: the associative-memory peer's frozen embeddings",
    )


class OptimGroup(StrictModel):
    """Optimiser settings for one weight; each unset field is taken from ``optim``."""

    optimizer: Literal["adam", "adamw", "sgd"] | None = None
    lr: float | None = Field(
        None, gt=0, allow_inf_nan=False, le=MAX_SCALE, description="learning rate"
    )
    momentum: float | None = Field(None, ge=0, lt=1, description="sgd only")
    weight_decay: float | None = Field(None, ge=0, allow_inf_nan=False, le=MAX_SCALE)
    per_subject: bool = Field(
        False,
        description="W_E only: each subject row steps on its own mean loss (its gradient times "
        "N), so one setting works at every N",
    )


class TrainingAugment(StrictModel):
    """Combination augmentation (docs/theory.md section 7b): from step ``start`` on, each step
    adds ``subjects`` synthetic subjects whose rows are the superposition fit
    ``b + sum_r M_r u_(a_r)`` at freshly drawn attributes, their R facts weighted ``weight``."""

    subjects: int | None = Field(
        None, ge=1, description="synthetic subjects per step (S); default N"
    )
    refit_every: int = Field(
        25,
        ge=1,
        description="steps between float64 refits of e_s ~ b + sum_r M_r u_(pi_r(s)) on the "
        "detached subject rows and W_U (K)",
    )
    weight: float = Field(
        1.0,
        ge=0,
        le=MAX_SCALE,
        allow_inf_nan=False,
        description="loss = mean over the real facts + weight * mean over the synthetic ones "
        "(w); 0: plain training",
    )
    start: int = Field(50, ge=0, description="first optimiser step with synthetic subjects (t)")


class TrainingOptim(StrictModel):
    """Optimiser settings; training stops early at exact recall with loss <= stop_loss."""

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(gt=0, allow_inf_nan=False, le=MAX_SCALE, description="learning rate")
    steps: int = Field(ge=1, description="the most optimiser steps")
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup: int = Field(0, ge=0, description="linear warmup steps")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False, le=MAX_SCALE)
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd only")
    batch_size: int | None = Field(None, ge=1, description="None: full batch (all facts)")
    stop_loss: float = Field(
        0.05, ge=0, allow_inf_nan=False, description="early stop: all facts right, loss <= this"
    )
    eval_every: int = Field(50, ge=1, description="mini-batch: steps between evaluations")
    groups: dict[WeightName, OptimGroup] = Field(
        default_factory=dict,
        description="per-weight optimiser settings that override these for that weight, e.g. "
        "{W_E: {optimizer: sgd, lr: 0.1, momentum: 0.9, per_subject: true}}",
    )
    min_steps: int = Field(
        0, ge=0, description="keep training after exact recall until at least this many steps"
    )
    stop_accuracy: float = Field(
        1.0,
        gt=0,
        le=1,
        description="early stop once this share of the examples is right (and loss <= "
        "stop_loss); 1: exact recall",
    )
    augment: TrainingAugment | None = Field(
        None,
        description="combination augmentation, e.g. {} for S = N, refit_every 25, weight 1, "
        "start 50 (bijection instances; needs N > R*d_model + 1); unset: off",
    )

    @model_validator(mode="after")
    def _groups(self) -> TrainingOptim:
        for name, group in self.groups.items():
            if group.per_subject and name != "W_E":
                raise ValueError(
                    f"groups.{name}.per_subject: expected it on W_E only (the subject rows), "
                    f"got it on {name}"
                )
        if self.min_steps > self.steps:
            raise ValueError(
                f"min_steps: expected at most steps = {self.steps}, got {self.min_steps}"
            )
        return self


class TrainingClaim(ClaimBase):
    """Train the section 2 model on every fact (or multi-hop query), evaluate exactly, measure."""

    check: Literal["training"]
    model: TrainingModel
    optim: TrainingOptim
    freeze: list[WeightName] = Field(
        default_factory=list, description="weights kept at their random init, e.g. [W_E]"
    )
    train_seed: int | None = Field(
        None, ge=0, description="init and batch-order seed; default the instance's seed"
    )
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_REPLICATES,
        description="replicates: for each seed the instance is redrawn and the model "
        "re-initialised from it; trained together as one batched model, each seed to the "
        "bit as it trains alone",
    )
    require: RequireRule = Field(
        "all",
        description="how the replicates meet expect: all (every replicate), majority (more "
        "than half meet every expectation), median (the median of each measure)",
    )
    mechanism: bool = Field(
        True,
        description="measure the mechanism (docs/theory.md section 7) after training; false skips "
        "it, e.g. in a capacity search that needs the accuracy alone",
    )

    MEASURES: ClassVar[tuple[str, ...]] = (
        "accuracy",  # float64 exact recall over every fact
        "margin",
        "steps_to_perfect",  # first step with every fact right (float32); unmeasured if never
        "steps",  # optimiser steps taken
        "final_loss",
        *MECHANISM_MEASURES,
        "params",
        "trainable_params",
        "fact_params",  # the subject table, N d
        "embedding_dim",
        "mlp_width",
        "n_facts",
        "n_queries",  # examples trained and evaluated: N*R facts, or N*|C| multi-hop queries
        "step_accuracy",  # share of (query, greedy decoding step) pairs right (1 step without CoT)
        "decode_steps",  # forward passes per query at evaluation: k with CoT, else 1
        "facts_per_trainable_param",  # N R / trainable_params
        "bits_per_trainable_param",  # R log2(N!) / trainable_params (docs/theory.md section 4)
        "initial_loss",  # mean cross-entropy before the first step
        "diverged",  # final loss not finite or above initial_loss (verifier/engine/search.py)
    )
    LABEL_MEASURES: ClassVar[tuple[str, ...]] = ("diverged",)

    @model_validator(mode="after")
    def _replicates(self) -> TrainingClaim:
        if self.seeds is not None:
            if self.train_seed is not None:
                raise ValueError(
                    "seeds sets both the instance and the init seed of each replicate; "
                    "expected seeds or train_seed, got both"
                )
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"seeds: expected distinct seeds, got {self.seeds}")
        elif self.require != "all":
            raise ValueError(
                f"require: {self.require} needs replicates; expected seeds: [...] as well"
            )
        if not self.mechanism:
            search = self.search_spec()
            named = set(self.expect) | (set(search.until) if search is not None else set())
            wanted = sorted(named & {*MECHANISM_MEASURES, *plugin_measure_names()})
            if wanted:
                raise ValueError(
                    f"mechanism: false skips the mechanism measures; expected none in expect "
                    f"or until, got {', '.join(wanted)}"
                )
        return self

    def produced_measures(self, instance: BijectionInstance | MultiHopInstance) -> Iterable[str]:
        """Every measure, but the mechanism measures (and the plugins' the claim names) only on a
        bijection instance (they are defined on single-hop facts, docs/theory.md section 7) with
        ``mechanism`` on."""
        mechanism = isinstance(instance, BijectionInstance) and any(
            self.field_values("mechanism", self.mechanism)
        )
        built_in = tuple(m for m in self.MEASURES if mechanism or m not in MECHANISM_MEASURES)
        return (*built_in, *self.plugin_measures()) if mechanism else built_in

    def plugin_measures(self) -> tuple[str, ...]:
        """The installed plugin measures (:mod:`verifier.measure.registry`) this claim names in
        ``expect``, its growth or its search: only those run on its trained models."""
        search = self.search_spec()
        named = set(self.expect) | (set(search.until) if search is not None else set())
        growth = self.expect.get("growth")
        if isinstance(growth, dict) and isinstance(growth.get("measure"), str):
            named.add(growth["measure"])
        return tuple(m for m in plugin_measure_names() if m in named)

    @classmethod
    def schema_measures(cls) -> tuple[str, ...]:
        """The kind's measures and the installed plugins' mechanism measures."""
        return (*cls.MEASURES, *plugin_measure_names())

    def known_measures(self) -> tuple[str, ...]:
        """The kind's measures and the installed plugins' mechanism measures
        (:mod:`verifier.measure.registry`)."""
        return (*super().known_measures(), *plugin_measure_names())
