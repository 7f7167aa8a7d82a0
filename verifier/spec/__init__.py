"""The spec language: pydantic models for instances and claims, and YAML loading with lines.

One model per instance kind (discriminated on ``kind``) and per claim kind (on ``check``), all
with ``extra="forbid"``, so a misspelt key is an error naming the key, the file and the line.
Field names are a public contract (docs/spec-language.md): add fields freely, rename none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from verifier import theory  # a module, not its names: verifier.theory imports spec.formulas
from verifier.engine.fits import parse_growth
from verifier.errors import SpecError
from verifier.spec.error_lines import spec_error
from verifier.spec.expectations import Expectation, parse_expectation
from verifier.spec.formulas import SYMBOLS
from verifier.spec.yaml_lines import LineDict, load_yaml

IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys and non-finite numbers (.inf, .nan) are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- instances -------------------------------------------------------------------------------


class BijectionInstance(StrictModel):
    """R random bijections from N subjects to the attribute set (docs/theory.md section 1)."""

    kind: Literal["bijection"]
    entities: int = Field(ge=2, description="N, the number of entities")
    relations: int = Field(ge=1, description="R, the number of relations")
    attributes: Literal["shared", "disjoint"] = Field(
        "shared", description="shared: attributes are the entities; disjoint: N per relation"
    )
    seed: int = Field(0, ge=0, description="seed of every random draw")

    @property
    def hops(self) -> int:
        """Single hop: k = 1."""
        return 1

    def symbol_values(self) -> dict[str, float]:
        """Values of the formula symbols this instance fixes."""
        return {"N": self.entities, "R": self.relations, "k": 1}


# --- multi-hop instances (docs/theory.md sections 1 and 5) ----------------------------------------

MAX_HOPS = 64  # k; N*R**k is bounded separately by the max_queries limit

# Construction-claim measures that only multi-hop instances report.
MULTIHOP_MEASURES: tuple[str, ...] = (
    "decode_steps",  # forward passes per query: k with chain-of-thought, 1 without
    "n_queries",  # N * (number of chains)
    "step_accuracy",  # share of (query, decoding step) pairs right under greedy decoding
    "lbk_bits",  # LBk on the seeded chain trees: min over x of H(T_x | shallower levels)
    "lbk_bits_avg",  # the same, averaged over x
    "lbk_bits_approx",  # the closed form (number of chains) * log2(N)
    "dim_per_lbk_bit",  # embedding_dim / lbk_bits_avg (the average estimates E H(T_x | ...))
)


class MultiHopInstance(StrictModel):
    """Chains of k relations over R random bijections; queries ``(x, c)``, answer ``pi_c(x)``.

    ``pi_c = pi_{r_k} o ... o pi_{r_1}``; the single-hop bijections are those of a bijection
    instance with the same N, R and seed. Sequences ``[r_1..r_k, x]`` without chain-of-thought,
    ``[r_1..r_k, x, y_1..y_{k-1}]`` with it (docs/theory.md section 1).
    """

    kind: Literal["multi_hop"]
    entities: int = Field(ge=2, description="N, the number of entities")
    relations: int = Field(ge=1, description="R, the number of relations")
    hops: int = Field(ge=1, le=MAX_HOPS, description="k, relations per chain")
    cot: bool = Field(False, description="chain-of-thought: decode y_1..y_k one step at a time")
    chains: Literal["all"] | list[list[int]] = Field(
        "all", description="all R**k chains, or a list of chains [r_1, .., r_k] (0-based)"
    )
    attributes: Literal["shared"] = Field(
        "shared", description="relations compose, so the attributes are the entities"
    )
    seed: int = Field(0, ge=0, description="seed of every random draw")

    @model_validator(mode="after")
    def _check_chains(self) -> MultiHopInstance:
        if self.chains == "all":
            return self
        if not self.chains:
            raise ValueError("chains: expected 'all' or a non-empty list of chains, got []")
        seen: dict[tuple[int, ...], int] = {}
        for i, chain in enumerate(self.chains):
            if len(chain) != self.hops:
                raise ValueError(
                    f"chains[{i}]: expected {self.hops} relations (hops = {self.hops}), "
                    f"got {len(chain)}: {chain}"
                )
            for r in chain:
                if not 0 <= r < self.relations:
                    raise ValueError(
                        f"chains[{i}]: unknown relation {r}; expected one of "
                        f"0..{self.relations - 1} (relations = {self.relations})"
                    )
            if tuple(chain) in seen:
                raise ValueError(f"chains[{i}]: repeats chains[{seen[tuple(chain)]}] {chain}")
            seen[tuple(chain)] = i
        return self

    @property
    def n_chains(self) -> int:
        """R**k for ``chains: all``, else the length of the list."""
        return self.relations**self.hops if self.chains == "all" else len(self.chains)

    def symbol_values(self) -> dict[str, float]:
        """Values of the formula symbols this instance fixes."""
        return {"N": self.entities, "R": self.relations, "k": self.hops}


Instance = Annotated[BijectionInstance | MultiHopInstance, Field(discriminator="kind")]

SWEEP_ALIASES: dict[str, str] = {"N": "entities", "R": "relations", "k": "hops"}


# --- sweeps: minimal-resource searches (verifier/engine/search.py) ---------------------------


class Minimize(StrictModel):
    """Find the smallest value of an integer field at which ``until`` holds.

    ``minimize: {field: code_dim, until: {accuracy: 1.0}, start: 1, max: 4096}``: doubling from
    ``start`` until ``until`` holds, then bisection; the result records both neighbours.
    """

    field: str = Field(
        description="an integer instance field (N, R, k) or a field that appears once in the "
        "claim (code_dim, d_model, width)"
    )
    until: dict[str, Any] = Field(min_length=1, description="expectations that must hold")
    start: int = Field(1, ge=1, description="first value tried")
    max: int = Field(4096, ge=1, description="largest value tried; also checked by preflight")
    lr_ladder: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = Field(
        None,
        min_length=1,
        max_length=8,
        description="training claims: learning rates tried in turn at each value (optim.lr); "
        "a replicate holds at the first that meets until",
    )

    @model_validator(mode="after")
    def _order(self) -> Minimize:
        if self.max < self.start:
            raise ValueError(f"expected max >= start = {self.start}, got max = {self.max}")
        return self

    @property
    def largest(self) -> bool:
        """Whether the search wants the largest value (``maximize``), not the smallest."""
        return False

    @property
    def measure(self) -> str:
        """The measure the search reports: ``minimum`` or ``maximum``."""
        return "maximum" if self.largest else "minimum"


class Maximize(Minimize):
    """Find the largest value of an integer field at which ``until`` still holds.

    ``maximize: {field: N, until: {accuracy: ">= 0.99"}, start: 16, max: 1024}``: doubling
    from ``start`` while ``until`` holds, then bisection; the result ``v`` holds and ``v + 1``
    fails (a capacity: the most facts a fixed model stores).
    """

    @property
    def largest(self) -> bool:
        """Always: the largest value."""
        return True


# --- claims ----------------------------------------------------------------------------------


class ClaimBase(StrictModel):
    """Fields every claim has."""

    id: str = Field(pattern=IDENT, max_length=80, description="unique within the spec")
    description: str | None = None
    expect: dict[str, Any] = Field(
        default_factory=dict, description="measure: number | word | '<op> formula'"
    )
    sweep: dict[str, list[bool | int | float | str]] | None = Field(
        None, description="grid over instance fields (N, R, k, seed) or claim fields"
    )
    xfail: str | None = Field(None, description="reason this claim is expected to fail")
    minimize: Minimize | None = Field(
        None, description="search the smallest value of a field at which `until` holds"
    )
    maximize: Maximize | None = Field(
        None, description="search the largest value of a field at which `until` holds"
    )

    MEASURES: ClassVar[tuple[str, ...]] = ()
    LABEL_MEASURES: ClassVar[tuple[str, ...]] = ("status",)  # words, not numbers (no growth)
    SYMBOLS: ClassVar[tuple[str, ...]] = tuple(SYMBOLS)
    _expectations: list[Expectation] = PrivateAttr(default_factory=list)

    @field_validator("sweep")
    @classmethod
    def _sweep_not_empty(
        cls, value: dict[str, list[bool | int | float | str]] | None
    ) -> dict[str, list[bool | int | float | str]] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("expected at least one field to sweep, got {}: it checks nothing")
        for name, values in value.items():
            if not values:
                raise ValueError(f"{name}: expected at least one value, got []: it checks nothing")
        return value

    @model_validator(mode="after")
    def _parse_expect(self) -> ClaimBase:
        measures = self.measures()
        known = set(measures)
        parsed = []
        for measure, raw in self.expect.items():
            if measure != "growth" and measure not in known:
                raise ValueError(
                    f"expect.{measure}: unknown measure for a {self.check_kind()} claim; "
                    f"expected one of {', '.join(measures)}"
                )
            try:
                parsed.append(parse_expectation(measure, raw, self.formula_symbols()))
            except SpecError as exc:
                raise ValueError(f"expect.{measure}: {exc.message}") from None
            if measure == "growth":  # validated against the claim (verifier/engine/fits.py)
                try:
                    parse_growth(raw, measures, self.LABEL_MEASURES, list(self.sweep or {}))
                except ValueError as exc:
                    raise ValueError(f"expect.growth: {exc}") from None
        if self.minimize is not None and self.maximize is not None:
            raise ValueError("expected one search per claim, minimize or maximize, got both")
        search = self.search_spec()
        key = "maximize" if self.maximize is not None else "minimize"
        if search is not None and search.field in (self.sweep or {}):
            raise ValueError(
                f"{key}.field: {search.field!r} is searched, so it cannot be swept too; "
                f"expected it in {key} or in sweep, got both"
            )
        if search is not None:  # the search's stopping rule (verifier/engine/search.py)
            for measure, raw in search.until.items():
                if measure not in self.MEASURES:
                    raise ValueError(
                        f"{key}.until.{measure}: unknown measure for a {self.check_kind()} "
                        f"claim; expected one of {', '.join(self.MEASURES)}"
                    )
                try:
                    parse_expectation(measure, raw, self.SYMBOLS)
                except SpecError as exc:
                    raise ValueError(f"{key}.until.{measure}: {exc.message}") from None
        self._expectations = parsed
        return self

    def formula_symbols(self) -> tuple[str, ...]:
        """Symbols ``expect:`` formulas may use (kinds whose symbols depend on fields override)."""
        return self.SYMBOLS

    def measures(self) -> tuple[str, ...]:
        """Measures ``expect:`` may name: the kind's, plus ``minimum`` (``maximum``) under
        ``minimize:`` (``maximize:``)."""
        search = self.search_spec()
        return (*self.MEASURES, search.measure) if search is not None else self.MEASURES

    def search_spec(self) -> Minimize | None:
        """The claim's ``minimize:`` or ``maximize:`` block (a :class:`Maximize` is one)."""
        return self.maximize if self.maximize is not None else self.minimize

    @property
    def expectations(self) -> list[Expectation]:
        """Parsed ``expect:`` entries."""
        return list(self._expectations)

    def check_kind(self) -> str:
        """The ``check:`` tag."""
        return str(getattr(self, "check", "?"))

    def depends_on(self) -> list[str]:
        """Ids of claims whose results this claim needs."""
        return []

    def check_dependency(self, dep: ClaimBase, instance: Any) -> str | None:
        """Why the earlier claim ``dep`` cannot serve this one, or None (kinds override)."""
        return None

    def follows_sweep_of(self) -> str | None:
        """The claim whose sweep points this claim runs at, one result each (kinds override)."""
        return None


