"""Safe YAML loading that remembers where every mapping and key came from.

Mappings load as :class:`LineDict`, a ``dict`` that also records the 1-based line of each of
its keys, so that a validation error deep in a spec can name ``file:line``. Duplicate keys are
errors (PyYAML silently keeps the last one), and alias expansion is bounded, so a "billion
laughs" document is refused instead of exhausting memory. Nesting is bounded (flow ``[``/``{``
by a pre-scan, block indentation after composing), integers are bounded to 64 bits and
written in decimal (YAML 1.1's ``1_000``, ``0x20`` and ``1:30`` are refused, as in JSON), and
``1e-3`` is a float as in YAML 1.2 and JSON (PyYAML's YAML 1.1 reads it as a string).
Every refusal is a :class:`~verifier.errors.SpecError` with a line, never a traceback.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from verifier.errors import SpecError

MAX_EXPANDED_NODES = 100_000  # nodes after alias expansion; a YAML bomb is far above this
MAX_FLOW_DEPTH = 64  # nesting of [ and { before parsing (PyYAML is slow on deep nesting)
MAX_DEPTH = 64  # nesting of mappings and sequences of any style, after composing
MAX_INT = 2**63 - 1  # |integer| in a spec: seeds and sizes are 64-bit everywhere downstream
_DECIMAL_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")  # the integers JSON has (YAML 1.1 has more)
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class LineDict(dict[str, Any]):
    """A dict that knows its own line and the line of each key."""

    line: int | None
    key_lines: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = None
        self.key_lines = {}


class _LineLoader(yaml.SafeLoader):
    """SafeLoader building LineDicts and rejecting duplicate keys."""


def _construct_mapping(loader: _LineLoader, node: MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) or key is None:
            raise SpecError(
                f"expected a plain key, got {type(key).__name__}",
                line=key_node.start_mark.line + 1,
            )
        key = str(key)
        if key in result:
            raise SpecError(
                f"duplicate key {key!r} (first at line {result.key_lines[key]})",
                line=key_node.start_mark.line + 1,
                key=key,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_int(loader: _LineLoader, node: ScalarNode) -> int:
    text = str(node.value).replace("_", "").lstrip("+-")
    if len(text) > 19 and text.isdigit():  # above 2**63 - 1, and maybe past int()'s 4,300 digits
        raise SpecError(int_out_of_range(len(text)), line=node.start_mark.line + 1)
    value: int = yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    if abs(value) > MAX_INT:
        raise SpecError(int_out_of_range(len(str(abs(value)))), line=node.start_mark.line + 1)
    if not _DECIMAL_INT.fullmatch(str(node.value)):  # 1_000, 0x20, 0o17, 1:30: not JSON's
        raise SpecError(
            f"expected a decimal integer such as {value}, got {node.value!r}",
            line=node.start_mark.line + 1,
        )
    return value


def int_out_of_range(digits: int) -> str:
    """The message for an integer literal beyond 64 bits (YAML and JSON alike)."""
    return (
        f"an integer of {digits:,} digits is out of range; expected at most 2**63 - 1 = "
        f"{MAX_INT:,} in magnitude (write a float such as 1e20 for a larger number)"
    )


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_LineLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _expanded_size(node: Node, memo: dict[int, int]) -> int:
    """Number of nodes the document has once every alias is expanded (memoised per node)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_EXPANDED_NODES + 1  # a cycle counts as too big
    size = 1
    if isinstance(node, SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo)
            if size > MAX_EXPANDED_NODES:
                break
    elif isinstance(node, MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo) + _expanded_size(v, memo)
            if size > MAX_EXPANDED_NODES:
                break
    elif not isinstance(node, ScalarNode):  # pragma: no cover - PyYAML has no other node kind
        raise SpecError(f"unexpected YAML node {type(node).__name__}")
    memo[key] = size
    return size


def flow_depth(text: str) -> tuple[int, int]:
    """Deepest nesting of ``[``/``{`` outside quotes, and its line (a cheap pre-scan)."""
    depth = deepest = 0
    line = deepest_line = 1
    quote, comment, prev, escaped = "", False, "\n", False
    for ch in text:
        if ch == "\n":
            line, comment, quote = line + 1, False, ""  # a stray apostrophe cannot hide nesting
        if comment:
            continue
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest, deepest_line = depth, line
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == "#" and prev in " \t\n":
            comment = True
        prev = ch
    return deepest, deepest_line


