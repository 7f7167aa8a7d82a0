"""Safe YAML loading that remembers where every mapping and key came from.

Mappings load as :class:`LineDict`, a ``dict`` that also records the 1-based line of each of
its keys, so that a validation error deep in a spec can name ``file:line``. Duplicate keys are
errors (PyYAML silently keeps the last one), and alias expansion is bounded, so a "billion
laughs" document is refused instead of exhausting memory.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from verifier.errors import SpecError

MAX_EXPANDED_NODES = 100_000  # nodes after alias expansion; a YAML bomb is far above this
MAX_FLOW_DEPTH = 64  # nesting of [ and { before parsing (PyYAML is slow on deep nesting)


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


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


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


def _flow_depth(text: str) -> tuple[int, int]:
    """Deepest nesting of ``[``/``{`` outside quotes, and its line (a cheap pre-scan)."""
    depth = deepest = 0
    line = deepest_line = 1
    quote, comment, prev = "", False, "\n"
    for ch in text:
        if ch == "\n":
            line, comment, quote = line + 1, False, ""  # a stray apostrophe cannot hide nesting
        if comment:
            continue
        if quote:
            if ch == quote:
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


def load_yaml(text: str, file: str = "<spec>") -> Any:
    """Parse one YAML document safely, with line numbers.

    Args:
        text: the document.
        file: a label for error messages.

    Returns:
        Plain Python data, with every mapping a :class:`LineDict`.

    Raises:
        SpecError: malformed YAML, duplicate keys, more than one document, or an alias
            expansion above ``MAX_EXPANDED_NODES`` nodes.
    """
    depth, depth_line = _flow_depth(text)
    if depth > MAX_FLOW_DEPTH:
        raise SpecError(
            f"YAML nests [ and {{ {depth} deep; expected at most {MAX_FLOW_DEPTH}",
            file=file,
            line=depth_line,
        )
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError("expected a YAML mapping, got an empty document", file=file, line=1)
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
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        raise SpecError(f"malformed YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"malformed YAML: {exc}", file=file) from None
    except RecursionError:
        raise SpecError("YAML nested too deeply", file=file) from None
    finally:
        loader.dispose()
