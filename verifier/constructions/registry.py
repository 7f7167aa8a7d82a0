"""The constructions by name. Adding one: its module (a builder and its :class:`Construction`,
whose ``size`` is a shape formula of :mod:`verifier.theory.sizes`) and its entry here."""

from __future__ import annotations

from typing import Any

from verifier.constructions.base import Construction
from verifier.constructions.chain import CHAIN
from verifier.constructions.compact import COMPACT
from verifier.constructions.cot import COT
from verifier.constructions.geometric import GEOMETRIC
from verifier.errors import SpecError

CONSTRUCTIONS: dict[str, Construction[Any, Any]] = {
    c.name: c for c in (GEOMETRIC, COMPACT, CHAIN, COT)
}


def construction(
    name: str, facts: str | None = None, key: str | None = None
) -> Construction[Any, Any]:
    """The construction called ``name`` (``facts``: one that stores that instance kind's facts).

    Raises:
        SpecError: unknown name (or one of another instance kind), listing the known ones,
            under ``key`` when given.
    """
    known = [c.name for c in CONSTRUCTIONS.values() if facts is None or c.facts == facts]
    if name not in known:
        kind = "" if facts is None else f" for a {facts} instance"
        raise SpecError(
            f"construction {name!r}: expected one of {', '.join(known)}{kind}, got {name!r}",
            key=key,
        )
    return CONSTRUCTIONS[name]
