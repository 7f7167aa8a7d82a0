"""Specs: the top-level model, and loading YAML (or JSON) into it, every error with its line."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, create_model

from verifier import plugins
from verifier.errors import SpecError
from verifier.spec.base import IDENT, StrictModel
from verifier.spec.claims import BUILTIN_TAGS, PLUGIN_CLAIMS, Claim, claim_union
from verifier.spec.claims.base import ClaimBase
from verifier.spec.error_lines import spec_error
from verifier.spec.instances import BijectionInstance, Instance, MultiHopInstance
from verifier.spec.yaml_lines import LineDict, load_yaml


@dataclass(frozen=True)
class Source:
    """Where a spec came from, with the line of each claim."""

    file: str
    text: str
    claim_lines: dict[str, int] = field(default_factory=dict)
    instance_line: int | None = None


class Spec(StrictModel):
    """A named instance and the claims made about it."""

    name: str = Field(pattern=IDENT, max_length=120)
    description: str | None = None
    instance: Instance
    claims: list[Claim] = Field(min_length=1)

    _source: Source | None = PrivateAttr(None)

    @property
    def source(self) -> Source:
        """The file and lines this spec was loaded from."""
        return self._source or Source(file="<spec>", text="")

    def claim(self, claim_id: str) -> ClaimBase:
        """The claim with this id."""
        for claim in self.claims:
            if claim.id == claim_id:
                return claim
        raise KeyError(claim_id)

    def content_hash(self) -> str:
        """sha256 of the validated spec, canonical JSON (key order and comments do not count)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


CHECKS_GROUP = "verifier.checks"


@functools.cache
def _spec_model(models: tuple[type[ClaimBase], ...]) -> type[Spec]:
    if not models:
        return Spec
    claims: Any = (list[claim_union(models)], Field(min_length=1))  # type: ignore[misc]
    return create_model("Spec", __base__=Spec, __module__=Spec.__module__, claims=claims)


def spec_model() -> type[Spec]:
    """:class:`Spec` with the plugins' claim kinds in its claim union (entry point group
    ``verifier.checks``, loaded now): a subclass of Spec, or Spec itself when no plugin kind is
    registered."""
    plugins.load(CHECKS_GROUP)
    return _spec_model(tuple(PLUGIN_CLAIMS[tag] for tag in sorted(PLUGIN_CLAIMS)))


def _plugin_tags(data: Mapping[str, Any]) -> list[tuple[int, str]]:
    """``(index, tag)`` of each claim whose ``check:`` is not a built-in kind's."""
    claims = data.get("claims")
    if not isinstance(claims, list):
        return []
    return [
        (i, c["check"])
        for i, c in enumerate(claims)
        if isinstance(c, Mapping)
        and isinstance(c.get("check"), str)
        and c["check"] not in BUILTIN_TAGS
    ]


def _model_for(data: Mapping[str, Any], file: str) -> type[Spec]:
    """The spec model ``data`` needs: :class:`Spec`, or with the plugin kinds its claims name
    (loaded only then, so a spec of built-in kinds never imports a plugin).

    Raises:
        SpecError: a claim names a plugin kind whose plugin failed to load, naming the plugin.
    """
    tags = _plugin_tags(data)
    if not tags:
        return Spec
    model = spec_model()
    lines = data.get("claims", [])
    for i, tag in tags:
        why = plugins.failure(CHECKS_GROUP, tag)
        if why is not None:
            line = getattr(lines[i], "line", None)
            raise SpecError(
                f"claim kind {tag!r} comes from {why}",
                file=file,
                line=line,
                key=f"claims.{i}.check",
            )
    return model


def spec_schema() -> dict[str, Any]:
    """JSON Schema of the spec language for editors and validators (verifier/spec/schema.py)."""
    from verifier.spec.schema import editor_schema  # it reads the registries

    return editor_schema()