class CodebookConstruction(StrictModel):
    """Fields shared by the constructions built from an attribute codebook."""

    codebook: Literal["rademacher", "gaussian", "onehot"] = "rademacher"
    code_dim: int | Literal["auto"] = Field(
        "auto", description="code width m, or auto: the smallest m reaching `margin`"
    )
    margin: float = Field(0.5, gt=0, le=1, description="target margin 1 - mu for auto")

    @field_validator("code_dim")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"expected an integer >= 1 or 'auto', got {value}")
        return value


class GeometricConstruction(CodebookConstruction):
    """G1: attribute codes superposed in relation slots, a ReLU selector MLP, an answer slot."""

    name: Literal["geometric"]


class CompactConstruction(CodebookConstruction):
    """G1 without the answer slot (docs/theory.md 3b): the MLP cancels the relations not asked."""

    name: Literal["compact"]


Construction = Annotated[GeometricConstruction | CompactConstruction, Field(discriminator="name")]


class ConstructionClaim(ClaimBase):
    """Build a construction and run every fact through the real forward pass."""

    check: Literal["construction"]
    construction: Construction

    MEASURES: ClassVar[tuple[str, ...]] = (
        "accuracy",
        "margin",
        "coherence",
        "code_dim",
        "embedding_dim",
        "mlp_width",
        "params",
        "fact_params",
        "n_facts",
        *MULTIHOP_MEASURES,
    )


