"""The JSON Schema editors and validators use (``verifier schema``): pydantic's schema of
:class:`~verifier.spec.Spec`, made stricter and explained.

- each claim kind's ``expect`` names its measures (``additionalProperties: false``), so a
  misspelt measure (``acuracy:``) is flagged by any JSON-schema validator; a bound claim's
  measures depend on its theorem, so its ``expect`` stays open;
- construction names and theorem ids are enums read from the registries (the plugins' too), so
  editors complete them; a plugin's claim kind joins the claims' union;
- every field carries a description (hover): its own, else the meaning docs/spec-language.md
  gives it (:func:`verifier.spec.docs.meaning`).

The loader stays the authority: it also checks what a schema cannot say (a measure an instance
kind does not produce, a formula's symbols).
"""

from __future__ import annotations

from typing import Any

from verifier.spec.claims import PLUGIN_CLAIMS
from verifier.spec.docs import _claim_classes, meaning
from verifier.spec.loading import spec_model

SEARCH_MEASURES = {
    "minimum": "the smallest value found by `minimize:` (only with minimize)",
    "maximum": "the largest value found by `maximize:` (only with maximize)",
}
GROWTH = "a growth law over the sweep: {measure, over, law, ...} (one extra result, [growth])"
_VALUE_OR_FORMULA: list[dict[str, Any]] = [
    {"type": "number"},
    {"type": "boolean"},
    {"type": "string", "description": "a word, or '<op> formula' such as '>= 0.5'"},
    {
        "type": "object",
        "properties": {
            "value": {"type": "number", "description": "the expected number"},
            "tol": {"type": "number", "description": "absolute and relative tolerance"},
            "rel": {"type": "number", "description": "relative tolerance: within rel*|value|"},
        },
        "required": ["value"],
        "additionalProperties": False,
    },
]


def construction_names() -> list[str]:
    """Names ``construction.name`` takes: every registered construction (bijection and
    multi-hop; ``geometric`` is also the deprecated multi-hop alias)."""
    from verifier.constructions.registry import constructions

    return sorted(constructions())


def theorem_ids() -> list[str]:
    """The theorem registry's ids (``verifier theorems``)."""
    from verifier.theory import theorems

    return [t.id for t in theorems()]


def _expect_schema(kind: str, measures: tuple[str, ...], label_measures: tuple[str, ...]) -> Any:
    props: dict[str, Any] = {}
    for m in measures:
        what = "a word" if m in label_measures else "a number"
        props[m] = {
            "description": f"the {kind} claim's measure `{m}`: {what}, {{value, tol}}, "
            f"or '<op> formula' (docs/spec-language.md, Expectations)",
            "anyOf": _VALUE_OR_FORMULA,
        }
    for m, text in SEARCH_MEASURES.items():
        props.setdefault(m, {"description": text, "anyOf": _VALUE_OR_FORMULA})
    props["growth"] = {"description": GROWTH, "type": "object"}
    return {
        "type": "object",
        "description": f"what the {kind} claim's measures must be: measure: number | word | "
        "'<op> formula'",
        "properties": props,
        "additionalProperties": False,
    }


def _fill_descriptions(schema: dict[str, Any], defs: dict[str, Any]) -> None:
    """Give every property of every object a description (the docs page's meaning)."""
    models = [("Spec", schema), *defs.items()]
    for name, model in models:
        props = model.get("properties", {})
        tag = next((t for t in ("kind", "check", "name") if t in props), None)
        for field, prop in props.items():
            if "description" not in prop:
                text = meaning(name, field, prop, defs, tag)
                prop["description"] = text or field.replace("_", " ")


def _enum(prop: dict[str, Any], values: list[str]) -> None:
    """Replace a string field's pattern by an enum of ``values`` (kept inside a nullable union)."""
    target = prop
    for option in prop.get("anyOf", []):
        if option.get("type") == "string":
            target = option
    target.pop("pattern", None)
    target["enum"] = values


def editor_schema() -> dict[str, Any]:
    """The spec language's JSON Schema for editors and validators."""
    schema = spec_model().model_json_schema()
    defs: dict[str, Any] = schema["$defs"]
    classes = {**_claim_classes(), **{c.__name__: c for c in PLUGIN_CLAIMS.values()}}
    for name, cls in classes.items():
        if name in defs and cls.MEASURES:
            kind = defs[name]["properties"]["check"].get("const", name)
            defs[name]["properties"]["expect"] = _expect_schema(
                kind, cls.schema_measures(), cls.LABEL_MEASURES
            )
    if "Construction" in defs:
        _enum(defs["Construction"]["properties"]["name"], construction_names())
    bound = defs.get("BoundClaim", {}).get("properties", {})
    ids = theorem_ids()
    if "theorem" in bound:
        _enum(bound["theorem"], ids)
    if "versus" in bound and "items" in bound["versus"]:
        bound["versus"]["items"] = {"type": "string", "enum": ids}
    _fill_descriptions(schema, defs)
    return schema
