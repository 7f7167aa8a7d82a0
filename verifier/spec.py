"""The spec language: pydantic models for instances and claims, and YAML loading with lines.

One model per instance kind (discriminated on ``kind``) and per claim kind (on ``check``), all
with ``extra="forbid"``, so a misspelt key is an error naming the key, the file and the line.
Field names are a public contract (../shared/DESIGN.md): add fields freely, rename none.
"""

from __future__ import annotations

import hashlib
import re
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from verifier.errors import SpecError
from verifier.expect import Expectation, parse_expectation
from verifier.expr import SYMBOLS
from verifier.yaml_lines import LineDict, load_yaml

IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


# --- instances -------------------------------------------------------------------------------


class BijectionInstance(StrictModel):
    """R random bijections from N subjects to the attribute set (THEORY.md section 1)."""

    kind: Literal["bijection"]
    entities: int = Field(ge=2, description="N, the number of entities")
    relations: int = Field(ge=1, description="R, the number of relations")
    attributes: Literal["shared", "disjoint"] = Field(
        "shared", description="shared: attributes are the entities; disjoint: N per relation"
    )
    seed: int = Field(0, ge=0, description="seed of every random draw")

    @property
    def hops(self) -> int:
        """Single hop: k = 1."""
        return 1

    def symbol_values(self) -> dict[str, float]:
        """Values of the formula symbols this instance fixes."""
        return {"N": self.entities, "R": self.relations, "k": 1}


Instance = Annotated[BijectionInstance, Field(discriminator="kind")]

SWEEP_ALIASES: dict[str, str] = {"N": "entities", "R": "relations", "k": "hops"}


# --- claims ----------------------------------------------------------------------------------


class ClaimBase(StrictModel):
    """Fields every claim has."""

    id: str = Field(pattern=IDENT, max_length=80, description="unique within the spec")
    description: str | None = None
    expect: dict[str, Any] = Field(
        default_factory=dict, description="measure: number | word | '<op> formula'"
    )
    sweep: dict[str, list[int | float | str]] | None = Field(
        None, description="grid over instance fields (N, R, k, seed) or claim fields"
    )
    xfail: str | None = Field(None, description="reason this claim is expected to fail")

    MEASURES: ClassVar[tuple[str, ...]] = ()
    SYMBOLS: ClassVar[tuple[str, ...]] = tuple(SYMBOLS)
    _expectations: list[Expectation] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _parse_expect(self) -> ClaimBase:
        known = set(self.MEASURES)
        parsed = []
        for measure, raw in self.expect.items():
            if measure != "growth" and measure not in known:
                raise ValueError(
                    f"expect.{measure}: unknown measure for a {self.check_kind()} claim; "
                    f"expected one of {', '.join(self.MEASURES)}"
                )
            try:
                parsed.append(parse_expectation(measure, raw, self.SYMBOLS))
            except SpecError as exc:
                raise ValueError(f"expect.{measure}: {exc.message}") from None
        self._expectations = parsed
        return self

    @property
    def expectations(self) -> list[Expectation]:
        """Parsed ``expect:`` entries."""
        return list(self._expectations)

    def check_kind(self) -> str:
        """The ``check:`` tag."""
        return str(getattr(self, "check", "?"))

    def depends_on(self) -> list[str]:
        """Ids of claims whose results this claim needs."""
        return []


class GeometricConstruction(StrictModel):
    """G1: attribute codes superposed in relation slots, a ReLU selector MLP."""

    name: Literal["geometric"]
    codebook: Literal["rademacher", "gaussian", "onehot"] = "rademacher"
    code_dim: int | Literal["auto"] = Field(
        "auto", description="code width m, or auto: the smallest m reaching `margin`"
    )
    margin: float = Field(0.5, gt=0, le=1, description="target margin 1 - mu for auto")

    @field_validator("code_dim")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"expected an integer >= 1 or 'auto', got {value}")
        return value


Construction = Annotated[GeometricConstruction, Field(discriminator="name")]


