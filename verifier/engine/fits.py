"""Growth laws: fit competing laws to a swept measure and pick one by held-out error.

The theory's claims are about growth (docs/theory.md 3-6): the minimal code width grows like
``log N`` (G1), the associative baseline's width like ``N`` (P3), the no-CoT dimension like
``R^k`` and the CoT one not at all (section 5). A ``growth`` expectation

    growth: {measure: code_dim, over: N, law: logarithmic, against: [linear], factor: 2}

is judged here. Each law is fitted by least squares in the coordinates where it is linear:

=============  ==================  =====================================
law            model               fitted as
=============  ==================  =====================================
constant       ``y = a``           weighted mean of ``y``
logarithmic    ``y = a + b ln x``  ``y`` on ``ln x``       (needs x > 0)
linear         ``y = a + b x``     ``y`` on ``x``
polynomial     ``y = a x^b``       ``ln y`` on ``ln x``    (needs x, y > 0)
exponential    ``y = a e^(b x)``   ``ln y`` on ``x``       (needs y > 0)
=============  ==================  =====================================

The additive laws are weighted by ``1 / |y|`` (relative residuals), which is what least squares
in log coordinates minimises for the multiplicative ones, so no law is favoured by its
coordinates. Laws are compared by **leave-one-x-out** error: every distinct ``x`` (with all its
repeats, for example several seeds) is held out in turn, the law is refitted on the rest and
predicts it.
The error is the root mean square of the *relative* residuals ``(yhat - y) / |y|`` (absolute
residuals over the mean ``|y|`` when some ``y`` is 0), floored at :data:`ERROR_FLOOR`, so laws
are compared on one scale whatever coordinates they were fitted in, and the endpoints test
extrapolation, which is what tells growth laws apart.

Verdict (:func:`judge_growth`): the expected law **passes** when, against every competitor, its
held-out error times ``factor`` is at most the competitor's - or the competitor's growth
coefficient ``b`` has a bootstrap interval (Bonferroni-widened over the competitors)
containing 0 (or its curve varies by less than
:data:`ERROR_FLOOR` over the data) while the expected law is ``constant``
(every other law nests the constant one at ``b = 0``, so a competitor that finds no growth does
not contradict "flat"). It **fails** when some competitor beats it by the same factor. Anything
in between, or fewer than :data:`MIN_POINTS` distinct ``x``, is ``undecided``: never a pass.

Coefficients carry 95% percentile intervals from a bootstrap over the points (resampled with
replacement, :data:`BOOTSTRAP` draws from ``rng(seed, Stream.FIT)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from verifier.seeds import Stream, rng

Law = Literal["constant", "logarithmic", "linear", "polynomial", "exponential"]
LAWS: tuple[Law, ...] = get_args(Law)
MIN_POINTS = 4  # distinct x values needed before any verdict
DEFAULT_FACTOR = 2.0  # the expected law must beat each competitor's held-out error by this
ERROR_FLOOR = 1e-6  # relative held-out errors below this count as equal (exact data)
BOOTSTRAP = 200  # bootstrap resamples for coefficient intervals
GROWTH_KEYS = ("measure", "over", "law", "against", "factor")

Verdict = Literal["passed", "failed", "undecided"]


@dataclass(frozen=True)
class GrowthSpec:
    """A parsed ``growth:`` expectation."""

    measure: str
    over: str
    law: Law
    against: tuple[Law, ...]
    factor: float


def parse_growth(
    raw: Mapping[str, Any],
    measures: Sequence[str],
    label_measures: Sequence[str],
    swept: Sequence[str],
) -> GrowthSpec:
    """Validate a ``growth:`` mapping against the claim it sits on.

    Args:
        raw: the mapping as written.
        measures: numeric-or-label measures the claim kind reports.
        label_measures: measures that are words (``feasible``), which cannot grow.
        swept: the claim's ``sweep:`` fields.

    Raises:
        ValueError: a message naming the bad key, what was expected and what came.
    """
    unknown = sorted(set(raw) - set(GROWTH_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; expected keys {', '.join(GROWTH_KEYS)}")
    for key in ("measure", "over", "law"):
        if key not in raw:
            raise ValueError(f"required key {key!r} is missing")
    measure, over, law = raw["measure"], raw["over"], raw["law"]
    if measure in label_measures:
        raise ValueError(f"measure {measure!r} is a label, not a number; growth needs a number")
    if measure not in measures:
        raise ValueError(f"unknown measure {measure!r}; expected one of {', '.join(measures)}")
    if not swept:
        raise ValueError(f"growth over {over!r} needs a sweep over {over!r}; the claim has none")
    if over not in swept:
        raise ValueError(f"over: expected a swept field ({', '.join(swept)}), got {over!r}")
    if law not in LAWS:
        raise ValueError(f"law: expected one of {', '.join(LAWS)}, got {law!r}")
    against_raw = raw.get("against", [x for x in LAWS if x != law])
    if isinstance(against_raw, str):
        against_raw = [against_raw]
    if not isinstance(against_raw, list) or not against_raw:
        raise ValueError(f"against: expected a non-empty list of laws, got {against_raw!r}")
    for other in against_raw:
        if other not in LAWS or other == law:
            raise ValueError(
                f"against: expected laws other than {law!r} from {', '.join(LAWS)}, got {other!r}"
            )
    factor = raw.get("factor", DEFAULT_FACTOR)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor >= 1:
        raise ValueError(f"factor: expected a number >= 1, got {factor!r}")
    return GrowthSpec(measure, over, law, tuple(dict.fromkeys(against_raw)), float(factor))


# --- fitting ---------------------------------------------------------------------------------


def applicable(law: Law, x: np.ndarray, y: np.ndarray) -> str | None:
    """Why ``law`` cannot be fitted to ``(x, y)``, or None if it can."""
    if law in ("logarithmic", "polynomial") and not (x > 0).all():
        return f"{law} needs x > 0"
    if law in ("polynomial", "exponential") and not (y > 0).all():
        return f"{law} needs y > 0"
    return None


def fit_law(law: Law, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares coefficients ``(a, b)`` of ``law`` (``b = 0`` for constant).

    Args:
        x, y: ``(n,)`` float64 points with at least two distinct x (one for constant).
    """
    if law == "constant":  # the minimiser of the relative residuals sum ((a - y) / s)^2
        w = 1.0 / _scale(y) ** 2
        return float((w * y).sum() / w.sum()), 0.0
    u = np.log(x) if law in ("logarithmic", "polynomial") else x
    v = np.log(y) if law in ("polynomial", "exponential") else y
    design = np.stack([np.ones_like(u), u], axis=1)  # (n, 2)
    if law in ("logarithmic", "linear"):  # relative residuals, as in log coordinates
        w = 1.0 / _scale(y)
        design, v = design * w[:, None], v * w
    (a, b), *_ = np.linalg.lstsq(design, v, rcond=None)
    if law in ("polynomial", "exponential"):
        a = math.exp(a) if a < 700 else math.inf
    return float(a), float(b)


