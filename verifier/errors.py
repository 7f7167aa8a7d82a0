"""The verifier's exception hierarchy: every error a user can meet is one of these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class VerifierError(Exception):
    """Base class of every error the verifier raises on purpose."""


class SpecError(VerifierError):
    """A spec is malformed: bad YAML, an unknown key, a wrong type, a bad formula.

    Args:
        message: what was expected and what came.
        file: the spec's path (or a label such as ``<request>``).
        line: 1-based line in the spec, where known.
        key: dotted path of the offending key, where known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self.render())

    def render(self) -> str:
        """One line: ``file:line: key: message``."""
        where = self.file or "<spec>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def located(self, file: str | None, line: int | None) -> SpecError:
        """A copy with file and line filled in where they were missing."""
        return SpecError(
            self.message,
            file=self.file or file,
            line=self.line if self.line is not None else line,
            key=self.key,
        )


class FormulaError(SpecError):
    """A formula uses syntax outside the whitelist, an unknown symbol or an unknown function."""


class LimitExceeded(VerifierError):
    """Requested work is over a configured limit; raised before any work starts.

    Args:
        name: the setting that refused the work (``max_facts``; ``VERIFIER_MAX_FACTS`` sets
            it), or None where a width search ran out of room under several settings at once.
        value: the amount asked for, or None where a search found no amount within ``limit``.
        limit: the setting's value, or the widest width the search could try.
        what: the amount as the user reads it (``N*R (facts)``), or the search's whole sentence.
        claim: the key of the claim that asked for the work, once known.
    """

    def __init__(
        self,
        name: str | None,
        value: int | None,
        limit: int,
        what: str,
        claim: str | None = None,
    ) -> None:
        self.name = name
        self.value = value
        self.limit = limit
        self.what = what
        self.claim = claim
        super().__init__(self.render())

    @classmethod
    def search_exhausted(
        cls, search: str, settings: tuple[str, ...], widest: int, goal: str
    ) -> LimitExceeded:
        """A width search (``code_dim auto``) found no width up to ``widest`` (the least of
        what ``settings`` allow; below 1 when they allow none) that meets ``goal``."""
        within = (
            f"up to {widest:,} ({', '.join(settings)})"
            if widest >= 1
            else f"fits {' and '.join(settings)}"
        )
        return cls(None, None, widest, f"{search}: no width {within} {goal}")

    def render(self) -> str:
        """One line: ``claim 'c': N is 2,000, over the limit max_entities = 1,000 (...)``."""
        where = f"claim {self.claim!r}: " if self.claim else ""
        if self.name is None or self.value is None:
            return where + self.what
        return (
            f"{where}{self.what} is {self.value:,}, over the limit {self.name} = {self.limit:,} "
            f"(set VERIFIER_{self.name.upper()} to change it)"
        )

    def in_claim(self, claim: str) -> LimitExceeded:
        """A copy naming the claim that asked for the work."""
        return LimitExceeded(self.name, self.value, self.limit, self.what, claim)

    def __reduce__(self) -> tuple[type[LimitExceeded], tuple[object, ...]]:
        """Pickle by the fields, so that it crosses a process boundary whole."""
        return (type(self), (self.name, self.value, self.limit, self.what, self.claim))


@dataclass(frozen=True)
class SolverFailure:
    """One solver's failure: its name and, in its own words, its status or exception."""

    solver: str
    reason: str

    def __str__(self) -> str:
        return f"{self.solver}: {self.reason}"


class SolverError(VerifierError):
    """No solver answered a program ``optimal``: each one's failure, in the order tried.

    Args:
        what: names the program (``P1 target 17``).
        failures: one per solver tried.
    """

    def __init__(self, what: str, failures: Sequence[SolverFailure]) -> None:
        self.what = what
        self.failures = tuple(failures)
        super().__init__(
            f"{what}: no solver returned an optimal answer: " + "; ".join(map(str, failures))
        )

    def __reduce__(self) -> tuple[type[SolverError], tuple[str, tuple[SolverFailure, ...]]]:
        return SolverError, (self.what, self.failures)  # pickles across worker processes


class Cancelled(VerifierError):
    """The run was cancelled by its caller."""
