"""One interface for the explicit constructions: exact sizes from the theorem registry, and the
weights of :class:`verifier.model.OneLayerTransformer`.

A :class:`Construction` pairs a registry size function (:mod:`verifier.theory.sizes`, sympy
evaluated exactly) with a builder that writes the model for a set of facts and an attribute
codebook ``codes`` (``(n_codes, m)`` unit rows). The built model's shapes equal ``size`` at the
same N, R, A, k, m and chains (``tests/verifier/test_construction_registry.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, Literal, Protocol, TypeVar

import numpy as np
import torch

from verifier.bisection import find_maximum
from verifier.model import OneLayerTransformer
from verifier.theory.sizes import SizeParams, Sizes
from verifier.theory.symbols import instance_values


class Layout(Protocol):
    """Where each part lives in the residual stream; every layout knows its two widths."""

    @property
    def d_model(self) -> int:
        """Residual width d."""
        ...

    @property
    def d_mlp(self) -> int:
        """MLP width."""
        ...


def write_weights(model: OneLayerTransformer, **weights: np.ndarray) -> None:
    """Copy numpy arrays into the model's parameters of the same names."""
    with torch.no_grad():
        for name, value in weights.items():
            getattr(model, name).copy_(torch.from_numpy(value))


FactsT = TypeVar("FactsT")
LayoutT = TypeVar("LayoutT", bound=Layout)


@dataclass(frozen=True)
class Construction(Generic[FactsT, LayoutT]):
    """An explicit construction.

    Attributes:
        name: its name in the registry of constructions.
        label: how messages name it ("G1", "the compact construction").
        model: how limit messages name its model ("the G1 model", "the compact model").
        facts: the instance kind whose facts it stores: a ``construction:`` claim names one of
            its instance's kind (``bijection``: geometric, compact; ``multi_hop``: chain, cot).
        theorem: the registry theorem whose size quantities it realises.
        size: ``SizeParams -> Sizes``, exact, from :mod:`verifier.theory.sizes`.
        build: ``(facts, codes) -> (model, layout)``, the float64 weights.
        cot: multi-hop only: its queries are answered by greedy decoding of ``y_1..y_k``, one
            forward pass per step (the instance's ``cot: true``); else in one forward pass.
    """

    name: str
    label: str
    model: str
    facts: Literal["bijection", "multi_hop"]
    theorem: str
    size: Callable[[SizeParams], Sizes]
    build: Callable[[FactsT, np.ndarray], tuple[OneLayerTransformer, LayoutT]]
    cot: bool = False

    def widest_code_dim(self, params: SizeParams, max_width: int, max_code_dim: int) -> int:
        """Its width cap: the widest ``m <= max_code_dim`` whose ``d_model`` and ``d_mlp``
        (``size`` at ``params`` with ``code_dim = m``) fit ``max_width``; 0 when none does.

        Read from ``size`` by doubling and bisection, exact since every shape grows with m.
        """

        def fits(m: int) -> bool:
            sizes = self.size(replace(params, code_dim=m))
            return max(sizes.d_model, sizes.d_mlp) <= max_width

        return find_maximum(fits, 1, max_code_dim).minimum or 0


def size_params(instance: Any, code_dim: int, hops: int | None = None) -> SizeParams:
    """The size inputs of a validated instance model at code width ``code_dim`` (``hops``:
    another depth than the instance's, for a budget search)."""
    values = instance_values(instance)
    listed = getattr(instance, "chains", "all")
    return SizeParams(
        entities=values["N"],
        relations=values["R"],
        code_dim=code_dim,
        attributes=values["A"],
        hops=values["k"] if hops is None else hops,
        chains=None if listed == "all" or hops is not None else len(listed),
    )