def predict(law: Law, coef: tuple[float, float], x: np.ndarray) -> np.ndarray:
    """The law's values at ``x``."""
    a, b = coef
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if law == "constant":
            return np.full_like(x, a, dtype=np.float64)
        if law == "logarithmic":
            return np.asarray(a + b * np.log(x), dtype=np.float64)
        if law == "linear":
            return np.asarray(a + b * x, dtype=np.float64)
        if law == "polynomial":
            return np.asarray(a * np.power(x, b), dtype=np.float64)
        return np.asarray(a * np.exp(b * x), dtype=np.float64)


def _scale(y: np.ndarray) -> np.ndarray:
    """Per-point residual scale: ``|y|``, or the mean ``|y|`` when some ``y`` is 0."""
    if (y != 0).all():
        return np.asarray(np.abs(y), dtype=np.float64)
    mean = float(np.abs(y).mean())
    return np.full_like(y, mean if mean > 0 else 1.0)


def held_out_error(law: Law, x: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-x-out RMS relative error (floored at :data:`ERROR_FLOOR`)."""
    scale = _scale(y)
    residuals = []
    for value in np.unique(x):
        out = x == value
        a, b = fit_law(law, x[~out], y[~out])
        residuals.append((predict(law, (a, b), x[out]) - y[out]) / scale[out])
    r = np.concatenate(residuals)
    err = float(np.sqrt(np.mean(r**2))) if np.isfinite(r).all() else math.inf
    return max(err, ERROR_FLOOR)


@dataclass
class LawFit:
    """One law fitted to all points."""

    law: Law
    a: float
    b: float
    a_interval: tuple[float, float]
    b_interval: tuple[float, float]
    held_out_error: float
    train_error: float
    skipped: str | None = None  # why the law could not be fitted
    b_draws: list[float] = field(default_factory=list, repr=False)  # bootstrap b values


def fit_all(
    x: Sequence[float], y: Sequence[float], laws: Sequence[Law], seed: int = 0
) -> list[LawFit]:
    """Fit every law in ``laws``, with held-out errors and bootstrap intervals.

    Args:
        x, y: the swept variable and the measure, one entry per point.
        laws: which laws to fit.
        seed: the bootstrap's seed (``rng(seed, Stream.FIT)``).
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    fits: list[LawFit] = []
    for law in laws:
        why = applicable(law, xs, ys)
        if why is not None:
            nan = (math.nan, math.nan)
            fits.append(LawFit(law, math.nan, math.nan, nan, nan, math.inf, math.inf, why))
            continue
        a, b = fit_law(law, xs, ys)
        train = float(np.sqrt(np.mean(((predict(law, (a, b), xs) - ys) / _scale(ys)) ** 2)))
        a_iv, b_iv, draws = _bootstrap(law, xs, ys, (a, b), seed, LAWS.index(law))
        fits.append(LawFit(law, a, b, a_iv, b_iv, held_out_error(law, xs, ys), train, None, draws))
    return fits


def _bootstrap(
    law: Law, x: np.ndarray, y: np.ndarray, coef: tuple[float, float], seed: int, law_id: int
) -> tuple[tuple[float, float], tuple[float, float], list[float]]:
    """95% percentile intervals of (a, b) over resamples of the points, and the b draws."""
    g = rng(seed, Stream.FIT, law_id)
    need = 1 if law == "constant" else 2
    draws = []
    for _ in range(BOOTSTRAP):
        idx = g.integers(0, len(x), size=len(x))
        if len(np.unique(x[idx])) >= need:
            draws.append(fit_law(law, x[idx], y[idx]))
    if not draws:
        return (coef[0], coef[0]), (coef[1], coef[1]), [coef[1]]
    arr = np.asarray(draws)  # (draws, 2)
    lo, hi = np.nanpercentile(arr, [2.5, 97.5], axis=0)
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])), arr[:, 1].tolist()