# --- multi-hop claims (docs/theory.md section 5) --------------------------------------------------


class DepthBudget(StrictModel):
    """A size budget: parameters P, residual width D, or both."""

    params: int | None = Field(None, ge=1, description="P, the parameter budget")
    embedding_dim: int | Literal["cot"] | None = Field(
        None, description="D, the d_model budget; cot: Ck's d at the construction's code width"
    )

    @model_validator(mode="after")
    def _some_budget(self) -> DepthBudget:
        if self.params is None and self.embedding_dim is None:
            raise ValueError("budget: expected params, embedding_dim or both, got neither")
        if isinstance(self.embedding_dim, int) and self.embedding_dim < 1:
            raise ValueError(
                f"budget.embedding_dim: expected >= 1 or 'cot', got {self.embedding_dim}"
            )
        return self


class BudgetClaim(ClaimBase):
    """At a size budget, the largest depth the instance's mode (cot or not) solves exactly.

    Depth k is solved when the mode's construction, at the largest code width up to the
    construction's own that fits the budget, recalls all N*|C| queries of depth k through the
    real forward pass. ``depth`` is the largest k with every depth 1..k solved.
    """

    check: Literal["budget"]
    construction: GeometricConstruction
    budget: DepthBudget
    max_hops: int | None = Field(
        None, ge=1, le=MAX_HOPS, description="deepest k searched; default: the instance's hops"
    )

    MEASURES: ClassVar[tuple[str, ...]] = (
        "depth",  # largest k with every depth 1..k solved within the budget
        "saturated",  # depth reached max_hops
        "failed_at",  # the first depth not solved (none when saturated)
        "accuracy",  # at the instance's own hops, within the budget
        "margin",
        "code_dim",
        "embedding_dim",
        "params",
        "budget_params",  # P
        "budget_dim",  # D (cot resolved to a number)
    )
    SYMBOLS: ClassVar[tuple[str, ...]] = (*SYMBOLS, "P", "D")