def _depth(node: Node, memo: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """Nesting depth below ``node`` and the line of its deepest node (memoised per node).

    Called only on a document PyYAML composed, so the recursion is as deep as the composer's
    was; a node met again on its own path (a recursive alias) counts as too deep.
    """
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = (MAX_DEPTH + 1, node.start_mark.line + 1)  # on the path: a cycle
    children: list[Node] = []
    if isinstance(node, SequenceNode):
        children = list(node.value)
    elif isinstance(node, MappingNode):
        children = [v for _, v in node.value]
    best = (1, node.start_mark.line + 1)
    for child in children:
        depth, line = _depth(child, memo)
        if depth + 1 > best[0]:
            best = (depth + 1, line)
        if best[0] > MAX_DEPTH:
            break
    memo[key] = best
    return best


_UNQUOTED_FORMULA = re.compile(r"(?:^|[{,]\s*|^\s*-?\s*)([A-Za-z_][\w.]*):\s+([<>]=?\s*[^,}#]*)")


def formula_hint(text: str, line: int | None) -> str:
    """A hint for a YAML error on a line holding an unquoted ``key: >= formula`` (YAML reads a
    leading ``>`` as a folded block and refuses ``<``/``>`` in flow mappings): quote it."""
    if line is None:
        return ""
    lines = text.splitlines()
    for i in (line, line - 1):  # the error may be reported on the next line
        if 0 <= i < len(lines):
            found = _UNQUOTED_FORMULA.search(lines[i])
            if found:
                key, formula = found.group(1), found.group(2).strip()
                return (
                    f"; a formula starting with < or > must be quoted: "
                    f'{key}: "{formula}" (line {i + 1})'
                )
    return ""


def _too_deep(line: int | None, file: str) -> SpecError:
    return SpecError(
        f"YAML nested too deeply; expected at most {MAX_DEPTH} levels of mappings and lists",
        file=file,
        line=line,
    )


def control_character(text: str, position: int) -> str:
    """The message for a control or other unprintable character at ``position`` of ``text``."""
    ch = text[position]
    name = unicodedata.name(ch, "a control character")
    return (
        f"the spec contains U+{ord(ch):04X} ({name}); expected printable text (control "
        "characters are refused anywhere, comments included)"
    )


def load_yaml(text: str, file: str = "<spec>") -> Any:
    """Parse one YAML document safely, with line numbers.

    Args:
        text: the document.
        file: a label for error messages.

    Returns:
        Plain Python data, with every mapping a :class:`LineDict`.

    Raises:
        SpecError: malformed YAML, a control character, duplicate keys, more than one
            document, nesting deeper than ``MAX_DEPTH``, an integer beyond 64 bits, or an alias
            expansion above ``MAX_EXPANDED_NODES`` nodes; always with a line where one exists.
    """
    depth, depth_line = flow_depth(text)
    if depth > MAX_FLOW_DEPTH:
        raise SpecError(
            f"YAML nests [ and {{ {depth} deep; expected at most {MAX_FLOW_DEPTH}",
            file=file,
            line=depth_line,
        )
    loader: _LineLoader | None = None
    try:
        loader = _LineLoader(text)  # the reader refuses control characters here
        node = loader.get_single_node()
        if node is None:
            raise SpecError("expected a YAML mapping, got an empty document", file=file, line=1)
        deepest, deepest_line = _depth(node, {})
        if deepest > MAX_DEPTH:
            raise _too_deep(deepest_line, file)
        size = _expanded_size(node, {})
        if size > MAX_EXPANDED_NODES:
            raise SpecError(
                f"YAML expands to more than {MAX_EXPANDED_NODES} nodes through aliases "
                "(an alias bomb?); expected a plain spec",
                file=file,
                line=node.start_mark.line + 1,
            )
        return loader.construct_document(node)
    except SpecError as exc:
        raise exc.located(file, None) from None
    except yaml.reader.ReaderError as exc:
        at = text.count("\n", 0, exc.position) + 1
        raise SpecError(control_character(text, exc.position), file=file, line=at) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        hint = formula_hint(text, mark.line if mark is not None else None)
        raise SpecError(f"malformed YAML: {problem}{hint}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"malformed YAML: {exc}", file=file) from None
    except RecursionError:  # the composer recursed past Python's limit: say where it was
        raise _too_deep(loader.line + 1 if loader is not None else None, file) from None
    finally:
        if loader is not None:
            loader.dispose()
