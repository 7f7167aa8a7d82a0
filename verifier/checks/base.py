"""The contract between the runner and a claim kind.

A check gets a :class:`CheckContext` (the point's instance and claim, the limits, results of
the claims it depends on, a progress callback and a cancellation probe) and returns a
:class:`Measurement`: the method it used, measured values, evidence, and the symbol values that
``expect:`` formulas may use. It never judges expectations itself; the runner does that, the
same way for every kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from verifier.errors import Cancelled
from verifier.limits import Limits

Method = Literal["symbolic", "certificate", "exact", "empirical"]
ProgressFn = Callable[[float, str], None]  # (fraction done in [0, 1], message)


@dataclass
class Measurement:
    """What a check measured.

    Attributes:
        method: how it was checked.
        values: measure name -> value (numbers, words, or None where not measured).
        evidence: JSON-serialisable support (a failing fact, a certificate, seeds).
        symbols: extra formula symbol values (for example m and d from a construction).
        artifacts: in-process objects a dependent claim may use (a trained model); never
            serialised.
        status: set to ``undecided`` when the method cannot decide (an undecidable limit).
        message: a short note for the report.
        replicates: per-replicate values of a replicated claim (``seeds:``), in seed order;
            ``values`` then holds their medians (:mod:`verifier.engine.replicates`).
        require: how the replicates meet ``expect`` (``all``, ``majority``, ``median``).
    """

    method: Method
    values: dict[str, Any]
    evidence: dict[str, Any] = field(default_factory=dict)
    symbols: dict[str, float] = field(default_factory=dict)
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    status: Literal["undecided"] | None = None
    message: str = ""
    replicates: list[dict[str, Any]] | None = None
    require: Literal["all", "majority", "median"] = "all"


@dataclass
class CheckContext:
    """Everything a check may use."""

    instance: Any  # the point's validated instance model
    claim: Any  # the point's validated claim model
    limits: Limits
    dependencies: Mapping[str, Measurement] = field(default_factory=dict)
    progress: ProgressFn | None = None
    is_cancelled: Callable[[], bool] = lambda: False
    spec_hash: str = ""
    cache_dir: str | None = None  # artifacts folder; None disables caching
    memo: dict[str, Any] = field(default_factory=dict)  # shared by one spec run's claims

    def report(self, fraction: float, message: str = "") -> None:
        """Report progress and raise :class:`Cancelled` if the caller asked to stop."""
        if self.is_cancelled():
            raise Cancelled("cancelled by the caller")
        if self.progress is not None:
            self.progress(min(max(fraction, 0.0), 1.0), message)


class CheckKind(Protocol):
    """A claim kind: limits first, then the measurement."""

    def preflight(self, instance: Any, claim: Any, limits: Limits) -> None:
        """Raise :class:`~verifier.errors.LimitExceeded` before any work if over a limit."""

    def run(self, ctx: CheckContext) -> Measurement:
        """Measure."""
        ...


# Built-in kinds and the module that registers each. A module is imported the first time its
# kind is looked up, so a spec of constructions never pays for cvxpy, and a worker process or
# the CLI starts without importing every solver.
BUILTIN_KINDS: dict[str, str] = {
    "bound": "verifier.checks.bound",
    "budget": "verifier.checks.multihop",
    "construction": "verifier.checks.construction",
    "feasibility": "verifier.checks.feasibility",
    "training": "verifier.checks.training",
    "transfer": "verifier.checks.transfer",
}
_LOADED: dict[str, CheckKind] = {}


class _Registry(Mapping[str, CheckKind]):
    """``check:`` tag -> kind; built-in kinds are imported on first lookup."""

    def __getitem__(self, tag: str) -> CheckKind:
        if tag not in _LOADED and tag in BUILTIN_KINDS:
            importlib.import_module(BUILTIN_KINDS[tag])
        return _LOADED[tag]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(BUILTIN_KINDS) | set(_LOADED)))

    def __len__(self) -> int:
        return len(set(BUILTIN_KINDS) | set(_LOADED))


REGISTRY: Mapping[str, CheckKind] = _Registry()


def register(tag: str) -> Callable[[type], type]:
    """Class decorator registering a check kind under its ``check:`` tag."""

    def wrap(cls: type) -> type:
        _LOADED[tag] = cls()
        return cls

    return wrap


__all__ = ["Cancelled", "CheckContext", "CheckKind", "Measurement", "Method", "register"]
