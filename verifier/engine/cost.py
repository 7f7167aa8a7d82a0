"""The work a claim point asks for, estimated before anything runs: flops and peak memory.

Each estimate carries two figures of work. ``flops`` is the worst case, what a refusal over
``max_job_flops`` is judged on: every training step, every fact through the full logits.
``expected`` is the likely work of the same run, what bench/cost_bench.py sets beside measured
time: training stops early, claims that train the same models share one training, and the
certified recall path decides most facts without the N-wide unembedding. Memory is the peak
of what the code holds at once (chunked passes count their chunk, not the whole).

- training: ``replicates * steps * 3 * forward(batch)`` (backward ~ twice the forward), plus
  the float64 exact-recall pass; a forward of one example through the one-layer transformer
  is ``2 * (n_ctx * (4 d^2 + 2 d d_mlp) + d n_out)``. Expected: the run stops at
  ``max(min_steps, STOP_SHARE * K)`` steps when the claim expects ``steps_to_perfect <= K``
  (at most ``steps``; every step without such a bound), and a claim whose models another claim
  of the spec trained already (same instance, model, optimiser and seeds) pays only its
  measurement. Memory: the replicates' weights with gradients and Adam moments (4 float32
  copies), and the batch's activations.
- construction (bijection): the code search (``code_dim: auto``: its last scan multiplies
  every pair of codes, ``A^2 m``), then every fact's forward pass to the final residual and
  its certified bound (verifier/measure/certified.py); facts the bound does not decide, and
  those that pin down the minimum margin (at most ``RESOLVE_CAP``), go through the full
  logits. The worst case sends every fact there (the brute force). Memory: the model, a batch,
  two floats per fact, and one row block of the scan or Gram pass.
  On multi-hop instances: the float64 forward over every query.
- feasibility: P1 solves one LP per target attribute, ``(A - 1) x (m + 1)``, per width tried;
  P2 one per subject; each costs ``LP_SETUP`` (the solver's and cvxpy's set-up) plus
  ``LP_ITERATIONS rows cols min(rows, cols)``. P3 (highspy, sparse) is priced by its nonzeros
  (:func:`p3_flops`, :func:`p3_memory`), as its limit ``max_lp_entries`` counts them.
- bound, budget: closed forms and small sums: a constant; a ``limit:`` or ``order:`` is
  sympy's work, a larger constant.
- every point: a fixed overhead (set-up that is not arithmetic), as flop-equivalents.
- transfer: its reading of the trained model (a forward and, for ``lp``, a P2 per subject).

A claim's cost is the sum over its sweep points; a search multiplies its point by the
number of values it may try. :meth:`verifier.engine.runner.SpecRunner.preflight` refuses a
claim over ``max_job_flops`` or ``max_job_memory`` (peak: the largest point's, since points
run one after another in one process). The constants are calibrated by bench/cost_bench.py
(flop-equivalents; bench/cost_bench.py measured 1.4e10 flops/s, one thread, on the reference
machine on 2026-12-06, so 1e10 is about 0.7 s there).
"""

from __future__ import annotations

import importlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from verifier.spec import BijectionInstance, MultiHopInstance

FLOAT32, FLOAT64 = 4, 8
LP_ITERATIONS = 50  # interior-point / simplex passes over the matrix, a rough constant
LP_SETUP = 2e7  # one dense LP's set-up (the solver's start)
P3_NNZ_FLOPS = 300.0  # flop-equivalents per nonzero per sqrt(nonzeros) of a P3 solve (highspy)
P3_NNZ_BYTES = 250.0  # peak bytes per nonzero of a P3 solve (150 measured at 2.8M and 11M)
P3_LIKELY_SOLVES = 5  # widths a P3 search solves near its guess (g, g -+ 1, g -+ 3, ...)
SMALL = 1e6  # flops of a closed form or a small sum
POINT_OVERHEAD = 6e9  # a numeric claim point's set-up (models, programs, measures)
CLOSED_FORM_OVERHEAD = 1e8  # a bound or budget point's
ASYMPTOTIC = 2e10  # a bound claim's sympy limit or order
STOP_SHARE = 0.3  # the share of its steps_to_perfect bound a training run is expected to take
RESOLVE_CAP = 16_384  # as verifier/measure/certified.py: facts run to pin the margin
SCAN_BYTES = 2 * (1 << 24) * FLOAT32  # one row block of the code search's scan, and its mask
BATCH = 512  # facts per forward batch of the construction check