# --- feasibility claims: convex certificates (docs/theory.md section 6) ---------------------------


class FeasibilityClaim(ClaimBase):
    """A convex program answered by a checked primal/dual sandwich.

    ``codebook_margin`` (P1) and ``reembed`` (P2) take a G1 ``construction``;
    ``associative_width`` (P3) takes ``embed_dim`` and ``width``. ``code_dim: auto`` (P1, and
    P2: the G1 network's code width, so ``d = R m + R + m``) and ``width: auto`` (P3) search
    the minimum and report it with both neighbours.
    """

    check: Literal["feasibility"]
    program: Literal["codebook_margin", "reembed", "associative_width"]
    construction: GeometricConstruction | None = Field(
        None, description="P1, P2: the G1 codebook (and, for P2, the frozen network)"
    )
    min_margin: float = Field(
        1e-6, gt=0, description="status is feasible when the certified margin is at least this"
    )
    box: float | None = Field(
        None, gt=0, description="P1: |v|_inf <= box (default max |a_ji|); P3: |W_out|_inf (1)"
    )
    embed_dim: int = Field(8, ge=1, description="P3: width d of the frozen random embeddings")
    width: int | Literal["auto"] = Field("auto", description="P3: MLP width w, or auto: minimal")
    start: Literal["current", "zero"] = Field(
        "current", description="P2: start from the network's own subject rows, or from zero"
    )
    max_rounds: int = Field(4, ge=1, le=50, description="P2: linearisations per subject")
    solver: Literal["highs", "clarabel"] = Field("highs", description="LP solver tried first")
    fallback: bool = Field(True, description="try the other solver when the first fails")

    MEASURES: ClassVar[tuple[str, ...]] = (
        "status",  # feasible | infeasible | undecided (P2: feasible | not_found)
        "margin",  # the sandwich, judged soundly: lower for >=, upper for <=
        "margin_lower",
        "margin_upper",
        "min_code_dim",  # P1, P2: code_dim auto
        "min_d_model",  # P2, code_dim auto: the G1 network's d_model at min_code_dim
        "min_width",  # P3, width auto
        "max_violation",  # the solver's raw infeasibility before the float64 repair
        "accuracy",  # P2, P3: new facts recalled by the forward pass
        "code_dim",
        "width",
        "n_facts",
    )
    SYMBOLS: ClassVar[tuple[str, ...]] = (*SYMBOLS, "w")  # w: P3's MLP width

    @model_validator(mode="after")
    def _program_fields(self) -> FeasibilityClaim:
        if self.program in ("codebook_margin", "reembed") and self.construction is None:
            raise ValueError(
                f"program {self.program}: expected a construction {{name: geometric, ...}}, "
                "got none"
            )
        if self.program == "associative_width" and self.construction is not None:
            raise ValueError(
                "program associative_width: expected no construction (its network is random), "
                "got one"
            )
        if (
            self.program == "codebook_margin"
            and self.construction is not None
            and (self.construction.margin != GeometricConstruction.model_fields["margin"].default)
        ):
            raise ValueError(
                "construction.margin is G1's coherence target; for program codebook_margin "
                "set min_margin instead"
            )
        for e in self.expectations:
            if e.measure == "status" and e.kind == "label" and e.value not in _STATUS_WORDS:
                raise ValueError(
                    f"expect.status: expected one of {', '.join(_STATUS_WORDS)}, got {e.value!r}"
                )
        if isinstance(self.width, int) and self.width < 1:
            raise ValueError(f"width: expected an integer >= 1 or 'auto', got {self.width}")
        return self


