"""CLI polish: plain-text help, the [ray] extra shown, --version, new's schema line, schema -o."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from verifier import __version__
from verifier.cli import app
from verifier.spec import load_spec_file, spec_schema

COMMANDS = ["check", "run", "schema", "new", "theorems", "plugins", "serve"]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_help_is_plain_text(command: list[str]) -> None:
    out = CliRunner().invoke(app, [*command, "--help"], terminal_width=200).output
    assert "``" not in out and ":func:" not in out and ":class:" not in out
    if command == ["check"]:
        assert "(extra [ray])" in out  # rich markup would have eaten the brackets


def test_version() -> None:
    proc = CliRunner().invoke(app, ["--version"])
    assert proc.exit_code == 0 and proc.output.strip() == f"verifier {__version__}"


def test_new_points_editors_at_the_schema_it_writes(tmp_path: Path) -> None:
    spec = tmp_path / "specs" / "mine.spec.yaml"
    proc = CliRunner().invoke(app, ["new", str(spec)])
    assert proc.exit_code == 0, proc.output
    first = spec.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=spec.schema.json"
    schema = tmp_path / "specs" / "spec.schema.json"
    assert json.loads(schema.read_text()) == spec_schema()
    assert load_spec_file(spec).name == "mine"  # the starter spec is valid
    other = tmp_path / "specs" / "deeper" / "second.spec.yaml"
    proc = CliRunner().invoke(app, ["new", str(other), "--schema", str(schema)])
    assert proc.exit_code == 0, proc.output
    assert other.read_text().startswith("# yaml-language-server: $schema=../spec.schema.json\n")
    assert CliRunner().invoke(app, ["new", str(other)]).exit_code == 2  # never overwrites


def test_schema_output_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "spec.schema.json"
    proc = CliRunner().invoke(app, ["schema", "--output", str(target)])
    assert proc.exit_code == 0, proc.output
    assert json.loads(target.read_text()) == spec_schema()
    printed = CliRunner().invoke(app, ["schema"]).output
    assert json.loads(printed) == spec_schema()