@dataclass(frozen=True)
class Cost:
    """Floating-point operations and peak memory (bytes) of some work.

    ``flops`` is the worst case (what limits judge); ``expected`` the likely work (None: the
    worst case is the likely one)."""

    flops: float
    memory: float
    expected: float | None = None

    @property
    def likely(self) -> float:
        """The expected flops (the worst case when none was estimated)."""
        return self.flops if self.expected is None else self.expected

    def __add__(self, other: Cost) -> Cost:
        """Work done one after the other: flops add, the peak is the larger."""
        return Cost(
            self.flops + other.flops, max(self.memory, other.memory), self.likely + other.likely
        )

    def times(self, k: float) -> Cost:
        """``k`` repetitions one after the other."""
        return Cost(self.flops * k, self.memory, self.likely * k)


ZERO = Cost(0.0, 0.0)


def point_cost(
    instance: Any, claim: Any, trained: set[str] | None = None, source: Any = None
) -> Cost:
    """The estimated work of one claim point (see the module for the model of each kind),
    with its fixed overhead. ``trained``: keys of the trainings earlier claims of the same
    run already pay for (updated here); such a training is not expected to run twice.
    ``source``: the training claim a transfer claim reads (its model's size)."""
    return _point_work(instance, claim, trained, source) + _overhead(claim)


def _overhead(claim: Any) -> Cost:
    """A point's fixed set-up, as flop-equivalents: numeric kinds build models and programs,
    a closed form (bound, budget) is cheap."""
    fixed = POINT_OVERHEAD if _numeric(claim) else CLOSED_FORM_OVERHEAD
    return Cost(fixed, 0.0)


def _numeric(claim: Any) -> bool:
    """Whether a point builds models or programs: every kind but a closed form (a budget
    claim with a construction checks it through the forward pass)."""
    kind = str(getattr(claim, "check", ""))
    return kind in _NUMERIC or getattr(claim, "construction", None) is not None


_NUMERIC = frozenset({"training", "construction", "feasibility", "transfer"})


def _point_work(instance: Any, claim: Any, trained: set[str] | None, source: Any) -> Cost:
    """One point's work without its fixed set-up."""
    kind = str(getattr(claim, "check", ""))
    if kind == "training":
        return _training(instance, claim, trained if trained is not None else set())
    if kind == "construction" or (kind == "budget" and _numeric(claim)):
        return _construction(instance, claim)
    if kind == "feasibility":
        return _feasibility(instance, claim)
    if kind == "transfer":
        return _transfer(instance, claim, source)
    # bound, budget: closed forms; a limit or an order is sympy's work
    asymptotic = getattr(claim, "limit", None) or getattr(claim, "order", None)
    return Cost(ASYMPTOTIC if asymptotic else SMALL, 64e6)


def claim_cost(
    points: list[tuple[Any, Any]],
    search_values: int = 1,
    trained: set[str] | None = None,
    source: Any = None,
) -> Cost:
    """The work of every point of a claim, one after another; ``search_values``: how many
    values a minimize/maximize search may try at each point (its fixed set-up is paid once);
    ``trained`` and ``source``: as for :func:`point_cost`, ``trained`` shared by the claims of
    one run."""
    total = ZERO
    for instance, claim in points:
        work = _point_work(instance, claim, trained, source).times(search_values)
        total = total + work + _overhead(claim)
    return total


def search_values(start: int, largest: int) -> int:
    """Values a doubling-then-bisection search from ``start`` to ``largest`` may try."""
    doublings = max(1, math.ceil(math.log2(max(largest, 1) / max(start, 1))) + 1)
    return 2 * doublings


