"""A request body -> a validated, preflighted spec: what a POST is checked against before queueing.

YAML bodies are taken as sent. JSON bodies are parsed strictly (duplicate keys, integers
beyond 64 bits, ``NaN``/``Infinity`` and nesting deeper than the YAML limit are refused the
way the YAML loader refuses them) and kept as sent when the YAML loader reads them the same,
so error lines are the body's own; otherwise they are re-written as YAML. Everything here runs
in the validator process (:mod:`api.validator`), never on the event loop; the spec language
(and numpy behind it) is imported there, inside these functions, so the server process that
only routes bodies to validators starts without it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from verifier.errors import SpecError
from verifier.limits import Limits

if TYPE_CHECKING:
    from verifier.spec import Spec

FILE = "<request>"  # the label spec errors of a request carry
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON_TYPES = frozenset({"application/json"})


@dataclass(frozen=True)
class Prepared:
    """A spec that passed validation and every limit: what the store needs to queue it."""

    name: str
    spec_hash: str
    text: str  # as it will be stored and re-read by the worker (YAML, or JSON that is YAML)
    # (claim id, worst-case flops, peak bytes, expected flops), verifier/engine/cost.py
    estimate: tuple[tuple[str, float, float, float], ...] = ()


def prepare(body: bytes, media_type: str, limits: Limits) -> Prepared:
    """Validate and preflight a request body.

    Raises:
        SpecError: not UTF-8, malformed, or invalid (file ``<request>``, line and key).
        LimitExceeded: work over a limit, naming it.
    """
    from verifier.engine.runner import SpecRunner  # the engine: only in the validator process
    from verifier.spec import load_spec_text

    text = spec_text_of(body, media_type)
    try:
        spec = load_spec_text(text, file=FILE, max_bytes=limits.max_spec_bytes)
        runner = SpecRunner(spec, limits)
        runner.preflight()
    except RecursionError:
        raise SpecError("expected a spec, got nesting too deep to read", file=FILE) from None
    estimate = tuple((k, c.flops, c.memory, c.likely) for k, c in runner.estimate().items())
    return Prepared(spec.name, request_hash(spec, limits), text, estimate)


def request_hash(spec: Spec, limits: Limits) -> str:
    """What a stored report is reused by: the spec's content hash, and where its claims read
    files (a model file), the sha256 of their bytes, so a changed file is verified again."""
    inputs = {c.id: c.external_inputs(limits) for c in spec.claims}
    if not any(inputs.values()):
        return spec.content_hash()
    text = json.dumps([spec.content_hash(), inputs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def spec_text_of(body: bytes, media_type: str) -> str:
    """The spec text of a body: YAML as sent; JSON as sent, or re-written as YAML."""
    from verifier.spec.yaml_lines import load_yaml

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise SpecError(
            f"expected UTF-8 text, got a bad byte at offset {exc.start}", file=FILE, line=line
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark: read past, as the CLI's YAML does
    if media_type in YAML_TYPES:
        return text
    data = strict_json(text)
    try:
        if load_yaml(text, FILE) == data:  # JSON read as YAML: keep the body's own lines
            return text
    except SpecError:
        pass  # valid JSON PyYAML cannot read (tabs, "\/"): re-written below
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def strict_json(text: str) -> dict[str, Any]:
    """Parse a JSON spec, refusing what the YAML loader refuses, with a line where known.

    Raises:
        SpecError: malformed JSON, not an object, duplicate keys, an integer beyond 64 bits,
            ``NaN``/``Infinity``, or nesting deeper than ``MAX_FLOW_DEPTH``.
    """
    from verifier.spec.yaml_lines import MAX_FLOW_DEPTH, flow_depth, int_out_of_range

    depth, depth_line = flow_depth(text)
    if depth > MAX_FLOW_DEPTH:
        raise SpecError(
            f"JSON nests [ and {{ {depth} deep; expected at most {MAX_FLOW_DEPTH}",
            file=FILE,
            line=depth_line,
        )

    def line_of(fragment: str) -> int | None:
        at = text.find(fragment)
        return text.count("\n", 0, at) + 1 if at >= 0 else None

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                _refuse_duplicate(text, key)
            result[key] = value
        return result

    def integer(digits: str) -> int:
        if len(digits.lstrip("-")) > 19 or abs(int(digits)) > 2**63 - 1:
            raise SpecError(
                int_out_of_range(len(digits.lstrip("-"))), file=FILE, line=line_of(digits)
            )
        return int(digits)

    def constant(name: str) -> Any:
        raise SpecError(
            f"expected a finite number, got the JSON constant {name}", file=FILE, line=line_of(name)
        )

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_int=integer, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise SpecError(f"expected JSON, got {exc.msg}", file=FILE, line=exc.lineno) from None
    except RecursionError:
        raise SpecError("JSON nested too deeply", file=FILE) from None
    if not isinstance(data, dict):
        raise SpecError(
            f"expected a JSON object with name, instance and claims, got {type(data).__name__}",
            file=FILE,
            line=1,
        )
    return data


def _refuse_duplicate(text: str, key: str) -> None:
    """Refuse a duplicate JSON key as the YAML loader does (with both lines), where it can."""
    from verifier.spec.yaml_lines import load_yaml

    try:
        load_yaml(text, FILE)
    except SpecError as exc:
        if "duplicate key" in exc.message:
            raise exc from None
    raise SpecError(f"duplicate key {key!r}", file=FILE, key=key)
