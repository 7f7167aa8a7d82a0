"""Pydantic validation errors, told in the spec's own words: each offending key, with its line.

``extra_forbidden`` becomes "unknown key 'entites' (did you mean 'entities'?)", ``missing``
becomes "required key 'entities' is missing", an unknown ``check:`` or ``kind:`` lists the known
ones, and a key or word with look-alike or invisible characters is shown with their code points
(``U+0430 CYRILLIC SMALL LETTER A``), since it looks right on screen. Locations are found by
walking the error's ``loc`` through the spec models and the loaded YAML together, so union
member labels and discriminator tags in ``loc`` are never mistaken for keys.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from verifier.errors import SpecError
from verifier.spec.yaml_lines import LineDict

MAX_SHOWN = 4  # problems spelled out in one message; the rest are counted
MAX_GOT = 60  # characters of a wrong string value quoted back

_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*): (.+)$", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """One located complaint: dotted key, line, message."""

    key: str
    line: int | None
    message: str


def shown(text: str) -> str:
    """``repr(text)``, plus the code points of any character outside printable ASCII."""
    odd = [ch for ch in dict.fromkeys(text) if not (ch.isascii() and ch.isprintable())]
    if not odd:
        return repr(text)
    names = ", ".join(
        f"U+{ord(ch):04X} {unicodedata.name(ch, 'a control character')}" for ch in odd
    )
    return f"{text!r} (contains {names})"


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """The closest choice to a misspelt ``word``, if one is close."""
    plain = unicodedata.normalize("NFKC", word)
    plain = "".join(ch for ch in plain if unicodedata.category(ch) not in ("Cf", "Cc", "Zs"))
    for candidate in (word, plain):
        match = difflib.get_close_matches(candidate, list(choices), n=1, cutoff=0.6)
        if match:
            return match[0]
    return None


# --- walking a pydantic loc through the models and the data ------------------------------------


@dataclass
class _Where:
    keys: list[str]
    line: int | None
    node: Any  # the data at the end of the walk (None past the data)
    model: type[BaseModel] | None  # the model whose fields the last mapping holds


def _unwrap(ann: Any) -> tuple[Any, str | None]:
    """(inner annotation, discriminator) of ``Annotated[X, Field(discriminator=...)]``."""
    discriminator = None
    while typing.get_origin(ann) is typing.Annotated:
        args = typing.get_args(ann)
        for meta in args[1:]:
            found = getattr(meta, "discriminator", None)
            if isinstance(found, str):
                discriminator = found
        ann = args[0]
    return ann, discriminator


def _union_members(ann: Any) -> list[Any] | None:
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(ann) if a is not type(None)]
    return None


def _tag_member(members: list[Any], discriminator: str, tag: Any) -> Any:
    for member in members:
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get(discriminator)
            if field is not None and tag in typing.get_args(field.annotation):
                return member
    return Any


def _is_tag(model: type[BaseModel], part: Any) -> bool:
    """Whether ``part`` is the value of one of ``model``'s literal tag fields."""
    return any(part in typing.get_args(f.annotation) for f in model.model_fields.values())


def _field(model: type[BaseModel], name: str) -> tuple[str, Any, str | None] | None:
    """(data key, annotation, discriminator) of a field named or aliased ``name``."""
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            tag = info.discriminator if isinstance(info.discriminator, str) else None
            return info.alias or field_name, info.annotation, tag
    return None


def field_names(model: type[BaseModel]) -> list[str]:
    """The keys a mapping of this model accepts (aliases where set)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _walk(root: type[BaseModel], data: Any, loc: Sequence[int | str]) -> _Where:
    where = _Where(keys=[], line=getattr(data, "line", None), node=data, model=root)
    ann: Any = root
    discriminator: str | None = None
    parts = list(loc)
    i = 0
    while i < len(parts):
        part = parts[i]
        inner, found = _unwrap(ann)
        discriminator = found or discriminator
        members = _union_members(inner)
        if members is not None:
            if discriminator is not None:  # the part is the tag: pick that member
                ann, discriminator = _tag_member(members, discriminator, part), None
                i += 1
            elif len(members) == 1:
                ann = members[0]
            else:  # a plain union: pydantic labels the member ('int', a model's name)
                named = [m for m in members if getattr(m, "__name__", None) == part]
                ann = named[0] if named else Any
                i += 1
            continue
        is_model = isinstance(inner, type) and issubclass(inner, BaseModel)
        if is_model and discriminator is not None:  # Annotated[Model, Field(discriminator=..)]
            ann, discriminator = inner, None
            if _is_tag(inner, part):
                i += 1
            continue
        ann, discriminator = inner, None
        node = where.node
        if is_model:
            where.model = ann
            resolved = _field(ann, str(part))
            key = resolved[0] if resolved else str(part)
            ann, discriminator = (resolved[1], resolved[2]) if resolved else (Any, None)
            where.keys.append(key)
            if isinstance(node, Mapping) and key in node:
                if isinstance(node, LineDict):
                    where.line = node.key_lines.get(key, where.line)
                where.node = node[key]
            else:
                where.node = None
        elif isinstance(part, int) and isinstance(node, list):
            where.model = None
            args = typing.get_args(ann)
            ann = args[0] if args else Any
            where.keys.append(str(part))
            where.node = node[part] if 0 <= part < len(node) else None
            where.line = getattr(where.node, "line", None) or where.line
        else:
            where.model = None
            args = typing.get_args(ann)
            ann = args[-1] if args else Any
            where.keys.append(str(part))
            if isinstance(node, Mapping) and part in node:
                if isinstance(node, LineDict):
                    where.line = node.key_lines.get(str(part), where.line)
                where.node = node[part]
            else:
                where.node = None
        i += 1
    return where


def _prefixed(where: _Where, message: str) -> tuple[_Where, str]:
    """Move a validator's ``"expect.margin: ..."`` message onto the key it names."""
    match = _PREFIX.match(message)
    if not match or not isinstance(where.node, LineDict):
        return where, message
    node, keys, line = where.node, list(where.keys), where.line
    for part in match.group(1).split("."):
        if not isinstance(node, LineDict) or part not in node:
            return where, message
        line, node = node.key_lines.get(part, line), node[part]
        keys.append(part)
    return _Where(keys=keys, line=line, node=node, model=None), match.group(2)


