"""``python -m verifier.spec.docs``: write docs/spec-language.md from the spec language's models.

Every field of the spec, of each instance kind, of each claim kind and of the objects they
nest gets a row: its key, type (with its constraints), default and meaning, all read from the
JSON Schema that pydantic derives from :mod:`verifier.spec` (the schema editors use too), so the
page cannot drift from the code; ``--check`` exits 1 when the file is stale (a test runs it).
A field's meaning is its ``description``, else the docstring of the object it holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from verifier.spec import ClaimBase, Spec
from verifier.spec.formulas import FUNCTIONS, SYMBOLS
from verifier.spec.symbols import COMPARATORS

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "spec-language.md"
_REF = "#/$defs/"
# Meanings of the fields whose models carry no description (any model, then per model).
_FALLBACK: dict[str, str] = {
    "description": "free text for readers; never part of a verdict",
    "Spec.name": "the spec's name: results are `name::claim-id` in reports and pytest",
    "Spec.instance": "the facts every claim is about",
    "Spec.claims": "what is claimed about the instance; each gets its own verdict",
    "FeasibilityClaim.program": "P1 `codebook_margin`, P2 `reembed` or P3 `associative_width` "
    "(docs/theory.md section 6)",
    "GeometricConstruction.codebook": "the attribute codes: rademacher (entries +-1/sqrt(m)), "
    "gaussian, or onehot (m = N)",
    "TrainingOptim.optimizer": "the optimiser of every trained weight",
    "TrainingOptim.schedule": "the learning-rate schedule after warmup",
    "TrainingOptim.weight_decay": "the optimiser's weight decay (decoupled for adamw)",
}

_INTRO = """\
# The spec language

<!-- Generated from the models of verifier/spec/ by `python -m verifier.spec.docs`; do not edit. -->

A spec is a YAML (or JSON) file, `*.spec.yaml` by convention: a name, one instance (the facts)
and a list of claims about it. Every object below rejects keys it does not list, and an error
names the key, the file and the line. `verifier schema` prints the same language as JSON
Schema, which editors use to complete and check specs (`verifier new` writes a spec whose first
line points at it).

```yaml
name: log-dimension-suffices
instance: {kind: bijection, entities: 4096, relations: 4, attributes: shared, seed: 7}
claims:
  - id: exact-recall
    check: construction
    construction: {name: geometric, codebook: rademacher, code_dim: auto, margin: 0.5}
    expect: {accuracy: 1.0, margin: ">= 0.5", embedding_dim: "<= 20*R*log(N)"}
```
"""

_EXPECTATIONS = """\
## Expectations

`expect:` maps a measure of the claim's kind to what it must be:

- a number: equality within `1e-9` (absolute and relative), or `{{value: x, tol: t}}` for an
  explicit tolerance, or `{{value: x, rel: r}}` for "within `r |x|` of `x`" (`{{value: 166,
  rel: 0.3}}`: within 30% of a published figure; the result shows the ratio);
