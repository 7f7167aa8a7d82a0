"""The work a claim point asks for, estimated before anything runs: flops and peak memory.

An estimate is an upper-bound style count of the dominant arithmetic, not a measurement:

- training: ``replicates * steps * 3 * forward(batch)`` (backward ~ twice the forward), plus
  the float64 exact-recall pass; a forward of one example through the one-layer transformer
  is ``2 * (n_ctx * (4 d^2 + 2 d d_mlp) + d n_out)``. Early stopping makes the real run
  shorter, never longer. Memory: the replicates' weights with gradients and Adam moments
  (4 float32 copies), and the batch's activations.
- construction: the float64 forward over every fact (or query), and for ``code_dim: auto``
  the ``A x A`` Gram matrix per width tried (about ``2 log2 m_max`` widths).
- feasibility: each LP of ``rows x cols`` costs ``50 rows cols min(rows, cols)`` (iterations
  of the solver, each factorising its normal equations), one per subject for P2; memory its
  matrix three times over and the normal equations, in float64.
- bound, budget: closed forms and small sums: a constant; a ``limit:`` or ``order:`` is
  sympy's work, a larger constant.
- every point: a fixed overhead (set-up that is not arithmetic), as flop-equivalents.
- transfer: its reading of the trained model (a forward and, for ``lp``, a P2 per subject).

A claim's cost is the sum over its sweep points; a search multiplies its point by the
number of values it may try. :meth:`verifier.engine.runner.SpecRunner.preflight` refuses a
claim over ``max_job_flops`` or ``max_job_memory`` (peak: the largest point's, since points
run one after another in one process).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

from verifier.spec import BijectionInstance, MultiHopInstance

FLOAT32, FLOAT64 = 4, 8
LP_ITERATIONS = 50  # interior-point / simplex passes over the matrix, a rough constant
SMALL = 1e6  # flops of a closed form or a small sum
# Fixed costs that are not arithmetic (Python, solver and sympy set-up), as flop-equivalents at
# the ~3.5e9 flops/s of one core of the reference machine (bench/cost_bench.py measures it):
POINT_OVERHEAD = 1e8  # any claim point: about 0.03 s
ASYMPTOTIC = 1e10  # a bound claim's sympy limit or order: about 3 s


@dataclass(frozen=True)
class Cost:
    """Floating-point operations and peak memory (bytes) of some work."""

    flops: float
    memory: float

    def __add__(self, other: Cost) -> Cost:
        """Work done one after the other: flops add, the peak is the larger."""
        return Cost(self.flops + other.flops, max(self.memory, other.memory))

    def times(self, k: float) -> Cost:
        """``k`` repetitions one after the other."""
        return Cost(self.flops * k, self.memory)


ZERO = Cost(0.0, 0.0)


def point_cost(instance: Any, claim: Any) -> Cost:
    """The estimated work of one claim point (see the module for the model of each kind),
    with its fixed overhead."""
    kind = str(getattr(claim, "check", ""))
    if kind == "training":
        cost = _training(instance, claim)
    elif kind == "construction":
        cost = _construction(instance, claim)
    elif kind == "feasibility":
        cost = _feasibility(instance, claim)
    elif kind == "transfer":
        cost = _transfer(instance, claim)
    else:  # bound, budget: closed forms; a limit or an order is sympy's work
        asymptotic = getattr(claim, "limit", None) or getattr(claim, "order", None)
        cost = Cost(ASYMPTOTIC if asymptotic else SMALL, 64e6)
    return Cost(cost.flops + POINT_OVERHEAD, cost.memory)


def claim_cost(points: list[tuple[Any, Any]], search_values: int = 1) -> Cost:
    """The work of every point of a claim, one after another; ``search_values``: how many
    values a minimize/maximize search may try at each point."""
    total = ZERO
    for instance, claim in points:
        total = total + point_cost(instance, claim).times(search_values)
    return total


def search_values(start: int, largest: int) -> int:
    """Values a doubling-then-bisection search from ``start`` to ``largest`` may try."""
    doublings = max(1, math.ceil(math.log2(max(largest, 1) / max(start, 1))) + 1)
    return 2 * doublings


def _examples(instance: BijectionInstance | MultiHopInstance) -> tuple[int, int, int]:
    """(examples per pass, context length, output classes)."""
    if isinstance(instance, MultiHopInstance):
        per_query = instance.hops if instance.cot else 1
        n_ctx = instance.hops + 1 + (instance.hops - 1 if instance.cot else 0)
        return instance.entities * instance.n_chains * per_query, n_ctx, instance.entities
    n_out = instance.entities * (instance.relations if instance.attributes == "disjoint" else 1)
    return instance.entities * instance.relations, 2, n_out


def _kind_module(kind: str) -> Any:
    """``verifier.checks.<kind>``, imported by name when its claims are estimated.

    By name, not by an import statement: a verdict's key covers the modules its kind's import
    graph reaches (:mod:`verifier.codekey`), and the runner imports this module for every kind.
    An estimate only admits or refuses work and never enters a verdict, so a bound claim's key
    must not cover the trainer because training claims are estimated here.
    """
    return importlib.import_module(f"verifier.checks.{kind}")


def _forward_flops(n_ctx: int, d: int, d_mlp: int, n_out: int) -> float:
    return 2.0 * (n_ctx * (4 * d * d + 2 * d * d_mlp) + d * n_out)


def _training(instance: Any, claim: Any) -> Cost:
    training = _kind_module("training")
    model_params, train_config = training.model_params, training.train_config

    cfg = train_config(instance, claim)
    examples, n_ctx, n_out = _examples(instance)
    batch = min(cfg.batch_size or examples, examples)
    replicates = len(claim.seeds) if claim.seeds else 1
    fwd = _forward_flops(n_ctx, cfg.d_model, cfg.d_mlp, n_out)
    evaluations = 0 if cfg.batch_size is None else cfg.steps // max(cfg.eval_every, 1)
    flops = replicates * (cfg.steps * 3 * fwd * batch + (evaluations + 1) * fwd * examples)
    params = model_params(instance.entities + instance.relations, n_out, cfg, n_ctx)
    activations = batch * (n_ctx * (6 * cfg.d_model + 2 * cfg.d_mlp) + 3 * n_out)
    memory = replicates * (4 * params + activations) * FLOAT32
    return Cost(flops, memory)


def _construction(instance: Any, claim: Any) -> Cost:
    construction = _kind_module("construction")
    attribute_count = construction.attribute_count
    construction_size = construction.construction_size

    spec = claim.construction
    examples, n_ctx, n_out = _examples(instance)
    if isinstance(instance, MultiHopInstance):
        m = 64 if spec.code_dim == "auto" else int(spec.code_dim)
        d = w = instance.relations * m + m
        return Cost(_forward_flops(n_ctx, d, w, n_out) * examples, examples * n_out * FLOAT64)
    n_attr = attribute_count(instance)
    if spec.code_dim == "auto" or getattr(spec, "codebook", "") == "onehot":
        m = n_attr if getattr(spec, "codebook", "") == "onehot" else _auto_width(n_attr)
    else:
        m = int(spec.code_dim)
    d, w, params = construction_size(instance, spec.name, m)
    flops = _forward_flops(n_ctx, d, w, n_out) * examples
    memory = (params + min(examples, 4096) * (n_ctx * (d + w) + n_out)) * FLOAT64
    if spec.code_dim == "auto" and getattr(spec, "codebook", "") != "onehot":
        tried = search_values(1, m)
        flops += tried * 2.0 * n_attr * n_attr * m
        memory = max(memory, n_attr * n_attr * FLOAT64)
    return Cost(flops, memory)


def _auto_width(n_attr: int) -> int:
    """The width ``code_dim: auto`` ends near: O(log A / margin^2), taken as 16 log2 A."""
    return max(8, 16 * math.ceil(math.log2(max(n_attr, 2))))


def _feasibility(instance: Any, claim: Any) -> Cost:
    construction = _kind_module("construction")
    attribute_count, geometric_size = construction.attribute_count, construction.geometric_size

    n_attr = attribute_count(instance)
    spec = claim.construction
    fixed = spec is not None and spec.code_dim != "auto"
    m = int(spec.code_dim) if fixed else _auto_width(n_attr)
    d, w, params = geometric_size(instance, m)
    if claim.program == "codebook_margin":
        rows, cols = n_attr - 1, m + 1
        programs = 1 if fixed else search_values(1, m)
    elif claim.program == "reembed":
        rows, cols = instance.relations * (n_attr - 1 + w), d + 1
        programs = instance.entities
    else:  # associative_width: one LP per width tried, over N facts
        width = claim.width if isinstance(claim.width, int) else 4 * n_attr
        rows, cols = instance.entities * instance.relations, width + 1
        programs = 1 if isinstance(claim.width, int) else search_values(1, width)
    flops = programs * lp_flops(rows, cols) + _forward_flops(2, d, w, n_attr) * (
        instance.entities * instance.relations
    )
    return Cost(flops, lp_memory(rows, cols) + params * FLOAT64)


def lp_flops(rows: int, cols: int) -> float:
    """One LP solve: ``LP_ITERATIONS`` factorisations of its normal equations, each about
    ``rows * cols * min(rows, cols)``."""
    return LP_ITERATIONS * float(rows) * cols * min(rows, cols)


def lp_memory(rows: int, cols: int) -> float:
    """One LP: its matrix three times (the solver's copies) and the normal equations."""
    return (3.0 * rows * cols + float(min(rows, cols)) ** 2) * FLOAT64


def _transfer(instance: Any, claim: Any) -> Cost:
    """A forward over every fact at a modest width; ``lp`` solves a P2 per subject. The trained
    model's size is the source claim's, which the runner does not pass here: a bound of
    ``d = d_mlp = 512`` stands in."""
    examples, n_ctx, n_out = _examples(instance)
    fwd = _forward_flops(n_ctx, 512, 512, n_out) * examples
    if getattr(claim, "method", "") == "lp":
        rows, cols = instance.relations * (n_out + 512), 513
        return Cost(fwd + instance.entities * lp_flops(rows, cols), lp_memory(rows, cols))
    relearn = getattr(claim, "relearn", None)
    steps = 0
    if getattr(claim, "method", "") == "relearn":
        steps = relearn.steps if relearn is not None else 500  # RelearnOptim's default
    return Cost(fwd * (1 + 3 * steps), examples * n_out * FLOAT32 * 3)
