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


def construction(name: str) -> Construction[Any, Any]:
    """The construction called ``name``.

    Raises:
        SpecError: unknown name, listing the known ones.
    """
    if name not in CONSTRUCTIONS:
        raise SpecError(
            f"unknown construction {name!r}; expected one of {', '.join(CONSTRUCTIONS)}"
        )
    return CONSTRUCTIONS[name]