- a word (`feasible`, `not_found`, `true`, ...): equality of labels;
- `"<op> formula"` with `<op>` one of {comparators}: the measured value against the formula
  evaluated at the instance (and at the claim's own symbols where its kind adds some);
- `growth: {{measure, over, law, ...}}` on a swept claim: judged over all its points by a fit of
  each law (one extra result, `claim-id[growth]`).

Formulas are parsed by a whitelist, never evaluated as Python. They may use numbers, `+ - * / **`,
parentheses, the symbols {symbols} and the functions {functions}. `log(x)` is natural,
`log(x, b)` takes a base.

A claim may expect failure (`accuracy: "< 1"`: a refutation is a claim like any other), or carry
`xfail: reason`, which turns a failure into `xfailed` and a pass into `xpassed` (counted as a
failure: the spec's statement was wrong).
"""


def _defs() -> dict[str, Any]:
    defs: dict[str, Any] = Spec.model_json_schema(by_alias=True)["$defs"]
    return defs


def _name(ref: str) -> str:
    return ref.removeprefix(_REF)


def _anchor(name: str) -> str:
    return f"[{name}](#{name.lower()})"


def _constraints(schema: dict[str, Any]) -> list[str]:
    out = []
    for key, text in (
        ("minimum", ">= {}"),
        ("exclusiveMinimum", "> {}"),
        ("maximum", "<= {}"),
        ("exclusiveMaximum", "< {}"),
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minItems", "{} or more items"),
        ("maxItems", "{} or fewer items"),
        ("pattern", "matching `{}`"),
    ):
        if key in schema:
            out.append(text.format(schema[key]))
    return out


def _nested(schema: dict[str, Any]) -> str:
    """The type of a list item or mapping value: a union in parentheses."""
    text = type_text(schema)
    return f"({text})" if " or " in text else text


def type_text(schema: dict[str, Any]) -> str:
    """A field's type in words, with links to the objects it holds."""
    if "$ref" in schema:
        return _anchor(_name(schema["$ref"]))
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " or ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            parts = [type_text(s) for s in schema[key] if s.get("type") != "null"]
            text = " or ".join(dict.fromkeys(parts))
            if any(s.get("type") == "null" for s in schema[key]):
                text += " or null"
            return text
    kind = schema.get("type")
    if kind == "array":
        text = f"list of {_nested(schema.get('items', {}))}"
    elif kind == "object":
        values = schema.get("additionalProperties")
        text = f"mapping to {_nested(values)}" if isinstance(values, dict) else "mapping"
    else:
        text = {"integer": "integer", "number": "number", "string": "string"}.get(
            str(kind), "boolean" if kind == "boolean" else "any"
        )
    extra = _constraints(schema)
    return text + (f" ({', '.join(extra)})" if extra else "")


def _md(text: str) -> str:
    """Docstring text as Markdown (reStructuredText's double backticks become single)."""
    return text.strip().replace("``", "`")


def _first_sentence(text: str) -> str:
    line = _md(text).split("\n\n")[0].replace("\n", " ")
    return line.split(". ")[0].rstrip(".") + "."


def meaning(
    model: str, field: str, schema: dict[str, Any], defs: dict[str, Any], tag: str | None
) -> str:
    """A field's meaning: its description, else what its tag selects, a fallback text, or the
    first sentence of the object it holds ("" when none says)."""
    if "description" in schema:
        return _md(str(schema["description"]))
    if field == tag and "const" in schema:
        return f"`{schema['const']}` selects this kind"
    for key in (f"{model}.{field}", field):
        if key in _FALLBACK:
            return _FALLBACK[key]
    refs = [schema.get("$ref")]
    refs += [s.get("$ref") for key in ("anyOf", "oneOf") for s in schema.get(key, [])]
    named = [r for r in refs if r]
    if len(named) == 1 and "description" in defs[_name(named[0])]:
        return _first_sentence(defs[_name(named[0])]["description"])
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def fields_table(
    name: str, model: dict[str, Any], defs: dict[str, Any], skip: frozenset[str] = frozenset()
) -> list[str]:
    """Markdown rows, one per field of one model's schema."""
    required = set(model.get("required", []))
    tag = next((t for t in ("kind", "check", "name") if t in model["properties"]), None)
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for field, schema in model["properties"].items():
        if field in skip:
            continue
        if field in required:
            default = "required"
        elif "default" in schema:
            default = f"`{json.dumps(schema['default'])}`"
        else:
            default = "empty"
        text = meaning(name, field, schema, defs, tag)
        rows.append(
            f"| `{field}` | {_cell(type_text(schema))} | {_cell(default)} | {_cell(text)} |"
        )
    return rows


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        if "$ref" in schema:
            yield _name(schema["$ref"])
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def _members(union: dict[str, Any]) -> list[str]:
    return [_name(s["$ref"]) for s in union["oneOf"]]


def _claim_classes() -> dict[str, type[ClaimBase]]:
    out: dict[str, type[ClaimBase]] = {}
    stack: list[type[ClaimBase]] = [ClaimBase]
    while stack:
        cls = stack.pop()
        if cls.__module__.startswith("verifier."):  # the built-ins: a plugin's kind is not ours
            out[cls.__name__] = cls
        stack.extend(cls.__subclasses__())
    return out


def render() -> str:
    """The whole page."""
    defs = _defs()
    spec = Spec.model_json_schema(by_alias=True)
    props = spec["properties"]
    instances = _members(props["instance"])
    claims = _members(props["claims"]["items"])
    classes = _claim_classes()
    common = frozenset(ClaimBase.model_fields)
    out = [_INTRO, "## The spec", "", _first_sentence(spec.get("description", "")), ""]
    out += [*fields_table("Spec", spec, defs), "", "## Instances", ""]
    out.append("`instance: {kind: ...}` picks one of these.\n")
    for name in instances:
        model = defs[name]
        out += [f"### {name}", "", _md(model.get("description", "")), ""]
        out += [*fields_table(name, model, defs), ""]
    out += ["## Claims", "", "`claims:` is a list; `check:` picks each one's kind.", ""]
    out += ["### Every claim", "", "Fields every claim kind has:", ""]
    first = defs[claims[0]]
    out += fields_table("ClaimBase", first, defs, frozenset(first["properties"]) - common)
    out.append("")
    for name in claims:
        model, cls = defs[name], classes[name]
        out += [f"### {name}", "", _md(model.get("description", "")), ""]
        out += [*fields_table(name, model, defs, common), ""]
        if cls.MEASURES:  # a bound claim's measures depend on its theorem: its docstring says
            out.append("Measures: " + ", ".join(f"`{m}`" for m in cls.MEASURES) + ".")
        extra = [s for s in cls.SYMBOLS if s not in SYMBOLS]
        if extra:
            out.append("Extra formula symbols: " + ", ".join(f"`{s}`" for s in extra) + ".")
        out.append("")
    nested = [n for n in dict.fromkeys(_refs(spec)) if n not in {*instances, *claims}]
    out += ["## Nested objects", ""]
    for name in nested:
        model = defs[name]
        out += [f"### {name}", "", _md(model.get("description", "")), ""]
        out += [*fields_table(name, model, defs), ""]
    symbols = ", ".join(f"`{s}`" for s in SYMBOLS)
    functions = ", ".join(f"`{f}`" for f in FUNCTIONS)
    comparators = " ".join(f"`{c}`" for c in COMPARATORS)
    out.append(_EXPECTATIONS.format(symbols=symbols, functions=functions, comparators=comparators))
    text = "\n".join(out)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the page (default) or, with ``--check``, exit 1 when it differs from the models."""
    parser = argparse.ArgumentParser(prog="python -m verifier.spec.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="default: %(default)s")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.is_file() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is stale: run `python -m verifier.spec.docs`\n")
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
