"""The console view (verifier/console.py, verifier/cli.py): user text printed literally, each
measure beside its expectation, a legend, blocks at 80 columns, a line per finished spec when
stdout is not a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.conftest import run_cli
from verifier.cli import app
from verifier.console import LEGEND, METHODS, STATUSES, render_reports, spec_line
from verifier.engine.report import ClaimResult, ExpectationResult, Report


def _result(key: str, status: str, **fields: object) -> ClaimResult:
    return ClaimResult(
        key=key, claim_id=key.split("[")[0], check="training", status=status, **fields
    )


def _report() -> Report:
    failing = _result(
        "gd-multi-hop[cot=False]",
        "failed",
        method="empirical",
        measured={"accuracy": 0.9922, "steps_to_perfect": None, "params": 1234},
        expectations=[
            ExpectationResult(
                measure="accuracy",
                expected="1.0",
                measured=0.9922,
                ok=False,
                replicates=[0.9922, 0.9974],
            ),
            ExpectationResult(measure="steps_to_perfect", expected="<= 400", ok=None),
        ],
        message="[bold]381/384[/bold] facts",
    )
    passing = _result(
        "gd-multi-hop[cot=True]",
        "passed",
        method="empirical",
        measured={"accuracy": 1.0, "embedding_dim": 20},
        expectations=[
            ExpectationResult(
                measure="embedding_dim", expected="<= 20*R*log(N)", measured=20, ok=True, bound=83.2
            )
        ],
    )
    error = _result("[d_mlp=64]", "error", message="Error: [red]boom[/red] at [N=256]")
    return Report(
        spec="multi-hop", spec_hash="x", verifier_version="0", results=[failing, passing, error]
    )


def _render(width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, emoji=False, color_system=None)
    console.print(render_reports([_report()], width))
    return out.getvalue()


def test_user_text_is_printed_literally_wide_and_narrow() -> None:
    for width in (160, 80):
        text = _render(width)
        for literal in ("gd-multi-hop[cot=False]", "gd-multi-hop[cot=True]", "[d_mlp=64]"):
            assert literal in text, (width, text)
        assert "[red]boom[/red]" in text, (width, text)
    assert "Error: [red]boom[/red] at [N=256]" in _render(80)


def test_each_measure_beside_its_expectation() -> None:
    text = _render(160)
    assert "accuracy=0.9922 (expect 1.0) FAILED; replicates 0.9922 0.9974" in text
    assert "steps_to_perfect=None (expect <= 400) NOT MEASURED" in text
    assert "embedding_dim=20 (expect <= 20*R*log(N) = 83.2)" in text
    assert "params=1234" in text  # a usual measure fills the lines left


def test_narrow_consoles_get_one_block_per_claim_within_80_columns() -> None:
    text = _render(80)
    assert "┃" not in text and "│" not in text  # no table
    assert "multi-hop :: gd-multi-hop[cot=False]" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "┃" in _render(160)  # the table on a wide console


def test_legend_names_every_method_and_status() -> None:
    for word in [*METHODS, *STATUSES]:
        assert f"{word} = " in LEGEND
    assert "docs/verdicts.md" in LEGEND


def test_spec_line() -> None:
    line = spec_line(_report()).plain
    assert line.startswith("multi-hop: 3 claims, 1 failed, 1 passed, 1 error (")


def test_cli_prints_a_line_per_spec_the_legend_and_sweep_labels(tmp_path: Path) -> None:
    spec = tmp_path / "sweep.spec.yaml"
    spec.write_text(
        "name: sweep\ninstance: {kind: bijection, entities: 16, relations: 2, seed: 0}\n"
        "claims:\n  - id: c\n    check: construction\n    construction: {name: geometric}\n"
        "    sweep: {attributes: [shared, disjoint]}\n"
        "    expect: {accuracy: 1.0, margin: '>= 0.5'}\n"
    )
    proc = run_cli("check", str(spec), "--no-cache")  # stdout is a pipe: not a terminal
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("sweep: 2 claims, 2 passed (")  # before the table
    assert "c[attributes=shared]" in proc.stdout and "c[attributes=disjoint]" in proc.stdout
    assert "methods: symbolic = " in proc.stdout and "statuses: passed = " in proc.stdout
    pooled = run_cli("check", str(spec), "--no-cache", "--jobs", "2")  # a line per point
    assert pooled.returncode == 0, pooled.stdout + pooled.stderr
    assert "sweep::c[attributes=shared] passed" in pooled.stdout.splitlines()
    narrow = run_cli("check", str(spec), "--no-cache", env={"COLUMNS": "80"})
    assert "sweep :: c[attributes=shared]" in narrow.stdout
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines())


def test_check_and_run_offer_provenance_host() -> None:
    for command in ("check", "run"):
        out = CliRunner().invoke(app, [command, "--help"], terminal_width=200).output
        assert "--provenance-host" in out


LP_HEAD = "name: lp\ninstance: {kind: bijection, entities: 16, relations: 2, seed: 5}\nclaims:\n"
LP_CLAIMS = {
    "cvxpy": "  - id: p1\n    check: feasibility\n    program: codebook_margin\n"
    "    construction: {name: geometric, codebook: rademacher, code_dim: 16}\n"
    "    expect: {status: feasible}\n",
    "highspy": "  - id: p2\n    check: feasibility\n    program: reembed\n"
    "    construction: {name: geometric, codebook: rademacher, code_dim: 16}\n"
    "    min_margin: 0.1\n    expect: {status: feasible}\n",
}


@pytest.mark.parametrize("path", sorted(LP_CLAIMS))
def test_no_solver_banner_in_the_output(path: str, tmp_path: Path) -> None:
    """HiGHS prints its copyright banner when a process makes its first model, through cvxpy
    (P1) or highspy directly (P2); a fresh process must show it on neither path."""
    spec = tmp_path / "lp.spec.yaml"
    spec.write_text(LP_HEAD + LP_CLAIMS[path])
    proc = run_cli("check", str(spec), "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lp: 1 claims, 1 passed" in proc.stdout
    assert "HiGHS" not in proc.stdout + proc.stderr


def test_progress_bars_show_sweep_labels_literally() -> None:
    from verifier.engine.session import RunOptions, run_checks
    from verifier.limits import Limits
    from verifier.spec import load_spec_text

    spec = load_spec_text(
        "name: s\ninstance: {kind: bijection, entities: 16, relations: 2, seed: 0}\nclaims:\n"
        "  - id: c\n    check: construction\n    construction: {name: geometric}\n"
        "    sweep: {attributes: [shared, disjoint]}\n    expect: {accuracy: 1.0}\n"
    )
    console = Console(file=io.StringIO(), force_terminal=True, width=200, record=True)
    run_checks([spec], Limits(), RunOptions(progress=True), console)
    assert "c[attributes=" in console.export_text()
