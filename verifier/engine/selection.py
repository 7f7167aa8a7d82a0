"""``-k EXPR`` selection, as pytest reads it: words matched as substrings, with and/or/not.

Parsed by a tiny recursive-descent parser (never ``eval``)::

    expr := term ("or" term)* ; term := factor ("and" factor)* ;
    factor := "not" factor | "(" expr ")" | WORD
"""

from __future__ import annotations

import re
from collections.abc import Callable

from verifier.errors import VerifierError

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


def compile_selector(expr: str) -> Callable[[str], bool]:
    """A predicate on result keys (``spec::claim[point]``), case-insensitive."""
    tokens = _TOKEN.findall(expr)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise VerifierError(f"-k {expr!r}: expected a word, got the end")
        pos += 1
        return str(tokens[pos - 1])

    def parse_expr() -> Callable[[str], bool]:
        parts = [parse_term()]
        while peek() == "or":
            take()
            parts.append(parse_term())
        return lambda s: any(p(s) for p in parts)

    def parse_term() -> Callable[[str], bool]:
        parts = [parse_factor()]
        while peek() == "and":
            take()
            parts.append(parse_factor())
        return lambda s: all(p(s) for p in parts)

    def parse_factor() -> Callable[[str], bool]:
        tok = take()
        if tok == "not":
            inner = parse_factor()
            return lambda s: not inner(s)
        if tok == "(":
            inner = parse_expr()
            if take() != ")":
                raise VerifierError(f"-k {expr!r}: expected ')'")
            return inner
        if tok in ("and", "or", ")"):
            raise VerifierError(f"-k {expr!r}: expected a word, got {tok!r}")
        word = tok.lower()
        return lambda s: word in s.lower()

    if not tokens:
        return lambda s: True
    predicate = parse_expr()
    if pos != len(tokens):
        raise VerifierError(f"-k {expr!r}: unexpected {tokens[pos]!r}")
    return predicate
