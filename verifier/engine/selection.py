"""``-k EXPR`` selection, as pytest reads it: words matched as substrings, with and/or/not.

Parsed by a tiny recursive-descent parser (never ``eval``)::

    expr := term ("or" term)* ; term := factor ("and" factor)* ;
    factor := "not" factor | "(" expr ")" | WORD
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

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

    def chain(
        op: str, part: Callable[[], Callable[[str], bool]], join: Callable[[Iterable[bool]], bool]
    ) -> Callable[[str], bool]:
        """``part (op part)*``, its parts' truths joined by ``join`` (any for or, all for and)."""
        parts = [part()]
        while peek() == op:
            take()
            parts.append(part())
        return lambda s: join(p(s) for p in parts)

    def parse_expr() -> Callable[[str], bool]:
        return chain("or", parse_term, any)

    def parse_term() -> Callable[[str], bool]:
        return chain("and", parse_factor, all)

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