def _examples(instance: BijectionInstance | MultiHopInstance) -> tuple[int, int, int]:
    """(examples per pass, context length, output classes)."""
    if isinstance(instance, MultiHopInstance):  # the shapes of the construction cot picks
        per_query, n_ctx = _kind_module("multihop").query_shape(instance)
        return instance.entities * instance.n_chains * per_query, n_ctx, instance.entities
    n_out = instance.entities * (instance.relations if instance.attributes == "disjoint" else 1)
    return instance.entities * instance.relations, 2, n_out


def _kind_module(kind: str) -> Any:
    """``verifier.checks.<kind>`` (or its helper ``multihop``), imported by name when its claims
    are estimated.

    By name, not by an import statement: a verdict's key covers the modules its kind's import
    graph reaches (:mod:`verifier.codekey`), and the runner imports this module for every kind.
    An estimate only admits or refuses work and never enters a verdict, so a bound claim's key
    must not cover the trainer because training claims are estimated here.
    """
    return importlib.import_module(f"verifier.checks.{kind}")


def _forward_flops(n_ctx: int, d: int, d_mlp: int, n_out: int) -> float:
    return 2.0 * (n_ctx * (4 * d * d + 2 * d * d_mlp) + d * n_out)


def _steps_bound(claim: Any) -> int | None:
    """K of the claim's own ``steps_to_perfect: "<= K"`` (or ``< K``), if it says one."""
    said = (getattr(claim, "expect", None) or {}).get("steps_to_perfect")
    if isinstance(said, (int, float)) and not isinstance(said, bool):
        return int(said)
    found = re.fullmatch(r"\s*<=?\s*([0-9][0-9_]*(?:\.[0-9]*)?(?:e[0-9]+)?)\s*", str(said or ""))
    return int(float(found.group(1).replace("_", ""))) if found else None


def _training_key(instance: Any, claim: Any) -> str:
    """What decides the trained models: two claims with the same key train them once."""
    return json.dumps(
        [
            instance.model_dump(mode="json"),
            claim.model.model_dump(mode="json"),
            claim.optim.model_dump(mode="json"),
            claim.seeds,
            getattr(claim, "train_seed", None),
        ],
        sort_keys=True,
        default=str,
    )


def _training(instance: Any, claim: Any, trained: set[str]) -> Cost:
    training = _kind_module("training")
    model_params, train_config = training.model_params, training.train_config

    cfg = train_config(instance, claim)
    examples, n_ctx, n_out = _examples(instance)
    batch = min(cfg.batch_size or examples, examples)
    replicates = len(claim.seeds) if claim.seeds else 1
    fwd = _forward_flops(n_ctx, cfg.d_model, cfg.d_mlp, n_out)
    evaluations = 0 if cfg.batch_size is None else cfg.steps // max(cfg.eval_every, 1)
    step = 3 * fwd * batch
    measure = fwd * examples  # the final float64 pass (and each measurement's)
    flops = replicates * (cfg.steps * step + (evaluations + 1) * measure)
    bound = _steps_bound(claim)
    steps = cfg.steps if bound is None else min(cfg.steps, STOP_SHARE * bound)
    steps = max(steps, min(cfg.min_steps, cfg.steps))
    key = _training_key(instance, claim)
    if key in trained:  # another claim of this run trains these models: only the measurement
        expected = replicates * measure
    else:
        trained.add(key)
        expected_evals = 0 if cfg.batch_size is None else steps // max(cfg.eval_every, 1)
        expected = replicates * (steps * step + (expected_evals + 1) * measure)
    params = model_params(instance.entities + instance.relations, n_out, cfg, n_ctx)
    activations = batch * (n_ctx * (6 * cfg.d_model + 2 * cfg.d_mlp) + 3 * n_out)
    memory = replicates * (4 * params + activations) * FLOAT32
    return Cost(flops, memory, expected)


