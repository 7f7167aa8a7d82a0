"""The constructions by name: the built-ins, then those of plugins (entry point group
``verifier.constructions``, :mod:`verifier.plugins`). Adding one in-tree: its module (a builder and
its :class:`Construction`, whose ``size`` is a shape formula of :mod:`verifier.theory.sizes`) and
its entry in :data:`BUILTIN`."""

from __future__ import annotations

from typing import Any

from verifier import plugins
from verifier.constructions.base import Construction
from verifier.constructions.chain import CHAIN
from verifier.constructions.compact import COMPACT
from verifier.constructions.cot import COT
from verifier.constructions.geometric import GEOMETRIC
from verifier.errors import SpecError

GROUP = "verifier.constructions"
GEOMETRIC_ALIAS = "geometric"  # deprecated on a multi_hop instance: resolved by its cot
BUILTIN: tuple[Construction[Any, Any], ...] = (GEOMETRIC, COMPACT, CHAIN, COT)
CONSTRUCTIONS: dict[str, Construction[Any, Any]] = {c.name: c for c in BUILTIN}


def register_plugin(name: str, obj: object) -> None:
    """Register a plugin's :class:`Construction` under its entry point's ``name``.

    Raises:
        TypeError: ``obj`` is not a Construction.
        ValueError: its name differs from the entry point's, or is taken.
    """
    if not isinstance(obj, Construction):
        raise TypeError(f"expected a verifier Construction, got {type(obj).__name__}")
    if obj.name != name:
        raise ValueError(f"the construction is named {obj.name!r}, its entry point {name!r}")
    if name in CONSTRUCTIONS and CONSTRUCTIONS[name] is not obj:
        raise ValueError(f"construction {name!r} is already registered")
    CONSTRUCTIONS[name] = obj


def constructions() -> dict[str, Construction[Any, Any]]:
    """Every registered construction by name: the built-ins, then the plugins' (loaded now)."""
    plugins.load(GROUP)
    return CONSTRUCTIONS


def construction(
    name: str, facts: str | None = None, key: str | None = None
) -> Construction[Any, Any]:
    """The construction called ``name`` (``facts``: one that stores that instance kind's facts).

    Raises:
        SpecError: unknown name (or one of another instance kind), listing the known ones and,
            for a plugin that failed to load, its error; under ``key`` when given.
    """
    known = [c.name for c in constructions().values() if facts is None or c.facts == facts]
    if name not in known:
        kind = "" if facts is None else f" for a {facts} instance"
        why = "" if name in CONSTRUCTIONS else plugins.missing("construction", name, GROUP)
        raise SpecError(
            f"construction {name!r}: expected one of {', '.join(known)}{kind}, got {name!r}{why}",
            key=key,
        )
    return CONSTRUCTIONS[name]


def multi_hop_name(cot: bool) -> str:
    """The registry name of the multi-hop construction an instance's ``cot`` picks: ``cot`` (Ck,
    greedy decoding of ``y_1..y_k``) when true, else ``chain`` (Gk, one forward pass).

    The one place ``cot`` chooses a construction: budget claims (which search the instance's
    mode), the deprecated ``name: geometric`` on a multi-hop instance, and the cost model.
    """
    return COT.name if cot else CHAIN.name