# --- verdict ---------------------------------------------------------------------------------


@dataclass
class GrowthVerdict:
    """The judgement of one growth expectation on one group of points."""

    verdict: Verdict
    reason: str
    law: Law
    factor: float
    fits: list[LawFit]
    x: list[float]
    y: list[float]
    ratios: dict[str, float] = field(default_factory=dict)  # competitor error / law error

    def to_evidence(self) -> dict[str, Any]:
        """JSON-serialisable form (infinities and NaNs as None)."""
        out: dict[str, Any] = _finite(asdict(self))
        for fit in out["fits"]:
            fit.pop("b_draws", None)
        return out


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _no_growth(fit: LawFit, x: Sequence[float], y: Sequence[float], tests: int) -> bool:
    """The fit finds no growth: ``b``'s interval holds 0, or its curve is flat over ``x``.

    The interval is the bootstrap's at level ``1 - 0.05 / tests`` (Bonferroni over the
    ``tests`` competitors), so "flat" is refuted with 5% family-wise error.
    """
    tail = 100 * 0.025 / max(tests, 1)
    lo, hi = np.nanpercentile(np.asarray(fit.b_draws), [tail, 100 - tail])
    if lo <= 0 <= hi:
        return True
    curve = predict(fit.law, (fit.a, fit.b), np.asarray(x, dtype=np.float64))
    scale = float(np.abs(np.asarray(y)).mean()) or 1.0
    return bool(np.ptp(curve) / scale < ERROR_FLOOR)


