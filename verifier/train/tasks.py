"""Training tasks: every example of an instance as token rows and targets (single-hop facts,
multi-hop queries with or without chain-of-thought by teacher forcing)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts


@dataclass(frozen=True)
class TrainTask:
    """Every training example of an instance, as token rows and their targets.

    Attributes:
        tokens: ``(n, L)`` int64 input sequences.
        targets: ``(n,)`` int64 answers read at the last position, or ``(n, T)`` answers read at
            ``positions`` (teacher forcing: ``T = k`` steps per query).
        positions: the ``T`` target positions, or None for the last position only.
        n_vocab: input vocabulary (entities then relations).
        n_out: output vocabulary (attributes).
        n_entities: the first ``n_entities`` tokens are entities (the subject rows of ``W_E``).
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    positions: tuple[int, ...] | None
    n_vocab: int
    n_out: int
    n_entities: int

    def __post_init__(self) -> None:
        n, length = self.tokens.shape
        shape = (n,) if self.positions is None else (n, len(self.positions))
        if tuple(self.targets.shape) != shape:
            raise ValueError(f"targets: expected shape {shape}, got {tuple(self.targets.shape)}")
        if self.positions is not None and not all(0 <= p < length for p in self.positions):
            raise ValueError(f"positions: expected 0..{length - 1}, got {self.positions}")

    @property
    def n_examples(self) -> int:
        """Rows: facts or queries."""
        return int(self.tokens.shape[0])

    @property
    def n_ctx(self) -> int:
        """Sequence length L."""
        return int(self.tokens.shape[1])

    @property
    def steps_per_example(self) -> int:
        """Targets per row: 1, or k under teacher forcing."""
        return 1 if self.positions is None else len(self.positions)


def fact_task(facts: BijectionFacts) -> TrainTask:
    """All ``N*R`` single-hop facts: ``[r, s]`` -> ``pi_r(s)`` (relation-major order)."""
    subjects, relations = facts.fact_arrays()
    targets = torch.from_numpy(facts.answers(subjects, relations))
    tokens = facts.tokens(subjects, relations)
    return TrainTask(tokens, targets, None, facts.n_vocab, facts.n_attributes, facts.n_entities)


def query_task(facts: ChainFacts, cot: bool) -> TrainTask:
    """All ``N*|C|`` depth-k queries, in the canonical (chain-major) order.

    Without chain-of-thought: ``[r_1..r_k, x]`` -> ``pi_c(x)`` at the last position. With it
    (teacher forcing): ``[r_1..r_k, x, y_1..y_{k-1}]`` with the true intermediates, targets
    ``(y_1..y_k)`` at positions ``k..2k-1``.
    """
    subjects, chains = facts.query_arrays()
    n_vocab, n_entities = facts.n_vocab, facts.n_entities
    if not cot:
        targets = torch.from_numpy(facts.answers(subjects, chains))
        tokens = facts.tokens(subjects, chains)
        return TrainTask(tokens, targets, None, n_vocab, n_entities, n_entities)
    k = facts.hops
    path = torch.from_numpy(facts.path(subjects, chains))  # (n, k): y_1..y_k
    tokens = facts.cot_tokens(subjects, chains)
    return TrainTask(tokens, path, tuple(range(k, 2 * k)), n_vocab, n_entities, n_entities)


def as_task(data: BijectionFacts | TrainTask) -> TrainTask:
    """A task as is; single-hop facts as :func:`fact_task`."""
    return data if isinstance(data, TrainTask) else fact_task(data)
