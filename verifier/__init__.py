"""Declarative verification of geometric factual-recall claims (see ../shared/THEORY.md)."""

__version__ = "0.1.0"