_STATUS_WORDS = ("feasible", "infeasible", "undecided", "not_found")


# --- training and transfer claims (docs/theory.md section 7; verifier/train/) ----------

WeightName = Literal[
    "W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "b_in", "W_out", "b_out", "W_U"
]
MECHANISM_MEASURES: tuple[str, ...] = (
    "superposition_r2",  # 8-fold cross-validated R^2 of e_s ~ b + sum_r M_r u_(pi_r(s))
    "probe_accuracy",  # held-out component decoding: argmin_j |e_s - b - M_r u_j|
    "functional_superposition",  # facts recalled with e_s replaced by its held-out fit
    "selector_linearity",  # held-out R^2 of an affine fit of MLP output on e_s, per relation
    "gated_fraction",  # MLP units off for one relation and on for another
    "intervention_success",  # swapping relation r's component changes only relation r
)


InitName = Literal[
    "W_E", "W_E_relations", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U"
]
Multiplier = Annotated[float, Field(ge=0, allow_inf_nan=False)]
RequireRule = Literal["all", "majority", "median"]
MAX_REPLICATES = 32  # seeds per claim; the work is also bounded by max_replicates (limits)


class TrainingModel(StrictModel):
    """Shape, attention and initialisation of the trained model (docs/theory.md section 2)."""

    d_model: int = Field(ge=1, description="residual width d")
    d_mlp: int = Field(ge=1, description="MLP width")
    heads: int = Field(1, ge=1, description="attention heads H")
    d_head: int | None = Field(None, ge=1, description="default d_model // heads")
    init_scale: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="multiplies the fan-in scaled init"
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
    lr: float | None = Field(None, gt=0, allow_inf_nan=False, description="learning rate")
    momentum: float | None = Field(None, ge=0, lt=1, description="sgd only")
    weight_decay: float | None = Field(None, ge=0, allow_inf_nan=False)
    per_subject: bool = Field(
        False,
        description="W_E only: each subject row steps on its own mean loss (its gradient times "
        "N), so one setting works at every N",
    )


class TrainingOptim(StrictModel):
    """Optimiser settings; training stops early at exact recall with loss <= stop_loss."""

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(gt=0, allow_inf_nan=False, description="learning rate")
    steps: int = Field(ge=1, description="the most optimiser steps")
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup: int = Field(0, ge=0, description="linear warmup steps")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)
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
        "re-initialised from it; trained together as one batched model",
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
            wanted = sorted(named & set(MECHANISM_MEASURES))
            if wanted:
                raise ValueError(
                    f"mechanism: false skips the mechanism measures; expected none in expect "
                    f"or until, got {', '.join(wanted)}"
                )
        return self


class RelearnOptim(StrictModel):
    """How ``relearn`` trains the subject table (the rest of the network stays frozen)."""

    optimizer: Literal["adam", "adamw", "sgd"] | None = None
    lr: float | None = Field(None, gt=0, allow_inf_nan=False)
    momentum: float | None = Field(None, ge=0, lt=1)
    weight_decay: float | None = Field(None, ge=0, allow_inf_nan=False)
    per_subject: bool | None = None
    steps: int = Field(500, ge=1, description="the most relearning steps")


