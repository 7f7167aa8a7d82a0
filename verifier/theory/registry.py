"""The theorem registry: the built-ins of :mod:`verifier.theory.builtin`, then the plugins'
(entry point group ``verifier.theorems``, :mod:`verifier.plugins`, loaded on the first lookup) and
any theorem a caller adds with :func:`register_theorem` (a test). Lookups by id; the JSON form is
what ``verifier theorems --json`` prints and ``GET /v1/theorems`` serves."""

from __future__ import annotations

from typing import Any

from verifier import plugins
from verifier.errors import SpecError
from verifier.theory.builtin import BUILTIN_THEOREMS
from verifier.theory.declarations import Theorem

GROUP = "verifier.theorems"
_REGISTRY: dict[str, Theorem] = {t.id: t for t in BUILTIN_THEOREMS}


def register_theorem(theorem: Theorem, *, replace: bool = False) -> Theorem:
    """Add ``theorem`` to the registry and return it.

    Raises:
        ValueError: its id is taken (unless ``replace``).
    """
    if theorem.id in _REGISTRY and not replace and _REGISTRY[theorem.id] is not theorem:
        raise ValueError(f"theorem id {theorem.id!r} is already registered")
    _REGISTRY[theorem.id] = theorem
    return theorem


def register_plugin(name: str, obj: object) -> None:
    """Register a plugin's :class:`Theorem` (its id is the entry point's ``name``).

    Raises:
        TypeError: ``obj`` is not a Theorem.
        ValueError: its id differs from the entry point's, or is taken.
    """
    if not isinstance(obj, Theorem):
        raise TypeError(f"expected a verifier Theorem, got {type(obj).__name__}")
    if obj.id != name:
        raise ValueError(f"the theorem's id is {obj.id!r}, its entry point's name {name!r}")
    register_theorem(obj)


def theorems() -> list[Theorem]:
    """Every registered theorem, built-ins first, then the plugins' (loaded now)."""
    plugins.load(GROUP)
    return list(_REGISTRY.values())


def registry_json() -> list[dict[str, Any]]:
    """The registry's JSON form (what ``verifier theorems --json`` and ``/v1/theorems`` serve)."""
    return [t.to_dict() for t in theorems()]


def get_theorem(theorem_id: str) -> Theorem:
    """The theorem with this id.

    Raises:
        SpecError: unknown id, listing the known ones.
    """
    plugins.load(GROUP)
    if theorem_id not in _REGISTRY:
        raise SpecError(
            f"unknown theorem {theorem_id!r}; expected one of {', '.join(_REGISTRY)} "
            f"(see `verifier theorems`)" + plugins.missing("theorem", theorem_id, GROUP)
        )
    return _REGISTRY[theorem_id]
