"""Verdict reuse for one spec run: which claim points a :class:`VerdictStore` answers.

A point whose key (:meth:`VerdictReuse.key_of`, :func:`verifier.engine.verdicts.point_key`) is
stored, and whose dependencies' are, is not run: :meth:`VerdictReuse.lookup` returns its stored
verdict. A dependency that has to run again (never stored, say ``undecided``) makes its dependents
run again too, so no reused verdict rests on a re-run result. A point that does run and reads a
reused dependency gets the stored values at once (:func:`stored_measurement`); its in-process
objects (a trained model) come from running the dependency for real, on first read, and a fresh
result that differs from the stored one re-verifies the dependents not yet reused
(:meth:`VerdictReuse.rerun_done`).

The runner (:mod:`verifier.engine.runner`) owns the points and runs them; this module holds what
reuse remembers during the run: the keys, the verdicts found, the points reused and the points
verified here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from verifier.checks import Measurement
from verifier.checks.base import Method
from verifier.engine.report import ClaimResult
from verifier.engine.verdicts import StoredVerdict, VerdictStore, point_key

if TYPE_CHECKING:
    from verifier.engine.runner import ClaimPoint
    from verifier.limits import Limits

DependencyPoints = Callable[["ClaimPoint"], list[tuple[str, "ClaimPoint"]]]


class VerdictReuse:
    """What one spec run knows of stored verdicts.

    Args:
        store: the verdict store; None: nothing is reused or stored (every key is None).
        limits: the run's limits (part of every key; a claim's external inputs read them).
        dependencies: a point -> ``(claim id, point)`` of each point it reads.
    """

    def __init__(
        self,
        store: VerdictStore | None,
        limits: Limits,
        dependencies: DependencyPoints,
    ) -> None:
        self.store = store
        self._limit_settings = limits
        self._limits = limits.model_dump(mode="json")
        self._dependencies = dependencies
        self._keys: dict[str, str | None] = {}
        self._found: dict[str, StoredVerdict] = {}  # verdicts found in the store, by point key
        self._changed: set[str] = set()  # points verified here whose result no store confirms
        self._reused: dict[str, StoredVerdict] = {}  # points answered by the store

    def key_of(self, point: ClaimPoint) -> str | None:
        """The verdict key of a point, or None.

        None when there is no store, the point's kind or one of its dependencies' has no
        engine key, or what it reads beyond the spec cannot be read now: such a point is never
        reused.
        """
        if self.store is None:
            return None
        if point.key not in self._keys:
            claim = point.claim
            engine = self.store.engine(claim.check_kind())
            deps = {dep: self.key_of(p) for dep, p in self._dependencies(point)}
            inputs = claim.external_inputs(self._limit_settings)  # a model file's digest
            key = None
            if engine is not None and inputs is not None and None not in deps.values():
                dumped = claim.model_dump(mode="json", by_alias=True)
                key = point_key(
                    claim.check_kind(),
                    {**dumped, "inputs": inputs} if inputs else dumped,
                    point.instance.model_dump(mode="json"),
                    {k: v for k, v in deps.items() if v is not None},
                    self._limits,
                    engine,
                )
            self._keys[point.key] = key
        return self._keys[point.key]

    def lookup(self, point: ClaimPoint) -> StoredVerdict | None:
        """The point's stored verdict, if it and every point it depends on can be reused."""
        if point.key in self._found:
            return self._found[point.key]
        if point.key in self._changed:
            return None
        key = self.key_of(point)
        found = None if key is None or self.store is None else self.store.get(key)
        deps = [p for _, p in self._dependencies(point)]
        if found is not None and any(
            p.key in self._changed or self.lookup(p) is None for p in deps
        ):
            found = None
        if found is not None:  # a miss is looked up again: another run may store it meanwhile
            self._found[point.key] = found
        return found

    def reuse(self, point: ClaimPoint, stored: StoredVerdict) -> None:
        """Record that ``point`` is answered by ``stored``."""
        self._reused[point.key] = stored

    def reused(self, point_key: str) -> StoredVerdict | None:
        """The stored verdict that answered this point in this run, if one did."""
        return self._reused.get(point_key)

    def verified(self, point_key: str) -> None:
        """Record that the point was run here (its dependents must not rest on a stored one)."""
        self._changed.add(point_key)

    def rerun_done(self, point_key: str, fresh: ClaimResult) -> None:
        """A reused point was run for real: unless its fresh verdict and values are the stored
        ones, its dependents are verified again. It is no longer a reused point."""
        stored = self._reused.get(point_key)
        if stored is None or (stored.result.status, stored.result.measured) != (
            fresh.status,
            fresh.measured,
        ):
            self._changed.add(point_key)
            self._found.pop(point_key, None)

    def forget(self, point_key: str) -> None:
        """The point's fresh result replaced its reused one."""
        self._reused.pop(point_key, None)

    def put(self, point: ClaimPoint, result: ClaimResult, symbols: Mapping[str, float]) -> None:
        """Store the point's result under its key (a final verdict only; no key: nothing)."""
        key = self.key_of(point)
        if key is None or self.store is None:
            return
        self.store.put(key, result, symbols)

    def growth_key(self, claim: Any, instance: Any, point_keys: list[str | None]) -> str | None:
        """The key of a claim's growth result: over its points' keys (None if any has none)."""
        if self.store is None:
            return None
        engine = self.store.engine(claim.check_kind())
        if engine is None or None in point_keys:
            return None
        return point_key(
            "growth",
            claim.model_dump(mode="json", by_alias=True),
            instance.model_dump(mode="json"),
            {str(i): k for i, k in enumerate(point_keys) if k is not None},
            self._limits,
            engine,
        )


def stored_measurement(stored: StoredVerdict, rerun: Callable[[], Measurement]) -> Measurement:
    """A reused point's measurement: its stored values now; its in-process objects from
    ``rerun`` (running the point for real), called on first read only."""
    result = stored.result
    return Measurement(
        method=cast(Method, result.method or "exact"),
        values=dict(result.measured),
        evidence=dict(result.evidence),
        symbols=dict(stored.symbols),
        artifacts=OnFirstRead(lambda: rerun().artifacts),
        message=result.message,
    )


class OnFirstRead(Mapping[str, Any]):
    """A mapping computed on first access (a reused dependency's in-process objects)."""

    def __init__(self, load: Callable[[], Mapping[str, Any]]) -> None:
        self._load = load
        self._data: Mapping[str, Any] | None = None

    def _get(self) -> Mapping[str, Any]:
        if self._data is None:
            self._data = self._load()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())