class TransferClaim(ClaimBase):
    """Re-initialise (or relearn) only the subject table of a trained model for new bijections.

    ``probe``, ``lp`` and ``random`` re-initialise the subject rows and train nothing.
    ``relearn`` starts from the probe rows (``start: probe``) or from random rows and trains
    only the subject table on the new facts, everything else frozen; by default with the
    ``from`` claim's ``W_E`` optimiser settings. Its control (``control_from``) is the same
    relearning on another trained model, typically the frozen-embedding (associative) one.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    check: Literal["transfer"]
    from_: str = Field(alias="from", pattern=IDENT, description="id of an earlier training claim")
    method: Literal["probe", "lp", "random", "relearn"] = Field(
        "probe",
        description="probe: b + sum_r M_r u_(pi'_r(s)); lp: P2; random: the control; relearn: "
        "train the subject table only",
    )
    transfer_seed: int = Field(1, ge=0, description="seed of the new bijections")
    start: Literal["probe", "random"] = Field(
        "probe", description="relearn: the subject rows it starts from"
    )
    relearn: RelearnOptim | None = Field(
        None, description="relearn: optimiser and step budget (default: from's W_E settings)"
    )
    control_from: str | None = Field(
        None,
        pattern=IDENT,
        description="relearn: an earlier training claim relearned the same way as the control",
    )
    require: RequireRule | None = Field(
        None, description="how the replicates meet expect; default the from claim's rule"
    )

    MEASURES: ClassVar[tuple[str, ...]] = (
        "accuracy",  # exact recall of every new fact
        "margin",
        "control_accuracy",  # the random re-initialisation (relearn: the control model)
        "advantage",  # accuracy - control_accuracy
        "fit_r2",  # probe: in-sample R^2 of the superposition fit on the old facts
        "n_facts",
        "steps_to_perfect",  # relearn: first step with every new fact right (float32)
        "control_steps_to_perfect",  # relearn: the same on the control_from model
        "start_accuracy",  # relearn: exact recall from the starting rows, before any step
    )

    @model_validator(mode="after")
    def _no_grid(self) -> TransferClaim:
        if self.sweep or self.search_spec():
            raise ValueError(
                "transfer claims take no sweep, minimize or maximize; sweep the training claim "
                "in `from`"
            )
        if self.method != "relearn":
            for name in ("relearn", "control_from"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name}: only method relearn takes it, got method {self.method}"
                    )
        return self

    def depends_on(self) -> list[str]:
        """The training claim, and the control's."""
        return [self.from_] + ([self.control_from] if self.control_from else [])

    def follows_sweep_of(self) -> str | None:
        """A swept ``from`` claim: this claim runs at each of its points."""
        return self.from_

    def check_dependency(self, dep: ClaimBase, instance: Any) -> str | None:
        """``from`` must name a training claim without minimize (a sweep is followed point by
        point; ``control_from`` must have the same sweep), and the probe must be determined."""
        field = "from" if dep.id == self.from_ else "control_from"
        if not isinstance(dep, TrainingClaim):
            return (
                f"{field}: expected the id of a training claim, got {dep.id!r}, "
                f"a {dep.check_kind()} claim"
            )
        if dep.search_spec():
            return f"{field}: expected a training claim without a search, got {dep.id!r}"
        n, r, d = instance.entities, instance.relations, dep.model.d_model
        probe = self.method == "probe" or (self.method == "relearn" and self.start == "probe")
        if probe and n <= r * d + 1:
            how = "probe" if self.method == "probe" else "relearn (start: probe)"
            return (
                f"method: {how} is underdetermined: its fit needs N > R*d + 1 = {r * d + 1} "
                f"subjects (d = d_model of {dep.id!r}), got N = {n}"
            )
        return None


# --- bound claims (verifier/theory/, docs/theory.md sections 3-5) ----------------------


def _claim_measures() -> set[str]:
    """Every measure some claim kind reports (what ``measured_<name>`` may name)."""
    names: set[str] = set()
    stack: list[type[ClaimBase]] = [ClaimBase]
    while stack:
        cls = stack.pop()
        names.update(cls.MEASURES)
        stack.extend(cls.__subclasses__())
    return names