def judge_growth(
    x: Sequence[float],
    y: Sequence[float],
    law: Law,
    against: Sequence[Law],
    factor: float = DEFAULT_FACTOR,
    seed: int = 0,
    fitted: Sequence[LawFit] | None = None,
) -> GrowthVerdict:
    """Does ``law`` beat every law in ``against`` by ``factor`` in held-out error?

    ``fitted``: fits of these laws to these points already made by :func:`fit_all`.

    Returns:
        ``passed``, ``failed`` (a competitor beats the law by the factor, or the law cannot be
        fitted) or ``undecided`` (too few points, or no clear winner).
    """
    xs, ys = [float(v) for v in x], [float(v) for v in y]
    distinct = len(set(xs))
    laws = [law, *[o for o in against if o != law]]
    if fitted is not None:
        by_law = {f.law: f for f in fitted}
        fits = [by_law[x] for x in laws]
    if distinct < MIN_POINTS or not all(map(math.isfinite, xs + ys)):
        fits = fit_all(xs, ys, laws, seed) if distinct >= 3 and all(map(math.isfinite, ys)) else []
        reason = (
            f"expected at least {MIN_POINTS} distinct values of the swept variable, got {distinct}"
            if distinct < MIN_POINTS
            else "a measured value is not finite"
        )
        return GrowthVerdict("undecided", reason, law, factor, fits, xs, ys)
    if fitted is None:
        fits = fit_all(xs, ys, laws, seed)
    own, rivals = fits[0], [f for f in fits[1:] if f.skipped is None]

    def verdict(
        status: Verdict, reason: str, ratios: dict[str, float] | None = None
    ) -> GrowthVerdict:
        return GrowthVerdict(status, reason, law, factor, fits, xs, ys, ratios or {})

    if own.skipped is not None:
        return verdict("failed", f"the {law} law cannot fit: {own.skipped}")
    if not rivals:
        return verdict("undecided", "no competing law could be fitted")
    ratios: dict[str, float] = {f.law: f.held_out_error / own.held_out_error for f in rivals}
    beaten_by = [f.law for f in rivals if own.held_out_error >= factor * f.held_out_error]
    if beaten_by:
        return verdict(
            "failed",
            f"{', '.join(beaten_by)} beat {law} by at least {factor:g}x in held-out error",
            ratios,
        )
    unresolved = [
        f.law
        for f in rivals
        if ratios[f.law] < factor and not (law == "constant" and _no_growth(f, xs, ys, len(rivals)))
    ]
    if unresolved:
        return verdict(
            "undecided",
            f"{law} does not beat {', '.join(unresolved)} by {factor:g}x in held-out error "
            f"(ratios {', '.join(f'{k} {ratios[k]:.3g}' for k in unresolved)})",
            ratios,
        )
    beaten = (
        f"{law} beats {', '.join(f.law for f in rivals)} by at least {factor:g}x in held-out error"
    )
    return verdict(
        "passed", beaten + " (or they find no growth)" if law == "constant" else beaten, ratios
    )


def select_law(
    x: Sequence[float],
    y: Sequence[float],
    laws: Sequence[Law] = LAWS,
    factor: float = DEFAULT_FACTOR,
    seed: int = 0,
) -> Law | None:
    """The one law in ``laws`` that passes :func:`judge_growth` against all the others.

    Returns None (undecided) when no law does: too few points, or no clear winner.
    """
    fitted = fit_all(x, y, laws, seed) if len(set(x)) >= 3 else None
    winners = [
        law
        for law in laws
        if judge_growth(x, y, law, [o for o in laws if o != law], factor, seed, fitted).verdict
        == "passed"
    ]
    return winners[0] if len(winners) == 1 else None
