"""The contract between the runner and a claim kind.

A check gets a :class:`CheckContext` (the point's instance and claim, the limits, results of
the claims it depends on, a progress callback and a cancellation probe) and returns a
:class:`Measurement`: the method it used, measured values, evidence, and the symbol values that
``expect:`` formulas may use. It never judges expectations itself; the runner does that, the
same way for every kind.

A kind subclasses :class:`CheckKind` with the instance and claim models it accepts as type
arguments (``CheckKind[BijectionInstance, TransferClaim]``) and registers under its ``check:``
tag (:func:`register`). Its limits are all checked before any claim of the spec runs:
:meth:`CheckKind.preflight` on the point, :meth:`CheckKind.preflight_sources` on what depends
on the claims it reads (a transfer's LP over the trained model's shape).
"""

from __future__ import annotations

import functools
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args, get_origin

from verifier import plugins
from verifier.errors import Cancelled, SpecError
from verifier.limits import Limits
from verifier.spec import ClaimBase
from verifier.spec.claims import register_claim_model

InstanceT = TypeVar("InstanceT")  # the instance model(s) a kind accepts
ClaimT = TypeVar("ClaimT")  # the claim model of a kind
NarrowT = TypeVar("NarrowT")
KindT = TypeVar("KindT", bound="CheckKind[Any, Any]")

Method = Literal["symbolic", "certificate", "exact", "certified", "empirical"]
METHOD_MEANINGS: dict[str, str] = {  # every Method, strongest first: the legends and docs read it
    "symbolic": "proved from the formulas (sympy), for every value of the symbols",
    "certificate": "a convex program's solution, re-checked in float64 (a feasible point or a "
    "dual certificate of infeasibility)",
    "exact": "every fact enumerated through the real forward pass, in float64",
    "certified": "every fact through the real forward pass; a sound float64 bound on the "
    "codebook decides most facts, the full logits the rest",
    "empirical": "measured on trained models (one per seed); float32 training differs between "
    "CPUs and thread counts",
}
ProgressFn = Callable[[float, str], None]  # (fraction done in [0, 1], message)


