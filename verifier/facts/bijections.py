"""Seeded random bijections and the query sequences of docs/theory.md section 1.

Token layout: entities ``0..N-1``, then relations ``N..N+R-1``. A single-hop query is the
sequence ``[r, x]`` (relation token, then the subject); its answer is ``pi_r(x)``, an index
into the attribute set (``N`` shared attributes, or ``R*N`` when each relation has its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from verifier.seeds import Stream, rng


@dataclass(frozen=True)
class BijectionFacts:
    """R random bijections over N entities.

    Attributes:
        n_entities: N.
        n_relations: R.
        seed: the instance seed.
        disjoint: each relation has its own N attributes (answers offset by ``r*N``).
    """

    n_entities: int
    n_relations: int
    seed: int
    disjoint: bool = False

    @cached_property
    def perms(self) -> np.ndarray:
        """``(R, N)`` int64: ``perms[r, s] = pi_r(s)``."""
        return np.stack(
            [
                rng(self.seed, Stream.BIJECTION, r).permutation(self.n_entities)
                for r in range(self.n_relations)
            ]
        ).astype(np.int64)

    @property
    def n_facts(self) -> int:
        """N*R."""
        return self.n_entities * self.n_relations

    @property
    def n_attributes(self) -> int:
        """Size of the answer vocabulary: N (shared) or R*N (disjoint)."""
        return self.n_entities * (self.n_relations if self.disjoint else 1)

    @property
    def n_vocab(self) -> int:
        """Input vocabulary: entities then relations."""
        return self.n_entities + self.n_relations

    def relation_token(self, r: int | np.ndarray) -> int | np.ndarray:
        """Token id of relation ``r``."""
        return self.n_entities + r

    def answers(self, subjects: np.ndarray | int, relations: np.ndarray | int) -> np.ndarray:
        """Answer indices (into the attribute vocabulary) for paired subjects and relations."""
        targets: np.ndarray = self.perms[relations, subjects]
        if self.disjoint:
            targets = targets + relations * self.n_entities
        return targets

    def fact_arrays(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, ...]:
        """Facts ``start..stop`` in the canonical order (relation-major): (subjects, relations)."""
        stop = self.n_facts if stop is None else min(stop, self.n_facts)
        index = np.arange(start, stop, dtype=np.int64)
        return index % self.n_entities, index // self.n_entities

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """All facts as ``(tokens (batch, 2), targets (batch,))``, in bounded batches."""
        for start in range(0, self.n_facts, batch_size):
            subjects, relations = self.fact_arrays(start, start + batch_size)
            yield (
                self.tokens(subjects, relations),
                torch.from_numpy(self.answers(subjects, relations)),
            )

    def tokens(self, subjects: np.ndarray, relations: np.ndarray) -> torch.Tensor:
        """``(batch, 2)`` sequences ``[r, x]``."""
        seq = np.stack([self.n_entities + relations, subjects], axis=1)
        return torch.from_numpy(seq.astype(np.int64))

    def with_perms(self, perms: np.ndarray) -> BijectionFacts:
        """Same sizes with given bijections (used for transfer to new facts)."""
        facts = BijectionFacts(self.n_entities, self.n_relations, self.seed, self.disjoint)
        facts.__dict__["perms"] = np.asarray(perms, dtype=np.int64)
        return facts
