"""The editor schema (``verifier schema``, verifier/spec/schema.py): measures named per claim
kind, registry names as enums, a description on every field; checked with check-jsonschema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from verifier.constructions.registry import constructions
from verifier.spec import spec_schema
from verifier.spec.docs import _claim_classes
from verifier.theory import theorems

pytest.importorskip("check_jsonschema")  # the dev extra

TRAINING = """name: typo
instance: {kind: bijection, entities: 48, relations: 2, seed: 0}
claims:
  - id: gd
    check: training
    model: {d_model: 8, d_mlp: 32}
    optim: {optimizer: adamw, lr: 1e-2, steps: 40}
    expect: {accuracy: 1.0}
"""


def _validate(
    schema: Path, *files: Path, verbose: bool = False
) -> subprocess.CompletedProcess[str]:
    flags = ["--verbose"] if verbose else []
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *flags, "--schemafile", str(schema)]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "spec.schema.json"
    path.write_text(json.dumps(spec_schema()))
    return path


def test_check_jsonschema_flags_a_misspelt_measure(schema_file: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.spec.yaml", tmp_path / "bad.spec.yaml"
    good.write_text(TRAINING)
    bad.write_text(TRAINING.replace("accuracy:", "acuracy:"))
    assert _validate(schema_file, good).returncode == 0
    proc = _validate(schema_file, bad)
    assert proc.returncode == 1 and "'acuracy' was unexpected" in proc.stdout, proc.stdout


def test_every_bundled_spec_validates(schema_file: Path) -> None:
    specs = sorted(ROOT.joinpath("specs").rglob("*.spec.yaml"))
    assert len(specs) > 20
    proc = _validate(schema_file, *specs)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _properties(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            found.append((f"{path}.{name}", prop))
        for key, value in node.items():
            found += _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for value in node:
            found += _properties(value, path)
    return found


def test_every_field_has_a_description() -> None:
    props = _properties(spec_schema())
    assert len(props) > 150
    missing = [path for path, prop in props if not prop.get("description")]
    assert missing == []


def test_each_kind_names_its_measures() -> None:
    defs = spec_schema()["$defs"]
    for name, cls in _claim_classes().items():
        if name not in defs:
            continue
        expect = defs[name]["properties"]["expect"]
        if not cls.MEASURES:  # a bound claim's measures come from its theorem
            assert expect.get("additionalProperties", True) is not False
            continue
        assert expect["additionalProperties"] is False
        assert set(cls.MEASURES) <= set(expect["properties"]), name
        assert "growth" in expect["properties"]


def test_registry_names_are_enums() -> None:
    defs = spec_schema()["$defs"]
    names = defs["Construction"]["properties"]["name"]["enum"]
    assert names == sorted(constructions())  # bijection and multi-hop constructions alike
    assert {"geometric", "compact", "chain", "cot"} <= set(names)
    theorem = defs["BoundClaim"]["properties"]["theorem"]["anyOf"][0]
    assert theorem["enum"] == [t.id for t in theorems()]
    assert defs["BoundClaim"]["properties"]["versus"]["items"]["enum"] == theorem["enum"]


def test_schema_flags_unknown_names(schema_file: Path, tmp_path: Path) -> None:
    spec = tmp_path / "c.spec.yaml"
    spec.write_text(
        "name: c\ninstance: {kind: bijection, entities: 16, relations: 2, seed: 0}\nclaims:\n"
        "  - id: c\n    check: construction\n    construction: {name: geometirc}\n"
        "  - id: b\n    check: bound\n    theorem: G2\n"
    )
    proc = _validate(schema_file, spec, verbose=True)
    assert proc.returncode == 1
    assert "'geometirc' is not one of" in proc.stdout and "'G2' is not one of" in proc.stdout