def expected_code_dim(n_attr: int, margin: float) -> int:
    """Where ``code_dim: auto`` is expected to stop for A random sign codes and a target
    margin: coherence ``mu = 1 - margin`` holds for all A^2/2 pairs near
    ``m = 4 ln(A) / mu^2`` (a union bound on ``2 exp(-m mu^2 / 2)``)."""
    mu = max(1.0 - margin, 1e-3)
    return max(8, math.ceil(4 * math.log(max(n_attr, 2)) / (mu * mu)))


def _construction(instance: Any, claim: Any) -> Cost:
    spec = claim.construction
    examples, n_ctx, n_out = _examples(instance)
    codebook = getattr(spec, "codebook", "")
    auto = spec.code_dim == "auto" and codebook != "onehot"
    if isinstance(instance, MultiHopInstance):
        m = 64 if spec.code_dim == "auto" else int(spec.code_dim)
        m_likely = min(m, expected_code_dim(instance.entities, spec.margin)) if auto else m
        d = w = instance.relations * m + m
        d_l = w_l = instance.relations * m_likely + m_likely
        return Cost(
            _forward_flops(n_ctx, d, w, n_out) * examples,
            (min(examples, 4096) * n_out + d * (w + n_out)) * FLOAT64,
            _forward_flops(n_ctx, d_l, w_l, n_out) * examples,
        )
    # Bijection instances only: a multi-hop one (a budget claim's too) is priced above without
    # importing the construction check, which its kind's verdict key does not cover.
    construction = _kind_module("construction")
    attribute_count = construction.attribute_count
    construction_size = construction.construction_size
    n_attr = attribute_count(instance)
    if codebook == "onehot":
        m = m_likely = n_attr
    elif spec.code_dim == "auto":
        m = _auto_width(n_attr)
        m_likely = min(m, expected_code_dim(n_attr, spec.margin))
    else:
        m = m_likely = int(spec.code_dim)

    def recall(width: int, full_logit_facts: float) -> tuple[float, float, int]:
        """(flops, peak bytes, code width) of building the model and certifying every fact."""
        d, w, params = construction_size(instance, spec.name, width)
        residual = 2.0 * (n_ctx * 4 * d * d + 2 * d * w) * examples  # to h2, no unembedding
        logits = 2.0 * d * n_out * full_logit_facts
        gram = 0.0 if auto else 2.0 * n_attr * n_attr * width  # a search's scan gives it
        block = SCAN_BYTES if auto else min(n_attr * n_attr, 1 << 25) * FLOAT64
        memory = (
            params * FLOAT64
            + BATCH * (n_ctx * (d + w) + n_out) * FLOAT64 * 2  # a batch and its logits
            + 2 * examples * FLOAT64  # each fact's bound and exact margin
            + n_attr * width * (FLOAT64 + FLOAT32)  # the codes, and their float32 signs
            + block
        )
        return residual + logits + gram, memory, width

    worst, memory, _ = recall(m, examples)
    likely, _, _ = recall(m_likely, min(examples, RESOLVE_CAP))
    if auto:  # the search: every width may be scanned in full; likely one full scan
        worst += search_values(1, m) * 2.0 * n_attr * n_attr * m
        likely += float(n_attr) * n_attr * m_likely
    return Cost(worst, memory, likely)


def _auto_width(n_attr: int) -> int:
    """The widest ``code_dim: auto`` is priced at: 16 log2 A (above where the search stops)."""
    return max(8, 16 * math.ceil(math.log2(max(n_attr, 2))))