@dataclass
class Measurement:
    """What a check measured.

    Attributes:
        method: how it was checked.
        values: measure name -> value (numbers, words, or None where not measured).
        evidence: JSON-serialisable support (a failing fact, a certificate, seeds).
        symbols: extra formula symbol values (for example m and d from a construction).
        artifacts: in-process objects a dependent claim may use, never serialised: a
            training claim's :class:`~verifier.checks.trained.TrainedModels` (under
            ``TRAINED_MODELS``), a construction's ``model``, ``facts``, ``codes``, ``layout``.
        status: set to ``undecided`` when the method cannot decide (an undecidable limit).
        message: a short note for the report.
        replicates: per-replicate values of a replicated claim (``seeds:``), in seed order;
            ``values`` then holds their medians (:mod:`verifier.engine.replicates`).
        require: how the replicates meet ``expect`` (``all``, ``majority``, ``median``).
        history: training curves, one per replicate: ``{"seed", "step", "loss", "accuracy"}``
            with equal-length lists (at most 200 rows each), as the trainer recorded them.
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
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class CheckContext(Generic[InstanceT, ClaimT]):
    """Everything a check may use: the point's validated instance and claim, typed as its kind
    declares them."""

    instance: InstanceT
    claim: ClaimT
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

    def on(self, instance: NarrowT) -> CheckContext[NarrowT, ClaimT]:
        """This context on ``instance``: its own instance narrowed to one member of a union
        (a kind accepting both instance kinds hands each to its own code)."""
        return CheckContext(
            instance=instance,
            claim=self.claim,
            limits=self.limits,
            dependencies=self.dependencies,
            progress=self.progress,
            is_cancelled=self.is_cancelled,
            spec_hash=self.spec_hash,
            cache_dir=self.cache_dir,
            memo=self.memo,
        )


class CheckKind(ABC, Generic[InstanceT, ClaimT]):
    """A claim kind: limits first, then the measurement.

    A kind declares the instance and claim models it accepts as its type arguments, for example
    ``CheckKind[BijectionInstance | MultiHopInstance, TrainingClaim]``; :meth:`admit` checks a
    point against them at run time, so a kind's methods see only the types they declare.
    """

    INSTANCE_NOTE: ClassVar[str] = ""  # why other instance kinds are refused, for the message

    @abstractmethod
    def preflight(self, instance: InstanceT, claim: ClaimT, limits: Limits) -> None:
        """Raise :class:`~verifier.errors.LimitExceeded` before any work if over a limit."""

    def preflight_sources(
        self,
        instance: InstanceT,
        claim: ClaimT,
        sources: Mapping[str, ClaimBase],
        limits: Limits,
    ) -> None:
        """Limits that depend on the claims this one reads (``depends_on``: id -> that claim at
        the same point), before any of them runs. None by default."""

    @abstractmethod
    def run(self, ctx: CheckContext[InstanceT, ClaimT]) -> Measurement:
        """Measure."""

    def explain(self, instance: InstanceT, claim: ClaimT) -> dict[str, Any] | None:
        """Why a search's ``until`` cannot hold at this point, for the report (None: no
        diagnosis, the default)."""
        return None

    def admit(self, instance: object, claim: object) -> None:
        """Check that a point's instance and claim are of this kind's declared types: what lets
        the runner hand them, untyped from the registry, to :meth:`preflight` and :meth:`run`.

        Raises:
            SpecError: an instance kind this check does not accept (``instance.kind``).
            TypeError: a claim model this kind was not registered for (a registry bug).
        """
        instances, claim_type = declared_types(type(self))
        if not isinstance(claim, claim_type):
            raise TypeError(
                f"{type(self).__name__}: expected a {claim_type.__name__}, got {claim!r}"
            )
        if not isinstance(instance, instances):
            tag = getattr(claim, "check", "?")
            wanted = " or ".join(_instance_tag(t) for t in instances)
            got = getattr(instance, "kind", type(instance).__name__)
            raise SpecError(
                f"{tag} claims: expected a {wanted} instance, got kind {got!r}"
                + (f" ({self.INSTANCE_NOTE})" if self.INSTANCE_NOTE else ""),
                key="instance.kind",
            )


@functools.cache
def declared_types(kind: type[CheckKind[Any, Any]]) -> tuple[tuple[type, ...], type]:
    """(instance types, claim type) a kind class declares as ``CheckKind[I, C]``'s arguments
    (``I`` may be a union of instance models)."""
    for cls in kind.__mro__:
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is CheckKind:
                instance, claim = get_args(base)
                return get_args(instance) or (instance,), claim
    raise TypeError(f"{kind.__name__}: expected a subclass of CheckKind[Instance, Claim]")


def _instance_tag(model: type) -> str:
    """The ``kind:`` tag of an instance model (``bijection``, ``multi_hop``)."""
    fields = getattr(model, "model_fields", {})
    return str(get_args(fields["kind"].annotation)[0]) if "kind" in fields else model.__name__


# Built-in kinds and the module that registers each. A module is imported the first time its
# kind is looked up, so a spec of constructions never pays for cvxpy, and a worker process or
# the CLI starts without importing every solver.
BUILTIN_KINDS: dict[str, str] = {
    "bound": "verifier.checks.bound",
    "budget": "verifier.checks.budget",
    "construction": "verifier.checks.construction",
    "feasibility": "verifier.checks.feasibility",
    "model_file": "verifier.checks.model_file",
    "training": "verifier.checks.training",
    "transfer": "verifier.checks.transfer",
}
# A registry entry. The one place where the kinds' types are erased: a tag -> kind table cannot
# type each entry, so the runner calls CheckKind.admit on every point before its preflight and run.
AnyKind = CheckKind[Any, Any]
_LOADED: dict[str, AnyKind] = {}


PLUGIN_GROUP = "verifier.checks"  # plugins' kinds (verifier/plugins.py)


class _Registry(Mapping[str, AnyKind]):
    """``check:`` tag -> kind; built-in kinds are imported on first lookup, plugins' kinds
    (entry point group ``verifier.checks``) when a tag the built-ins lack is looked up."""

    def __getitem__(self, tag: str) -> AnyKind:
        if tag not in _LOADED and tag in BUILTIN_KINDS:
            importlib.import_module(BUILTIN_KINDS[tag])
        elif tag not in _LOADED:
            plugins.load(PLUGIN_GROUP)
        return _LOADED[tag]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(BUILTIN_KINDS) | set(_LOADED)))

    def __len__(self) -> int:
        return len(set(BUILTIN_KINDS) | set(_LOADED))


REGISTRY: Mapping[str, AnyKind] = _Registry()


def require_agreeing_instance_kinds(kind: type[CheckKind[Any, Any]]) -> None:
    """Check that a kind's declared instance models are the ones its claim model lists in
    ``INSTANCE_KINDS`` (the spec language refuses other instance kinds before importing any
    check, the kind narrows its types by the models: the two must name the same kinds).

    Raises:
        TypeError: they differ, naming both (a kind's own bug, found when it registers).
    """
    instances, claim = declared_types(kind)
    declared = sorted(_instance_tag(t) for t in instances)
    listed = sorted(getattr(claim, "INSTANCE_KINDS", ()))
    if declared != listed:
        raise TypeError(
            f"{kind.__name__} declares instance kinds {declared} but its claim model "
            f"{claim.__name__}.INSTANCE_KINDS lists {listed}"
        )


def register(tag: str) -> Callable[[type[KindT]], type[KindT]]:
    """Class decorator registering a check kind under its ``check:`` tag."""

    def wrap(cls: type[KindT]) -> type[KindT]:
        require_agreeing_instance_kinds(cls)  # fails here, not on the kind's first claim
        _LOADED[tag] = cls()
        return cls

    return wrap


def register_plugin(tag: str, obj: object) -> None:
    """Register a plugin's claim kind: ``obj`` a :class:`CheckKind` subclass declaring
    ``CheckKind[Instance, Claim]``, whose claim model has ``check: Literal[tag]``; the claim
    model joins the spec's claim union (:func:`verifier.spec.claims.register_claim_model`).

    Raises:
        TypeError: ``obj`` is not such a class.
        ValueError: ``tag`` is a built-in kind's or taken.
    """
    if not (isinstance(obj, type) and issubclass(obj, CheckKind)):
        raise TypeError(f"expected a CheckKind subclass, got {obj!r}")
    if tag in BUILTIN_KINDS or (tag in _LOADED and type(_LOADED[tag]) is not obj):
        raise ValueError(f"claim kind {tag!r} is already registered")
    require_agreeing_instance_kinds(obj)
    register_claim_model(tag, declared_types(obj)[1])
    _LOADED[tag] = obj()


__all__ = [
    "Cancelled",
    "CheckContext",
    "CheckKind",
    "Measurement",
    "Method",
    "declared_types",
    "register",
    "register_plugin",
]
