"""The verifier's exception hierarchy: every error a user can meet is one of these."""

from __future__ import annotations


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
    """Requested work is over a configured limit; raised before any work starts."""


class SolverError(VerifierError):
    """A numerical solver failed, timed out or returned an answer that did not re-check."""


class Cancelled(VerifierError):
    """The run was cancelled by its caller."""
