"""Spec -> Report: expand sweeps, check limits, run each claim's check, judge expectations.

:class:`SpecRunner` runs claims lazily and memoises them, so ``pytest -k`` or ``verifier check
-k`` runs only the selected claims and the claims they depend on. Everything over a limit is
refused by :meth:`SpecRunner.preflight` before any claim runs.

With a :class:`~verifier.engine.verdicts.VerdictStore`, a point whose key
(:meth:`SpecRunner.key_of`) is stored, and whose dependencies' are, is not run: its result comes
back marked ``reused``, with the time it was verified. A reused point never runs its dependencies,
and a dependency verified again in a run has its dependents verified again. A point that does run
and depends on a reused one gets the stored measured values at once; if it also reads the
dependency's in-process objects (a ``transfer`` claim reads the trained model), the dependency is
run again then (a training claim reloads its checkpoint) and its fresh result replaces the reused
one. What reuse remembers during a run lives in :mod:`verifier.engine.reuse`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from pydantic import ValidationError

from verifier import __version__
from verifier.checks import REGISTRY, CheckContext, Measurement
from verifier.checks.base import AnyKind
from verifier.engine import provenance
from verifier.engine.cost import Cost, claim_cost, search_values
from verifier.engine.growth import growth_key, growth_result, growth_spec
from verifier.engine.replicates import judge_all
from verifier.engine.report import ClaimResult, ExpectationResult, ReplicateHistory, Report
from verifier.engine.reuse import VerdictReuse, stored_measurement
from verifier.engine.search import run_minimize, substitute
from verifier.engine.substitution import FieldNotFound, set_field
from verifier.engine.verdicts import StoredVerdict, VerdictStore
from verifier.errors import Cancelled, LimitExceeded, SolverError, SpecError, VerifierError
from verifier.limits import Limits, require
from verifier.spec import ClaimBase, Spec

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float, str], None]  # (claim key, fraction, message)


@dataclass(frozen=True)
class ClaimPoint:
    """One claim at one sweep point (or the claim itself when it has no sweep)."""

    key: str
    claim: Any  # validated claim model, with the point's values substituted
    instance: Any  # validated instance model at the point
    point: dict[str, Any] | None
    line: int | None


def expand(spec: Spec, claim: ClaimBase, limits: Limits) -> list[ClaimPoint]:
    """Sweep points of one claim, in grid order, each re-validated.

    Seeds: every point keeps the spec's instance seed (the derivation is the identity), so a
    point is exactly the standalone spec with the point's fields substituted, and points at
    different N share their codebook prefixes (codes are nested, see
    :mod:`verifier.constructions.codebooks`). To replicate over seeds, sweep ``seed`` as well:
    its values are used as written, and growth fits treat them as repeats of one x.

    Raises:
        SpecError: an unknown sweep field, or a value the field does not accept.
        LimitExceeded: more points than ``max_sweep_points``.
    """
    line = spec.source.claim_lines.get(claim.id)
    if not claim.sweep:
        return [ClaimPoint(claim.id, claim, spec.instance, None, line)]
    names = list(claim.sweep)
    total = 1
    for values in claim.sweep.values():
        total *= len(values)
    sizes = " x ".join(f"{k}: {len(v)} values" for k, v in claim.sweep.items())
    what = f"the number of points in the sweep grid of claim {claim.id!r} ({sizes})"
    require("max_sweep_points", total, limits.max_sweep_points, what)
    instance_data = spec.instance.model_dump()
    claim_data = claim.model_dump(exclude={"sweep"}, exclude_none=True)
    # a growth expectation belongs to the whole sweep (verifier/engine/growth.py), not to a point
    claim_data["expect"] = {k: v for k, v in claim_data["expect"].items() if k != "growth"}
    points: list[ClaimPoint] = []

    def grid(i: int, chosen: dict[str, Any]) -> Iterable[dict[str, Any]]:
        if i == len(names):
            yield dict(chosen)
            return
        for value in claim.sweep[names[i]]:  # type: ignore[index]
            chosen[names[i]] = value
            yield from grid(i + 1, chosen)

    for chosen in grid(0, {}):
        inst, cl = dict(instance_data), _deep_copy(claim_data)
        for name, value in chosen.items():
            try:
                set_field(inst, cl, name, value)
            except FieldNotFound as exc:
                raise SpecError(
                    f"sweep {exc}",
                    file=spec.source.file,
                    line=line,
                    key=f"{claim.id}.sweep.{name}",
                ) from None
        key = f"{claim.id}[{','.join(f'{k}={v}' for k, v in chosen.items())}]"
        try:
            instance = type(spec.instance).model_validate(inst)
            point_claim = type(claim).model_validate(cl)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise SpecError(
                f"sweep point {key}: {'.'.join(map(str, err['loc']))}: {err['msg']} "
                f"(got {err.get('input')!r})",
                file=spec.source.file,
                line=line,
            ) from None
        points.append(ClaimPoint(key, point_claim, instance, dict(chosen), line))
    return points


OUT_OF_MEMORY = (
    "out of memory: the claim needs more memory than this machine has; lower its sizes "
    "(N, widths, replicates, sweep points) or the max_job_memory limit"
)


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: Python's or numpy's MemoryError, or torch's
    allocator refusing (a RuntimeError saying so)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


class SpecRunner:
    """Runs one spec's claims on demand, memoising results."""

    def __init__(
        self,
        spec: Spec,
        limits: Limits | None = None,
        progress: ProgressFn | None = None,
        is_cancelled: Callable[[], bool] = lambda: False,
        cache_dir: str | None = None,
        verdicts: VerdictStore | None = None,
    ) -> None:
        self.spec = spec
        self.limits = limits or Limits()
        self.progress = progress
        self.is_cancelled = is_cancelled
        self.cache_dir = cache_dir
        self.verdicts = verdicts
        self.points: dict[str, list[ClaimPoint]] = {}
        total = 0
        for claim in spec.claims:
            self.points[claim.id] = expand(spec, claim, self.limits)
            follows = claim.follows_sweep_of()
            if follows is not None and self.points[follows][0].point is not None:
                self.points[claim.id] = [
                    ClaimPoint(
                        f"{claim.id}{p.key[len(follows) :]}",
                        claim,
                        p.instance,
                        p.point,
                        spec.source.claim_lines.get(claim.id),
                    )
                    for p in self.points[follows]
                ]
            total += len(self.points[claim.id])
        require("max_claims", total, self.limits.max_claims, "claims after sweep expansion")
        self._measurements: dict[str, Measurement | None] = {}
        self._results: dict[str, list[ClaimResult]] = {}
        self._memo: dict[str, Any] = {}  # in-process results claims share (trained models)
        self.reuse = VerdictReuse(
            verdicts,
            self.limits,
            lambda p: self._dependency_points(p.claim, p.point),
        )
        self.spec_hash = spec.content_hash()

    def preflight(self) -> None:
        """Check every point against the limits, before any work.

        A point whose verdict is stored is skipped: it does no work, and its key holds the
        limits and the code that passed it then.

        Raises:
            LimitExceeded: naming the limit, the claim and the value.
            SpecError: a claim kind this verifier does not know, or a claim that expects
                nothing and that no other claim uses (it would pass without checking anything).
        """
        for claim in self.spec.claims:
            for point in self.points[claim.id]:
                if self.reuse.lookup(point) is not None:
                    continue
                kind = REGISTRY.get(claim.check_kind())
                if kind is None:
                    raise SpecError(f"no check registered for {claim.check_kind()!r}")
                try:
                    kind.admit(point.instance, point.claim)
                    search = claim.search_spec()
                    if search is None:
                        kind.preflight(point.instance, point.claim, self.limits)
                    else:  # both ends of the search range, before any work
                        for value in (search.start, search.max):
                            inst, cl = substitute(point.instance, point.claim, search.field, value)
                            kind.preflight(inst, cl, self.limits)
                        # the claim with its search (until), as _run_point checks it
                        kind.preflight(point.instance, point.claim, self.limits)
                    self._preflight_sources(kind, point)
                except LimitExceeded as exc:
                    raise exc.in_claim(point.key) from None
                except SpecError as exc:
                    raise exc.located(self.spec.source.file, point.line) from None
        for claim_id, cost in self.estimate().items():
            what = f"the estimated work of claim {claim_id!r} over its points and replicates"
            require("max_job_flops", int(cost.flops), self.limits.max_job_flops, f"{what} (flops)")
            require(
                "max_job_memory",
                int(cost.memory),
                self.limits.max_job_memory,
                f"the estimated peak memory of claim {claim_id!r} (bytes)",
            )
        needed = {dep for claim in self.spec.claims for dep in claim.depends_on()}
        for i, claim in enumerate(self.spec.claims):
            if not claim.expect and claim.search_spec() is None and claim.id not in needed:
                raise SpecError(
                    f"claim {claim.id!r} expects nothing and no claim uses it; expected at least "
                    "one expectation under expect: (or a minimize: or maximize: search)",
                    file=self.spec.source.file,
                    line=self.spec.source.claim_lines.get(claim.id),
                    key=f"claims.{i}.expect",
                )

    def estimate(self) -> dict[str, Cost]:
        """Each claim's estimated work (:mod:`verifier.engine.cost`): the sum over its points
        not answered by a stored verdict. A search's worst case is its widest value once per
        value it may try; its expected figure stops at the geometric middle of its range. The
        expected figures count a training that several claims share once, in the first."""
        costs: dict[str, Cost] = {}
        trained: set[str] = set()
        for claim in self.spec.claims:
            search = claim.search_spec()
            points = [p for p in self.points[claim.id] if self.reuse.lookup(p) is None]
            read = getattr(claim, "from_", None)  # a transfer claim's trained model
            source = self.spec.claim(read) if isinstance(read, str) else None
            if search is None:
                pairs = [(p.instance, p.claim) for p in points]
                costs[claim.id] = claim_cost(pairs, 1, trained, source)
                continue
            middle = max(search.start, round(math.sqrt(search.start * search.max)))
            worst, likely = (
                claim_cost(
                    [substitute(p.instance, p.claim, search.field, value) for p in points],
                    search_values(search.start, value),
                    shared,
                    source,
                )
                for value, shared in ((search.max, set()), (middle, trained))
            )
            costs[claim.id] = Cost(worst.flops, worst.memory, likely.likely)
        return costs

    def _preflight_sources(self, kind: AnyKind, point: ClaimPoint) -> None:
        """The limits of ``point`` that depend on the claims it reads, at the same point."""
        sources = {dep: p.claim for dep, p in self._dependency_points(point.claim, point.point)}
        kind.preflight_sources(point.instance, point.claim, sources, self.limits)

    def keys(self) -> list[str]:
        """Every result key, in spec order."""
        return [k for claim in self.spec.claims for k in self.claim_keys(claim.id)]

    def claim_keys(self, claim_id: str) -> list[str]:
        """One claim's result keys: its points, then ``claim-id[growth]`` if it has a growth."""
        keys = [p.key for p in self.points[claim_id]]
        if growth_spec(self.spec.claim(claim_id)) is not None:
            keys.append(growth_key(claim_id))
        return keys

    def claim_results(self, claim_id: str) -> list[ClaimResult]:
        """Results of every point of one claim (running it and its dependencies if needed)."""
        if claim_id not in self._results:
            self.adopt(claim_id, [self._resolve(p) for p in self.points[claim_id]])
        return self._results[claim_id]

    def adopt(self, claim_id: str, point_results: list[ClaimResult]) -> None:
        """Take one claim's point results (run here or by an executor); add its growth result."""
        claim = self.spec.claim(claim_id)
        results = list(point_results)
        if growth_spec(claim) is not None:
            results.append(self._growth(claim, results))
        self._results[claim_id] = results

    def _growth(self, claim: ClaimBase, points: list[ClaimResult]) -> ClaimResult:
        """The growth result over ``points``: the stored one when every point was reused (its
        fits are a function of the point results and the code), else judged now and stored."""
        start = time.perf_counter()
        keys = [self.key_of(p) for p in self.points[claim.id]]
        key = self.reuse.growth_key(claim, self.spec.instance, keys)
        reused = bool(points) and all(r.reused for r in points)
        if key is not None and reused and self.verdicts is not None:
            stored = self.verdicts.get(key)
            if stored is not None:
                return stored.result.model_copy(
                    update={
                        "xfail": self.xfail_reason(claim.id, growth_key(claim.id)),
                        "file": self.spec.source.file,
                        "reused": True,
                        "verified_at": stored.verified_at,
                        "duration_s": time.perf_counter() - start,
                    }
                )
        result = growth_result(self.spec, claim, points)
        if key is not None and self.verdicts is not None:
            self.verdicts.put(key, result, {})
        return result

    def xfail_reason(self, claim_id: str, key: str) -> str | None:
        """The claim's ``xfail`` reason if it covers this result, else None.

        On a claim with a growth expectation, ``xfail`` covers the growth result, and its points
        only if they have expectations of their own.
        """
        claim = self.spec.claim(claim_id)
        if not claim.xfail or key == growth_key(claim_id) or growth_spec(claim) is None:
            return claim.xfail
        return claim.xfail if any(e.kind != "growth" for e in claim.expectations) else None

    def point_result(self, key: str) -> ClaimResult:
        """Run one sweep point on its own (no growth result, not memoised): an executor's task."""
        return self._resolve(self._point(key))

    def stored_result(self, key: str) -> ClaimResult | None:
        """The reused result of one point if the verdict store has it, else None (runs nothing)."""
        point = self._point(key)
        stored = self.reuse.lookup(point)
        return None if stored is None else self._reused(point, stored, time.perf_counter())

    def key_of(self, point: ClaimPoint) -> str | None:
        """The verdict key of a point (:meth:`verifier.engine.reuse.VerdictReuse.key_of`), or
        None: no store, or a kind (its own or a dependency's) without an engine key."""
        return self.reuse.key_of(point)

    def _point(self, key: str) -> ClaimPoint:
        for points in self.points.values():
            for p in points:
                if p.key == key:
                    return p
        raise KeyError(key)

    def result(self, key: str) -> ClaimResult:
        """The result with this key."""
        for claim in self.spec.claims:
            if key in self.claim_keys(claim.id):
                return next(r for r in self.claim_results(claim.id) if r.key == key)
        raise KeyError(key)

    def run(self, select: Callable[[str], bool] | None = None) -> Report:
        """Run every (selected) claim and return the report."""
        start = time.perf_counter()
        chosen = [
            claim.id
            for claim in self.spec.claims
            if select is None or any(select(k) for k in self.claim_keys(claim.id))
        ]
        for claim_id in chosen:
            self.claim_results(claim_id)
        # collected after every claim ran: a dependent may have re-run a reused dependency
        results = [
            r
            for claim_id in chosen
            for r in self._results[claim_id]
            if select is None or select(r.key)
        ]
        return Report(
            spec=self.spec.name,
            file=self.spec.source.file,
            spec_hash=self.spec_hash,
            verifier_version=__version__,
            results=results,
            duration_s=time.perf_counter() - start,
            provenance=provenance.collect(self.spec.source.file),
        )

    def _dependency_points(
        self, claim: ClaimBase, point: dict[str, Any] | None
    ) -> list[tuple[str, ClaimPoint]]:
        """The point of each claim ``claim`` depends on that serves sweep point ``point``.

        A swept claim reads the dependency's point with the same sweep values, if any, else
        the dependency's first point.
        """
        chosen = []
        for dep in claim.depends_on():
            points = self.points[dep]
            same = [p for p in points if point is not None and p.point == point]
            if point is not None and points[0].point is not None and not same:
                raise VerifierError(f"claim {dep!r}, which this claim needs, has no point {point}")
            chosen.append((dep, (same or points)[0]))
        return chosen

    def _dependencies(
        self, claim: ClaimBase, point: dict[str, Any] | None = None
    ) -> dict[str, Measurement]:
        deps: dict[str, Measurement] = {}
        for dep, dep_point in self._dependency_points(claim, point):
            self.claim_results(dep)
            measurement = self._measurements.get(dep_point.key)
            stored = self.reuse.reused(dep_point.key)
            if measurement is None and stored is not None:
                measurement = stored_measurement(stored, partial(self._rerun, dep_point))
            if measurement is None:
                raise VerifierError(f"claim {dep!r}, which this claim needs, did not complete")
            deps[dep] = measurement
        return deps

    def _rerun(self, point: ClaimPoint) -> Measurement:
        """Run a reused point for real; its fresh result replaces the reused one.

        If the fresh verdict differs from the stored one, the points that depend on it are
        verified again too (those not yet reused in this run).
        """
        fresh = self._run_point(point)
        self.reuse.rerun_done(point.key, fresh)
        self._store(point, fresh)
        claim_id = point.claim.id
        points = [p.key for p in self.points[claim_id]]
        old = {r.key: r for r in self._results[claim_id] if r.key in points}
        old[point.key] = fresh
        self.adopt(claim_id, [old[k] for k in points])
        self.reuse.forget(point.key)
        measurement = self._measurements.get(point.key)
        if measurement is None:
            raise VerifierError(
                f"claim {claim_id!r}, which this claim needs, did not complete when re-run "
                f"for its in-process results: {fresh.message}"
            )
        return measurement

    def _resolve(self, point: ClaimPoint) -> ClaimResult:
        """The point's stored result if there is one, else its fresh (and then stored) result."""
        start = time.perf_counter()
        stored = self.reuse.lookup(point)
        if stored is not None:
            self.reuse.reuse(point, stored)
            return self._reused(point, stored, start)
        result = self._run_point(point)
        self.reuse.verified(point.key)
        self._store(point, result)
        return result

    def _reused(self, point: ClaimPoint, stored: StoredVerdict, start: float) -> ClaimResult:
        return stored.result.model_copy(
            update={
                "key": point.key,
                "claim_id": point.claim.id,
                "point": point.point,
                "xfail": self.xfail_reason(point.claim.id, point.key),
                "file": self.spec.source.file,
                "line": point.line,
                "reused": True,
                "verified_at": stored.verified_at,
                "duration_s": time.perf_counter() - start,
            }
        )

    def _store(self, point: ClaimPoint, result: ClaimResult) -> None:
        measurement = self._measurements.get(point.key)
        self.reuse.put(point, result, measurement.symbols if measurement else {})

    def _run_point(self, point: ClaimPoint) -> ClaimResult:
        claim = point.claim
        base = {
            "key": point.key,
            "claim_id": claim.id,
            "check": claim.check_kind(),
            "point": point.point,
            "xfail": self.xfail_reason(claim.id, point.key),
            "file": self.spec.source.file,
            "line": point.line,
        }
        start = time.perf_counter()
        measurement: Measurement | None = None
        try:
            kind = REGISTRY[claim.check_kind()]
            kind.admit(point.instance, claim)
            kind.preflight(point.instance, claim, self.limits)
            self._preflight_sources(kind, point)
            ctx = CheckContext(
                instance=point.instance,
                claim=claim,
                limits=self.limits,
                dependencies=self._dependencies(claim, point.point),
                progress=self._progress_for(point.key),
                is_cancelled=self.is_cancelled,
                spec_hash=self.spec_hash,
                cache_dir=self.cache_dir,
                memo=self._memo,
            )
            if claim.search_spec() is None:
                measurement = kind.run(ctx)
            else:  # doubling then bisection over one field (verifier/engine/search.py)

                def measure_at(inst: Any, cl: Any) -> Measurement:
                    kind.preflight(inst, cl, self.limits)
                    return kind.run(replace(ctx, instance=inst, claim=cl))

                measurement = run_minimize(point.instance, claim, measure_at, kind.explain)
        except Cancelled:
            raise
        except (SpecError, LimitExceeded, SolverError, VerifierError) as exc:
            text = exc.render() if isinstance(exc, SpecError) else str(exc)
            message = f"{type(exc).__name__}: {text}"
            return self._finish(base, start, status="error", message=message)
        except Exception as exc:  # a bug: report it as an error, keep the traceback in the log
            if out_of_memory(exc):  # not a bug: the machine's memory, said without a traceback
                log.warning("claim %s ran out of memory: %s", point.key, exc)
                return self._finish(base, start, status="error", message=OUT_OF_MEMORY)
            log.exception("internal error in claim %s", point.key)
            return self._finish(
                base, start, status="error", message=f"internal error: {type(exc).__name__}: {exc}"
            )
        self._measurements[point.key] = measurement
        symbols = {**point.instance.symbol_values(), **measurement.symbols}
        point_expectations = [e for e in claim.expectations if e.kind != "growth"]
        outcomes, verdict = judge_all(
            point_expectations,
            measurement.values,
            symbols,
            measurement.replicates,
            measurement.require,
        )
        expectations = [
            ExpectationResult(**vars(o), tol=e.tol if e.kind == "equals" else None)
            for e, o in zip(point_expectations, outcomes, strict=True)
        ]
        # a check that calls its own values undecided (a sandwich straddling the threshold, an
        # uncertified minimum) cannot fail the claim with them either (docs/verdicts.md)
        status: str = "undecided" if measurement.status == "undecided" else verdict
        if base["xfail"] and status in ("passed", "failed"):
            status = "xpassed" if status == "passed" else "xfailed"
        return self._finish(
            base,
            start,
            status=status,
            method=measurement.method,
            measured=measurement.values,
            expectations=expectations,
            evidence=measurement.evidence,
            message=measurement.message,
            history=[ReplicateHistory.model_validate(h) for h in measurement.history],
        )

    def _finish(self, base: dict[str, Any], start: float, **fields: Any) -> ClaimResult:
        return ClaimResult(**base, **fields, duration_s=time.perf_counter() - start)

    def _progress_for(self, key: str) -> Callable[[float, str], None] | None:
        if self.progress is None:
            return None
        outer = self.progress
        return lambda fraction, message: outer(key, fraction, message)


def run_spec(spec: Spec, limits: Limits | None = None, **kwargs: Any) -> Report:
    """Preflight then run every claim of ``spec``."""
    runner = SpecRunner(spec, limits, **kwargs)
    runner.preflight()
    return runner.run()
