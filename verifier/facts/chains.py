"""Multi-hop facts: chains of relations over seeded bijections (docs/theory.md sections 1 and 5).

A chain ``c = (r_1..r_k)`` in ``[R]^k`` composes the single-hop bijections,
``pi_c = pi_{r_k} o ... o pi_{r_1}``; query ``(x, c)`` has answer ``pi_c(x)`` and intermediate
entities ``y_i = pi_{r_i}(y_{i-1})``, ``y_0 = x``. The bijections are exactly those of
:class:`verifier.facts.bijections.BijectionFacts` with the same N, R and seed.

Token layout as in the single hop: entities ``0..N-1``, relations ``N..N+R-1``. Sequences:
``[r_1..r_k, x]`` (no chain-of-thought) and ``[r_1..r_k, x, y_1..y_{k-1}]`` (chain-of-thought).
Queries are chain-major (query ``q`` is chain ``q // N``, subject ``q % N``) and are produced in
bounded batches, so the ``N * |C|`` queries never sit in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from verifier.facts.bijections import BijectionFacts


@dataclass(frozen=True)
class ChainFacts:
    """Depth-k queries over R seeded bijections.

    Attributes:
        n_entities: N.
        n_relations: R.
        hops: k.
        seed: the instance seed (the bijections are the single-hop ones for this seed).
        chain_list: the chains, or None for all ``R**k`` in lexicographic order.
    """

    n_entities: int
    n_relations: int
    hops: int
    seed: int
    chain_list: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.hops < 1:
            raise ValueError(f"hops: expected >= 1, got {self.hops}")
        for chain in self.chain_list or ():
            if len(chain) != self.hops or not all(0 <= r < self.n_relations for r in chain):
                raise ValueError(
                    f"chain {chain}: expected {self.hops} relations in 0..{self.n_relations - 1}"
                )

    @cached_property
    def single_hop(self) -> BijectionFacts:
        """The underlying single-hop facts (shared attributes)."""
        return BijectionFacts(self.n_entities, self.n_relations, self.seed)

    @property
    def perms(self) -> np.ndarray:
        """``(R, N)`` int64: ``perms[r, s] = pi_r(s)``."""
        return self.single_hop.perms

    @property
    def n_chains(self) -> int:
        """``|C|``: ``R**k`` or the length of the chain list."""
        return self.n_relations**self.hops if self.chain_list is None else len(self.chain_list)

    @property
    def n_queries(self) -> int:
        """``N * |C|``."""
        return self.n_entities * self.n_chains

    @property
    def n_vocab(self) -> int:
        """Input vocabulary: entities then relations."""
        return self.n_entities + self.n_relations

    @cached_property
    def _chain_table(self) -> np.ndarray | None:
        if self.chain_list is None:
            return None
        return np.asarray(self.chain_list, dtype=np.int64).reshape(-1, self.hops)

    def chains(self, index: np.ndarray) -> np.ndarray:
        """``(len(index), k)`` relations of the chains with these indices.

        With ``chains: all`` chain ``c`` is the base-R expansion of ``c``, ``r_1`` most significant.
        """
        index = np.asarray(index, dtype=np.int64)
        table = self._chain_table
        if table is not None:
            return np.asarray(table[index])
        digits = np.empty((len(index), self.hops), dtype=np.int64)
        rest = index.copy()
        for t in range(self.hops - 1, -1, -1):
            digits[:, t] = rest % self.n_relations
            rest //= self.n_relations
        return digits

    def all_chains(self) -> np.ndarray:
        """``(|C|, k)`` every chain (small: only for layouts, never per query)."""
        return self.chains(np.arange(self.n_chains))

    def query_arrays(
        self, start: int = 0, stop: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Queries ``start..stop`` in canonical order: ``(subjects (b,), chains (b, k))``."""
        stop = self.n_queries if stop is None else min(stop, self.n_queries)
        index = np.arange(start, stop, dtype=np.int64)
        return index % self.n_entities, self.chains(index // self.n_entities)

    def query_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every query as ``(subjects, chains)``, at most ``batch_size`` at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        for start in range(0, self.n_queries, batch_size):
            yield self.query_arrays(start, start + batch_size)

    def path(self, subjects: np.ndarray, chains: np.ndarray) -> np.ndarray:
        """``(b, k)`` intermediate entities ``y_1..y_k`` (``y_k = pi_c(x)``)."""
        out = np.empty(chains.shape, dtype=np.int64)
        y = np.asarray(subjects, dtype=np.int64)
        for t in range(chains.shape[1]):
            y = self.perms[chains[:, t], y]
            out[:, t] = y
        return out

    def answers(self, subjects: np.ndarray, chains: np.ndarray) -> np.ndarray:
        """``(b,)`` answers ``pi_c(x)``."""
        return self.path(subjects, chains)[:, -1]

    def tokens(self, subjects: np.ndarray, chains: np.ndarray) -> torch.Tensor:
        """``(b, k + 1)`` sequences ``[r_1..r_k, x]``."""
        seq = np.concatenate([self.n_entities + chains, np.asarray(subjects)[:, None]], axis=1)
        return torch.from_numpy(seq.astype(np.int64))

    def cot_tokens(self, subjects: np.ndarray, chains: np.ndarray) -> torch.Tensor:
        """``(b, 2k)`` teacher-forced sequences ``[r_1..r_k, x, y_1..y_{k-1}]``."""
        path = self.path(subjects, chains)[:, :-1]
        seq = np.concatenate(
            [self.n_entities + chains, np.asarray(subjects)[:, None], path], axis=1
        )
        return torch.from_numpy(seq.astype(np.int64))

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """No-CoT ``(tokens (b, k+1), targets (b,))`` over every query, in bounded batches."""
        for subjects, chains in self.query_batches(batch_size):
            yield self.tokens(subjects, chains), torch.from_numpy(self.answers(subjects, chains))

    def compound_answers(self, subjects: np.ndarray) -> np.ndarray:
        """``(b, |C|)``: ``pi_c(x)`` for every chain, chain order as :meth:`all_chains`."""
        chains = self.all_chains()
        y = np.repeat(np.asarray(subjects, dtype=np.int64)[:, None], len(chains), axis=1)
        for t in range(self.hops):
            y = self.perms[chains[None, :, t], y]
        return y


def chain_facts(
    n_entities: int, n_relations: int, hops: int, seed: int, chains: str | Sequence[Sequence[int]]
) -> ChainFacts:
    """Facts from instance fields (``chains`` is ``"all"`` or a list of chains)."""
    chain_list = None if chains == "all" else tuple(tuple(int(r) for r in c) for c in chains)
    return ChainFacts(n_entities, n_relations, hops, seed, chain_list)
