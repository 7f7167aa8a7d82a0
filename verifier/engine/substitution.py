"""Writing one field of a claim point's data: what a sweep and a minimal-resource search vary.

A field is named as in a spec: an instance field (``N``, ``R``, ``k`` alias ``entities``,
``relations``, ``hops``), a key that appears exactly once anywhere in the claim (``code_dim``,
``d_model``), or a dotted path from the claim's top (``optim.groups.W_E.lr``). The data are the
``model_dump()`` of the instance and the claim; re-validating them is the caller's business.
"""

from __future__ import annotations

from typing import Any

from verifier.spec import SWEEP_ALIASES


class FieldNotFound(LookupError):
    """``name`` is neither an instance field nor found exactly once in the claim.

    Attributes:
        name: the field as the spec wrote it.
        occurrences: how many keys of that name the claim has (0 or more than 1).
        instance_fields: the fields the instance has, for the message.
    """

    def __init__(self, name: str, occurrences: int, instance_fields: list[str]) -> None:
        self.name = name
        self.occurrences = occurrences
        fields = ", ".join(list(SWEEP_ALIASES) + sorted(instance_fields))
        super().__init__(
            f"field {name!r} is not an instance field ({fields}), a unique field of the claim, "
            "or a dotted path into it (optim.groups.W_E.lr)"
            + (f" (it appears {occurrences} times)" if occurrences else "")
        )


def field_paths(data: dict[str, Any], name: str) -> list[list[str]]:
    """Paths to every key called ``name`` in nested claim data.

    A dotted name (``optim.groups.W_E.optimizer``, ``model.init.W_E``) is one path from the top;
    the mappings along it are created where missing or unset (``init`` and ``groups`` start
    empty, ``augment`` unset), so
    a path the claim does not accept fails its re-validation, naming the key.
    """
    if "." in name:
        parts = name.split(".")
        node: Any = data
        for part in parts[:-1]:
            if not isinstance(node, dict):
                return []
            if node.get(part) is None:  # an unset optional block (optim.augment)
                node[part] = {}
            node = node[part]
        return [parts] if isinstance(node, dict) else []
    paths: list[list[str]] = []
    for key, value in data.items():
        if key == name:
            paths.append([key])
        elif isinstance(value, dict):
            paths.extend([key, *p] for p in field_paths(value, name))
    return paths


def set_field(instance: dict[str, Any], claim: dict[str, Any], name: str, value: Any) -> None:
    """Write ``value`` to field ``name`` (see the module) of a point's data, in place.

    Raises:
        FieldNotFound: ``name`` is not an instance field and the claim has no key, or more
            than one, of that name.
    """
    field = SWEEP_ALIASES.get(name, name)
    if field in instance:
        instance[field] = value
        return
    paths = field_paths(claim, field)
    if len(paths) != 1:
        raise FieldNotFound(name, len(paths), list(instance))
    node = claim
    for part in paths[0][:-1]:
        node = node[part]
    node[paths[0][-1]] = value