# --- describing one error ---------------------------------------------------------------------


def _describe(err: Mapping[str, Any], where: _Where) -> tuple[_Where, str]:
    kind, msg = str(err.get("type", "")), str(err.get("msg", ""))
    given = err.get("input")
    if kind == "extra_forbidden":
        key = where.keys[-1] if where.keys else "?"
        parent = where.model
        guess = did_you_mean(key, field_names(parent)) if parent is not None else None
        hint = f" (did you mean {guess!r}?)" if guess else ""
        known = ""
        if parent is not None and guess is None:
            known = f"; expected one of {', '.join(field_names(parent))}"
        return where, f"unknown key {shown(key)}{hint}{known}"
    if kind == "missing":
        key = where.keys[-1] if where.keys else "?"
        return where, f"required key {key!r} is missing"
    ctx = err.get("ctx") or {}
    if kind == "union_tag_invalid":
        tag_key, tag = str(ctx.get("discriminator", "")).strip("'"), ctx.get("tag")
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        guess = did_you_mean(str(tag), tags)
        hint = f" (did you mean {guess!r}?)" if guess else ""
        if isinstance(where.node, LineDict) and tag_key in where.node:
            where = _Where(
                keys=[*where.keys, tag_key],
                line=where.node.key_lines.get(tag_key, where.line),
                node=tag,
                model=None,
            )
        expected = ", ".join(tags)
        return where, f"unknown {tag_key} {shown(str(tag))}{hint}; expected one of {expected}"
    if kind == "union_tag_not_found":
        tag_key = str(ctx.get("discriminator", "")).strip("'")
        where = _Where(keys=[*where.keys, tag_key], line=where.line, node=None, model=None)
        return where, f"required key {tag_key!r} is missing"
    if msg.startswith("Value error, "):
        where, msg = _prefixed(where, msg[len("Value error, ") :])
        return where, msg
    if kind == "finite_number":
        return where, f"expected a finite number, got {given!r}"
    if isinstance(given, Mapping | list):
        return where, msg
    if isinstance(given, str) and len(given) > MAX_GOT:
        return where, f"{msg} (got {shown(given[:MAX_GOT])}... of {len(given):,} characters)"
    got = shown(given) if isinstance(given, str) else repr(given)
    return where, f"{msg} (got {got})"


_FIRST = ("extra_forbidden", "missing", "finite_number", "value_error", "union_tag_invalid")


def _rank(err: Mapping[str, Any]) -> int:
    """Which of one key's errors to tell: the most specific kind first."""
    kind = err.get("type")
    return _FIRST.index(kind) if kind in _FIRST else len(_FIRST)


def problems_of(exc: ValidationError, root: type[BaseModel], data: Any) -> list[Problem]:
    """Every error of ``exc``, located in ``data`` and described; one per key."""
    groups: dict[str, list[tuple[Any, _Where]]] = {}
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        where = _walk(root, data, loc)
        groups.setdefault(".".join(where.keys), []).append((err, where))
    problems: list[Problem] = []
    for key, group in groups.items():
        err, where = min(group, key=lambda g: _rank(g[0]))
        if len(group) > 1 and err["type"] not in _FIRST:  # every member of a plain union failed
            labels = [str(e["loc"][-1]) for e, _ in group]
            message = f"expected {' or '.join(labels)}, got {err.get('input')!r}"
        else:
            where, message = _describe(err, where)
        problems.append(Problem(".".join(where.keys) or key, where.line, message))
    # the misspelt key first, then what else is wrong, then the required keys it left missing
    return sorted(problems, key=lambda p: (p.message.startswith("required key "), p.line or 0))


def spec_error(exc: ValidationError, root: type[BaseModel], data: Any, file: str) -> SpecError:
    """One :class:`SpecError` naming every problem with its line (the first is its location)."""
    problems = problems_of(exc, root, data) or [Problem("", None, "invalid spec")]
    first, rest = problems[0], problems[1:]
    message = first.message
    for p in rest[: MAX_SHOWN - 1]:
        where = f"line {p.line}: " if p.line is not None else ""
        message += f"; {where}{p.key + ': ' if p.key else ''}{p.message}"
    if len(rest) > MAX_SHOWN - 1:
        message += f" (and {len(rest) - (MAX_SHOWN - 1)} more)"
    return SpecError(message, file=file, line=first.line, key=first.key or None)