class ConstructionClaim(ClaimBase):
    """Build a construction and run every fact through the real forward pass."""

    check: Literal["construction"]
    construction: Construction

    MEASURES: ClassVar[tuple[str, ...]] = (
        "accuracy",
        "margin",
        "coherence",
        "code_dim",
        "embedding_dim",
        "mlp_width",
        "params",
        "fact_params",
        "n_facts",
    )


Claim = Annotated[ConstructionClaim, Field(discriminator="check")]


# --- specs -----------------------------------------------------------------------------------


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


def spec_schema() -> dict[str, Any]:
    """JSON Schema of the spec language."""
    return Spec.model_json_schema()


def _line_of(
    data: Any, loc: tuple[int | str, ...], message: str = ""
) -> tuple[int | None, str]:
    """Follow a pydantic error location through the loaded YAML: (line, dotted key).

    Location parts that are not in the data (union tags such as ``construction``, validator
    names) are skipped.
    """
    node, line, keys = data, getattr(data, "line", None), []
    tag_skipped: int | None = None
    for part in loc:
        tags = {node.get(t) for t in _TAG_KEYS} if isinstance(node, LineDict) else set()
        if part in tags and tag_skipped != id(node):
            tag_skipped = id(node)
            continue  # the union member's tag, not a key
        if isinstance(node, LineDict) and isinstance(part, str) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
            keys.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = getattr(node, "line", None) or line
            keys.append(str(part))
    if isinstance(node, LineDict):
        keys_node = node
        match = _EXPECT_MSG.match(message)
        expect = keys_node.get("expect")
        if match and isinstance(expect, LineDict) and match.group(1) in expect:
            return expect.key_lines[match.group(1)], ".".join([*keys, "expect", match.group(1)])
    return line, ".".join(keys)


_TAG_KEYS = ("kind", "check", "name", "program", "method")
_EXPECT_MSG = re.compile(r"^expect\.([A-Za-z0-9_]+): ")


def _describe(err: Mapping[str, Any]) -> str:
    kind, msg = err.get("type", ""), str(err.get("msg", ""))
    given = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key; check its spelling against `verifier schema`"
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if isinstance(given, Mapping | list):
        return msg
    return f"{msg} (got {given!r})"


def parse_spec(data: Any, file: str = "<spec>", text: str = "") -> Spec:
    """Validate loaded data into a :class:`Spec`, raising errors with file and line.

    Raises:
        SpecError: the first validation error, located; duplicate claim ids; unknown
            claim references.
    """
    if not isinstance(data, Mapping):
        raise SpecError(
            f"expected a mapping with name, instance and claims, got {type(data).__name__}",
            file=file,
            line=1,
        )
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = tuple(first.get("loc", ()))
        message = _describe(first)
        line, key = _line_of(data, loc, message)
        if key.endswith(".expect." + (m.group(1) if (m := _EXPECT_MSG.match(message)) else "")):
            message = _EXPECT_MSG.sub("", message)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SpecError(message + more, file=file, line=line, key=key or None) from None
    claims_data = data.get("claims", [])
    lines = {
        claim.id: getattr(claims_data[i], "line", None) or 1 for i, claim in enumerate(spec.claims)
    }
    seen: dict[str, int] = {}
    for i, claim in enumerate(spec.claims):
        line = getattr(claims_data[i], "line", None)
        if claim.id in seen:
            raise SpecError(
                f"duplicate claim id {claim.id!r} (first at claims.{seen[claim.id]})",
                file=file,
                line=line,
                key=f"claims.{i}.id",
            )
        seen[claim.id] = i
    for i, claim in enumerate(spec.claims):
        for dep in claim.depends_on():
            if dep not in seen or seen[dep] >= i:
                raise SpecError(
                    f"refers to claim {dep!r}, which is not an earlier claim of this spec; "
                    f"expected one of {', '.join(list(seen)[:i]) or '(none)'}",
                    file=file,
                    line=getattr(claims_data[i], "line", None),
                    key=f"claims.{i}",
                )
    instance_line = data.key_lines.get("instance") if isinstance(data, LineDict) else None
    spec._source = Source(file=file, text=text, claim_lines=lines, instance_line=instance_line)
    return spec


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
        raise SpecError(f"expected UTF-8 text, got a bad byte at offset {exc.start}", file=str(p)) from None
    return load_spec_text(text, file=str(p))