def parse_spec(data: Any, file: str = "<spec>", text: str = "") -> Spec:
    """Validate loaded data into a :class:`Spec`, raising errors with file and line.

    Raises:
        SpecError: every validation error, each with its key and line (the first is the
            error's location); duplicate claim ids; unknown claim references; a measure a
            claim names but does not produce on the instance.
    """
    if not isinstance(data, Mapping):
        raise SpecError(
            f"expected a mapping with name, instance and claims, got {type(data).__name__}",
            file=file,
            line=1,
        )
    model = _model_for(data, file)
    try:
        spec = model.model_validate(data)
    except ValidationError as exc:
        raise spec_error(exc, model, data, file) from None
    claim_lines: list[int | None] = [getattr(c, "line", None) for c in data.get("claims", [])]

    def refuse(i: int, message: str, key: str | None = None) -> SpecError:
        return SpecError(message, file=file, line=claim_lines[i], key=key or f"claims.{i}")

    seen: dict[str, int] = {}
    for i, claim in enumerate(spec.claims):
        if claim.id in seen:
            first = f"first at claims.{seen[claim.id]}"
            raise refuse(i, f"duplicate claim id {claim.id!r} ({first})", f"claims.{i}.id")
        seen[claim.id] = i
    for i, claim in enumerate(spec.claims):
        claim.written_in(file)
        for dep in claim.depends_on():
            if dep not in seen or seen[dep] >= i:
                raise refuse(
                    i,
                    f"refers to claim {dep!r}, which is not an earlier claim of this spec; "
                    f"expected one of {', '.join(list(seen)[:i]) or '(none)'}",
                )
            if problem := claim.check_dependency(spec.claims[seen[dep]], spec.instance):
                raise refuse(i, problem)
        followed = claim.follows_sweep_of()
        if followed is not None and followed in seen:
            sweep = spec.claims[seen[followed]].sweep
            for dep in claim.depends_on():
                other = spec.claims[seen[dep]].sweep if dep in seen else None
                if dep != followed and other != sweep:
                    raise refuse(
                        i,
                        f"{dep!r} has sweep {other}; expected the sweep of {followed!r} "
                        f"({sweep}), whose points this claim runs at",
                    )
        if unproduced := _unproduced(claim, spec.instance):
            raise refuse(i, *unproduced)
    lines = {claim.id: claim_lines[i] or 1 for i, claim in enumerate(spec.claims)}
    instance_line = data.key_lines.get("instance") if isinstance(data, LineDict) else None
    spec._source = Source(file=file, text=text, claim_lines=lines, instance_line=instance_line)
    return spec


def named_measures(claim: ClaimBase) -> list[tuple[str, str]]:
    """``(key, measure)`` for every measure the claim names: in ``expect``, in its search's
    ``until``, and the measure of its growth expectation."""
    named = [(f"{claim.id}.expect.{m}", m) for m in claim.expect if m != "growth"]
    growth = claim.expect.get("growth")
    if isinstance(growth, Mapping) and isinstance(growth.get("measure"), str):
        named.append((f"{claim.id}.expect.growth.measure", growth["measure"]))
    search = claim.search_spec()
    if search is not None:
        how = "maximize" if search.largest else "minimize"
        named += [(f"{claim.id}.{how}.until.{m}", m) for m in search.until]
    return named


def _unproduced(
    claim: ClaimBase, instance: BijectionInstance | MultiHopInstance
) -> tuple[str, str] | None:
    """``(message, key)`` for the first measure the claim names but does not produce on
    ``instance`` (it would end ``undecided: not measured``), or None. A kind that does not run
    on the instance's kind is left to its check's preflight, which says why."""
    if instance.kind not in claim.INSTANCE_KINDS:
        return None
    produced = claim.measures(instance)
    for key, measure in named_measures(claim):
        if measure not in produced:
            listed = ", ".join(m for m in claim.known_measures() if m in produced)
            return (
                f"{measure} is undefined on a {instance.kind} instance for a "
                f"{claim.check_kind()} claim; expected one of {listed}, got {measure}",
                key,
            )
    return None


def load_spec_text(text: str, file: str = "<spec>", max_bytes: int | None = None) -> Spec:
    """Parse YAML (or JSON) text into a validated :class:`Spec`.

    Raises:
        SpecError: oversized, malformed, or invalid, always with file and line where known.
    """
    size = len(text.encode())
    if max_bytes is not None and size > max_bytes:
        raise SpecError(
            f"spec is {size:,} bytes, over the limit max_spec_bytes = {max_bytes:,}", file=file
        )
    return parse_spec(load_yaml(text, file), file=file, text=text)


def load_spec_file(path: str | Path, max_bytes: int | None = None) -> Spec:
    """Read and validate one spec file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror}", file=str(p)) from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise SpecError(
            f"spec is {len(raw):,} bytes, over the limit max_spec_bytes = {max_bytes:,}",
            file=str(p),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"expected UTF-8 text, got a bad byte at offset {exc.start}", file=str(p)
        ) from None
    return load_spec_text(text, file=str(p))