class BoundClaim(ClaimBase):
    """Evaluate a registry theorem's quantities at the instance (verifier/theory/__init__.py).

    Measures: the theorem's quantities by name, ``versus`` theorems' as ``<ID>_<name>``, the
    inline ``quantities``, ``measured_<name>`` for the ``against`` claim's numeric measures, and
    for asymptotic claims ``limit``/``limit_finite`` (``limit:``) or ``order_holds`` (``order:``,
    expected true unless stated). Formulas may use all of these and the theorems' symbols.
    """

    check: Literal["bound"]
    theorem: str | None = Field(None, description="registry id (see `verifier theorems`)")
    versus: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="more theorems; formulas use their quantities as <ID>_<name>",
    )
    given: dict[str, int | float | str] = Field(
        default_factory=dict,
        description="given symbols: precision_bits, delta, gamma, code_dim, params (number or "
        "formula over N, R, k)",
    )
    against: str | None = Field(
        None, description="an earlier claim; its numeric measures are measured_<name>"
    )
    quantities: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="user quantities, name: formula"
    )
    limit: str | None = Field(None, description="formula whose limit as `over` -> oo is measured")
    order: str | None = Field(
        None, description="'f = Theta(g)' (O, Theta, Omega, o, omega) as `over` -> oo"
    )
    over: Literal["N", "R", "k"] = Field("N", description="the variable of limit and order")

    @field_validator("theorem")
    @classmethod
    def _known_theorem(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                theory.get_theorem(value)
            except SpecError as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("versus")
    @classmethod
    def _known_versus(cls, value: list[str]) -> list[str]:
        for i, theorem_id in enumerate(value):
            try:
                theory.get_theorem(theorem_id)
            except SpecError as exc:
                raise ValueError(f"versus[{i}]: {exc.message}") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_order_expectation(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("order") is not None:
            expect = data.get("expect") or {}
            if isinstance(expect, Mapping) and "order_holds" not in expect:
                data = {**data, "expect": {**expect, "order_holds": True}}
        return data

    @model_validator(mode="after")
    def _check_bound(self) -> BoundClaim:
        if self.theorem is None and not self.quantities:
            raise ValueError("expected `theorem: <id>` or inline `quantities:`, got neither")
        if self.limit is not None and self.order is not None:
            raise ValueError("expected one of limit and order per claim, got both")
        if self.limit is not None and not {"limit", "limit_finite"} & set(self.expect):
            raise ValueError(
                "limit: expected an expectation on limit or limit_finite, for example "
                "expect: {limit: 0} or expect: {limit_finite: true}"
            )
        if self.search_spec() is not None:
            raise ValueError("bound claims take no minimize or maximize")
        try:
            theory.claim_vocabulary(self, _claim_measures())
        except SpecError as exc:
            raise ValueError(exc.message) from None
        return self

    def measures(self) -> tuple[str, ...]:
        """Quantity names (own, versus-qualified, inline), measured_*, asymptotic measures."""
        try:
            return theory.claim_vocabulary(self, _claim_measures()).measures
        except SpecError as exc:
            raise ValueError(exc.message) from None

    def formula_symbols(self) -> tuple[str, ...]:
        """Instance symbols, the theorems' symbols, and every measure name."""
        try:
            return theory.claim_vocabulary(self, _claim_measures()).symbols
        except SpecError as exc:
            raise ValueError(exc.message) from None

    def depends_on(self) -> list[str]:
        """The ``against`` claim."""
        return [self.against] if self.against else []

    def check_dependency(self, dep: ClaimBase, instance: Any) -> str | None:
        """A swept ``against`` claim needs the same sweep here (compared point by point)."""
        if dep.search_spec() is not None:
            return f"against: expected a claim without minimize or maximize, got {dep.id!r}"
        if dep.sweep and dep.sweep != self.sweep:
            return (
                f"against: {dep.id!r} has sweep {dep.sweep}; expected this claim to have the "
                f"same sweep, got {self.sweep}"
            )
        return None


Claim = Annotated[
    ConstructionClaim | BudgetClaim | FeasibilityClaim | TrainingClaim | TransferClaim | BoundClaim,
    Field(discriminator="check"),
]


# --- specs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a spec came from, with the line of each claim."""

    file: str
    text: str
    claim_lines: dict[str, int] = field(default_factory=dict)
    instance_line: int | None = None


class Spec(StrictModel):
    """A named instance and the claims made about it."""

    name: str = Field(pattern=IDENT, max_length=120)
    description: str | None = None
    instance: Instance
    claims: list[Claim] = Field(min_length=1)

    _source: Source | None = PrivateAttr(None)

    @property
    def source(self) -> Source:
        """The file and lines this spec was loaded from."""
        return self._source or Source(file="<spec>", text="")

    def claim(self, claim_id: str) -> ClaimBase:
        """The claim with this id."""
        for claim in self.claims:
            if claim.id == claim_id:
                return claim
        raise KeyError(claim_id)

    def content_hash(self) -> str:
        """sha256 of the validated spec, canonical JSON (key order and comments do not count)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def spec_schema() -> dict[str, Any]:
    """JSON Schema of the spec language."""
    return Spec.model_json_schema()


def parse_spec(data: Any, file: str = "<spec>", text: str = "") -> Spec:
    """Validate loaded data into a :class:`Spec`, raising errors with file and line.

    Raises:
        SpecError: every validation error, each with its key and line (the first is the
            error's location); duplicate claim ids; unknown claim references.
    """
    if not isinstance(data, Mapping):
        raise SpecError(
            f"expected a mapping with name, instance and claims, got {type(data).__name__}",
            file=file,
            line=1,
        )
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise spec_error(exc, Spec, data, file) from None
    claims_data = data.get("claims", [])
    lines = {
        claim.id: getattr(claims_data[i], "line", None) or 1 for i, claim in enumerate(spec.claims)
    }
    seen: dict[str, int] = {}
    for i, claim in enumerate(spec.claims):
        line = getattr(claims_data[i], "line", None)
        if claim.id in seen:
            raise SpecError(
                f"duplicate claim id {claim.id!r} (first at claims.{seen[claim.id]})",
                file=file,
                line=line,
                key=f"claims.{i}.id",
            )
        seen[claim.id] = i
    for i, claim in enumerate(spec.claims):
        for dep in claim.depends_on():
            if dep not in seen or seen[dep] >= i:
                raise SpecError(
                    f"refers to claim {dep!r}, which is not an earlier claim of this spec; "
                    f"expected one of {', '.join(list(seen)[:i]) or '(none)'}",
                    file=file,
                    line=getattr(claims_data[i], "line", None),
                    key=f"claims.{i}",
                )
            if problem := claim.check_dependency(spec.claims[seen[dep]], spec.instance):
                line = getattr(claims_data[i], "line", None)
                raise SpecError(problem, file=file, line=line, key=f"claims.{i}")
        followed = claim.follows_sweep_of()
        if followed is not None and followed in seen:
            sweep = spec.claims[seen[followed]].sweep
            for dep in claim.depends_on():
                other = spec.claims[seen[dep]].sweep if dep in seen else None
                if dep != followed and other != sweep:
                    raise SpecError(
                        f"{dep!r} has sweep {other}; expected the sweep of {followed!r} "
                        f"({sweep}), whose points this claim runs at",
                        file=file,
                        line=getattr(claims_data[i], "line", None),
                        key=f"claims.{i}",
                    )
    instance_line = data.key_lines.get("instance") if isinstance(data, LineDict) else None
    spec._source = Source(file=file, text=text, claim_lines=lines, instance_line=instance_line)
    return spec


def load_spec_text(text: str, file: str = "<spec>", max_bytes: int | None = None) -> Spec:
    """Parse YAML (or JSON) text into a validated :class:`Spec`.

    Raises:
        SpecError: oversized, malformed, or invalid, always with file and line where known.
    """
    size = len(text.encode())
    if max_bytes is not None and size > max_bytes:
        raise SpecError(
            f"spec is {size:,} bytes, over the limit max_spec_bytes = {max_bytes:,}", file=file
        )
    return parse_spec(load_yaml(text, file), file=file, text=text)


def load_spec_file(path: str | Path, max_bytes: int | None = None) -> Spec:
    """Read and validate one spec file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror}", file=str(p)) from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise SpecError(
            f"spec is {len(raw):,} bytes, over the limit max_spec_bytes = {max_bytes:,}",
            file=str(p),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"expected UTF-8 text, got a bad byte at offset {exc.start}", file=str(p)
        ) from None
    return load_spec_text(text, file=str(p))
