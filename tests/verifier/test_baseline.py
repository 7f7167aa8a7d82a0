"""``verifier check --baseline OLD.json --summary FILE``: what changed since an earlier run."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from verifier.cli import app
from verifier.engine.baseline import compare, load_reports, markdown

BEFORE = """
name: changing
instance: {kind: bijection, entities: 48, relations: 2, seed: 5}
claims:
  - id: recall
    check: construction
    construction: {name: geometric, code_dim: auto, margin: 0.5}
    expect: {accuracy: 1.0}
  - id: margin
    check: construction
    construction: {name: geometric, code_dim: auto, margin: 0.5}
    expect: {margin: ">= 0.3"}
  - id: narrow
    check: construction
    construction: {name: geometric, code_dim: 3}
    expect: {accuracy: 1.0}
  - id: dropped
    check: construction
    construction: {name: geometric, code_dim: 12}
    expect: {accuracy: 1.0}
"""
AFTER = """
name: changing
instance: {kind: bijection, entities: 48, relations: 2, seed: 5}
claims:
  - id: recall
    check: construction
    construction: {name: geometric, code_dim: 3}
    expect: {accuracy: 1.0}
  - id: margin
    check: construction
    construction: {name: geometric, code_dim: auto, margin: 0.4}
    expect: {margin: ">= 0.3"}
  - id: narrow
    check: construction
    construction: {name: geometric, code_dim: auto}
    expect: {accuracy: 1.0}
  - id: added
    check: construction
    construction: {name: geometric, code_dim: 12}
    expect: {accuracy: 1.0}
"""  # recall now fails, narrow now passes, margin's figure moves, dropped -> added


def _check(spec: Path, *args: str) -> tuple[int, str]:
    proc = CliRunner().invoke(app, ["check", str(spec), "--no-cache", "--no-progress", *args])
    return proc.exit_code, proc.output


def test_baseline_and_summary_show_a_claim_that_started_failing(tmp_path: Path) -> None:
    spec = tmp_path / "changing.spec.yaml"
    spec.write_text(BEFORE)
    old = tmp_path / "old.json"
    code, _ = _check(spec, "--json", str(old))
    assert code == 1  # narrow fails before
    spec.write_text(AFTER)
    summary = tmp_path / "summary.md"
    code, output = _check(spec, "--baseline", str(old), "--summary", str(summary))
    assert code == 1  # recall fails now: the same exit code as without a baseline
    assert "1 newly failing, 1 newly passing, 1 moved, 1 added, 1 removed" in output
    text = summary.read_text()
    print(text)  # the example in the closing note
    assert text.startswith("## Verification: failed\n")
    newly_failing = text.split("**Newly failing (1)**")[1].split("**")[0]
    assert "| `changing::recall` | passed | failed | accuracy: 1 → 0" in newly_failing
    newly_passing = text.split("**Newly passing (1)**")[1].split("**")[0]
    assert "| `changing::narrow` | failed | passed |" in newly_passing
    moved = text.split("**Figures moved beyond their tolerance (1)**")[1].split("**")[0]
    assert "`changing::margin` | passed | passed | margin: 0.5" in moved
    assert "**Added (1)**: `changing::added`" in text
    assert "**Removed (1)**: `changing::dropped`" in text
    assert "### Not passing" in text and "claim 'recall' failed" in text
    table = text.split("### Verdicts")[1]
    assert table.count("\n| changing |") == 4


def test_no_change_says_so_and_equality_tolerances_are_the_specs(tmp_path: Path) -> None:
    spec = tmp_path / "same.spec.yaml"
    spec.write_text(BEFORE.replace('{margin: ">= 0.3"}', "{margin: {value: 0.5, tol: 0.05}}"))
    old = tmp_path / "old.json"
    _check(spec, "--json", str(old))
    summary = tmp_path / "summary.md"
    _check(spec, "--baseline", str(old), "--summary", str(summary))
    assert "No verdict or expected figure changed." in summary.read_text()
    [report] = load_reports(old)
    within = report.model_copy(deep=True)
    [margin] = [r for r in within.results if r.key == "margin"]
    margin.measured["margin"] += 0.01  # inside tol = 0.05: not moved
    assert compare([report], [within]).empty
    margin.measured["margin"] += 0.1
    assert [c.name for c in compare([report], [within]).moved] == ["changing::margin"]


def test_a_bad_baseline_is_a_usage_error(tmp_path: Path) -> None:
    spec = tmp_path / "same.spec.yaml"
    spec.write_text(BEFORE)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "a report"}))
    code, output = _check(spec, "--baseline", str(bad))
    assert code == 2 and "expected the output of `verifier check --json`" in output
    code, output = _check(spec, "--baseline", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read it" in output
    assert markdown([]).startswith("## Verification: passed\n")