def _feasibility(instance: Any, claim: Any) -> Cost:
    construction = _kind_module("construction")
    attribute_count, geometric_size = construction.attribute_count, construction.geometric_size

    n_attr = attribute_count(instance)
    spec = claim.construction
    fixed = spec is not None and spec.code_dim != "auto"
    m = int(spec.code_dim) if fixed else _auto_width(n_attr)
    d, w, params = geometric_size(instance, m)
    forward = _forward_flops(2, d, w, n_attr) * (instance.entities * instance.relations)
    if claim.program == "associative_width":
        n_facts, dim = instance.entities * instance.relations, claim.embed_dim
        if isinstance(claim.width, int):
            width = likely_width = claim.width
            tries = likely_tries = 1
        else:  # the search gallops from its guess F (d - 1) / d (convex/associative.py)
            width, likely_width = 4 * n_attr, max(1, math.ceil(n_facts * (dim - 1) / dim))
            tries, likely_tries = search_values(1, width), P3_LIKELY_SOLVES
        nnz = p3_nonzeros(n_facts, n_attr, dim, width)
        likely = likely_tries * p3_flops(p3_nonzeros(n_facts, n_attr, dim, likely_width))
        return Cost(
            tries * p3_flops(nnz) + forward, p3_memory(nnz) + params * FLOAT64, likely + forward
        )
    if claim.program == "codebook_margin":  # one LP per target, per width tried
        rows, cols = n_attr - 1, m + 1
        programs = n_attr * (1 if fixed else search_values(1, m))
    else:  # reembed: one P2 per subject
        rows, cols = instance.relations * (n_attr - 1 + w), d + 1
        programs = instance.entities
    flops = programs * (LP_SETUP + lp_flops(rows, cols)) + forward
    return Cost(flops, lp_memory(rows, cols) + params * FLOAT64)


def p3_nonzeros(n_facts: int, n_out: int, embed_dim: int, width: int) -> int:
    """As :func:`verifier.convex.associative.p3_nonzeros` (the count ``max_lp_entries`` is
    judged on), without importing the convex stack: ``F d (w + 1) + F (n_out - 1) (d + 1)``."""
    return n_facts * embed_dim * (width + 1) + n_facts * max(n_out - 1, 0) * (embed_dim + 1)


def p3_flops(nnz: float) -> float:
    """One P3 solve (sparse simplex / interior point in highspy): ``P3_NNZ_FLOPS nnz^1.5``
    flop-equivalents, plus its set-up."""
    return LP_SETUP + P3_NNZ_FLOPS * nnz * math.sqrt(nnz)


def p3_memory(nnz: float) -> float:
    """One P3 solve's peak: ``P3_NNZ_BYTES`` per nonzero."""
    return P3_NNZ_BYTES * nnz


def lp_flops(rows: int, cols: int) -> float:
    """One dense LP solve: ``LP_ITERATIONS`` factorisations of its normal equations, each
    about ``rows * cols * min(rows, cols)``."""
    return LP_ITERATIONS * float(rows) * cols * min(rows, cols)


def lp_memory(rows: int, cols: int) -> float:
    """One LP: its matrix three times (the solver's copies) and the normal equations."""
    return (3.0 * rows * cols + float(min(rows, cols)) ** 2) * FLOAT64


def _transfer(instance: Any, claim: Any, source: Any = None) -> Cost:
    """A forward over every fact through the trained model (``source``'s size; without it a
    bound of ``d = d_mlp = 512`` stands in); ``lp`` solves a P2 per subject; ``relearn``
    trains the subject rows for its steps (expected: near its own steps_to_perfect bound)."""
    examples, n_ctx, n_out = _examples(instance)
    model = getattr(source, "model", None)
    d = int(getattr(model, "d_model", 512))
    d_mlp = int(getattr(model, "d_mlp", 512))
    fwd = _forward_flops(n_ctx, d, d_mlp, n_out) * examples
    if getattr(claim, "method", "") == "lp":
        rows, cols = instance.relations * (n_out + d_mlp), d + 1
        lps = instance.entities * (LP_SETUP + lp_flops(rows, cols))
        return Cost(fwd + lps, lp_memory(rows, cols))
    relearn = getattr(claim, "relearn", None)
    steps = likely = 0.0
    if getattr(claim, "method", "") == "relearn":
        steps = relearn.steps if relearn is not None else 500  # RelearnOptim's default
        bound = _steps_bound(claim)
        likely = steps if bound is None else min(steps, STOP_SHARE * bound)
    memory = examples * n_out * FLOAT32 * 3
    return Cost(fwd * (1 + 3 * steps), memory, fwd * (1 + 3 * likely))
