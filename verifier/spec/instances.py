"""Instances: the facts a spec is about (docs/theory.md section 1), discriminated on ``kind``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from verifier.spec.base import StrictModel

MAX_HOPS = 64  # k; N*R**k is bounded separately by the max_queries limit


class BijectionInstance(StrictModel):
    """R random bijections from N subjects to the attribute set (docs/theory.md section 1)."""

    kind: Literal["bijection"]
    entities: int = Field(ge=2, description="N, the number of entities")
    relations: int = Field(ge=1, description="R, the number of relations")
    attributes: Literal["shared", "disjoint"] = Field(
        "shared", description="shared: attributes are the entities; disjoint: N per relation"
    )
    seed: int = Field(0, ge=0, description="seed of every random draw")

    @property
    def hops(self) -> int:
        """Single hop: k = 1."""
        return 1

    def symbol_values(self) -> dict[str, float]:
        """Values of the formula symbols this instance fixes."""
        return {"N": self.entities, "R": self.relations, "k": 1}


class MultiHopInstance(StrictModel):
    """Chains of k relations over R random bijections; queries ``(x, c)``, answer ``pi_c(x)``.

    ``pi_c = pi_{r_k} o ... o pi_{r_1}``; the single-hop bijections are those of a bijection
    instance with the same N, R and seed. Sequences ``[r_1..r_k, x]`` without chain-of-thought,
    ``[r_1..r_k, x, y_1..y_{k-1}]`` with it (docs/theory.md section 1).
    """

    kind: Literal["multi_hop"]
    entities: int = Field(ge=2, description="N, the number of entities")
    relations: int = Field(ge=1, description="R, the number of relations")
    hops: int = Field(ge=1, le=MAX_HOPS, description="k, relations per chain")
    cot: bool = Field(
        False,
        description="chain-of-thought: decode y_1..y_k one step at a time (training: teacher "
        "forcing; budget claims: Ck, else Gk; a construction claim names chain or cot to match)",
    )
    chains: Literal["all"] | list[list[int]] = Field(
        "all", description="all R**k chains, or a list of chains [r_1, .., r_k] (0-based)"
    )
    attributes: Literal["shared"] = Field(
        "shared", description="relations compose, so the attributes are the entities"
    )
    seed: int = Field(0, ge=0, description="seed of every random draw")

    @model_validator(mode="after")
    def _check_chains(self) -> MultiHopInstance:
        if self.chains == "all":
            return self
        if not self.chains:
            raise ValueError("chains: expected 'all' or a non-empty list of chains, got []")
        seen: dict[tuple[int, ...], int] = {}
        for i, chain in enumerate(self.chains):
            if len(chain) != self.hops:
                raise ValueError(
                    f"chains[{i}]: expected {self.hops} relations (hops = {self.hops}), "
                    f"got {len(chain)}: {chain}"
                )
            for r in chain:
                if not 0 <= r < self.relations:
                    raise ValueError(
                        f"chains[{i}]: unknown relation {r}; expected one of "
                        f"0..{self.relations - 1} (relations = {self.relations})"
                    )
            if tuple(chain) in seen:
                raise ValueError(f"chains[{i}]: repeats chains[{seen[tuple(chain)]}] {chain}")
            seen[tuple(chain)] = i
        return self

    @property
    def n_chains(self) -> int:
        """R**k for ``chains: all``, else the length of the list."""
        return self.relations**self.hops if self.chains == "all" else len(self.chains)

    def symbol_values(self) -> dict[str, float]:
        """Values of the formula symbols this instance fixes."""
        return {"N": self.entities, "R": self.relations, "k": self.hops}


Instance = Annotated[BijectionInstance | MultiHopInstance, Field(discriminator="kind")]
