"""Bad input: each gets one clear line naming file:line and key, and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import run_cli
from verifier.cli import app
from verifier.engine.runner import SpecRunner
from verifier.errors import LimitExceeded, SpecError
from verifier.limits import Limits
from verifier.spec import load_spec_text

GOOD = """\
name: demo
instance: {kind: bijection, entities: 64, relations: 2, seed: 1}
claims:
  - id: exact
    check: construction
    construction: {name: geometric, code_dim: auto, margin: 0.5}
    expect:
      accuracy: 1.0
      margin: ">= 0.5"
"""

CASES = {
    "unknown-key": (
        GOOD.replace("margin: 0.5}", "margin: 0.5, codebok: gaussian}"),
        ":6: claims.0.construction.codebok: unknown key 'codebok' (did you mean 'codebook'?)",
    ),
    "wrong-type": (
        GOOD.replace("entities: 64", "entities: many"),
        ":2: instance.entities: Input should be a valid integer",
    ),
    "n-below-2": (GOOD.replace("entities: 64", "entities: 1"), ":2: instance.entities:"),
    "r-below-1": (GOOD.replace("relations: 2", "relations: 0"), ":2: instance.relations:"),
    "malformed-yaml": (GOOD.replace("claims:", "claims: [\n"), "malformed YAML"),
    "alias-bomb": (
        "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
        "alias bomb",
    ),
    "duplicate-claim-ids": (
        GOOD
        + "  - id: exact\n    check: construction\n    construction: {name: geometric}\n"
        + "    expect: {accuracy: 1.0}\n",
        ":10: claims.1.id: duplicate claim id 'exact'",
    ),
    "duplicate-key": (GOOD.replace("seed: 1}", "seed: 1, seed: 2}"), ":2: seed: duplicate key"),
    "import-formula": (
        GOOD.replace('">= 0.5"', "\">= __import__('os').system('touch PWNED')\""),
        ":9: claims.0.expect.margin: formula",
    ),
    "attribute-formula": (
        GOOD.replace('">= 0.5"', '">= N.__class__"'),
        ":9: claims.0.expect.margin: formula 'N.__class__': Attribute is not allowed",
    ),
    "lambda-formula": (
        GOOD.replace('">= 0.5"', '">= (lambda: 1)()"'),
        ":9: claims.0.expect.margin:",
    ),
    "unknown-symbol": (
        GOOD.replace('">= 0.5"', '">= q * N"'),
        ":9: claims.0.expect.margin: formula 'q * N': unknown symbol 'q'",
    ),
    "unknown-measure": (
        GOOD.replace("accuracy: 1.0", "acuracy: 1.0"),
        ":8: claims.0.expect.acuracy: unknown measure",
    ),
    "unknown-check": (
        GOOD.replace("check: construction", "check: magic"),
        ":5: claims.0.check: unknown check 'magic'; expected one of construction, budget",
    ),
}


def _check_in_process(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["check", str(path)], env={"COLUMNS": "400"})
    return result.exit_code, result.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spec_gives_one_line_and_exit_2(
    case: str,
    write_spec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.chdir(tmp_path)
    text, fragment = CASES[case]
    path = write_spec(text)
    code, stderr = _check_in_process(path)
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert str(path) in lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in stderr
    assert not (tmp_path / "PWNED").exists()


def test_bad_spec_through_the_real_console_script(write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(CASES["unknown-key"][0])
    proc = run_cli("check", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}:6: claims.0.construction.codebok: unknown key 'codebok' "
        "(did you mean 'codebook'?)"
    ]


def test_limits_refuse_before_any_work() -> None:
    text = GOOD + (
        "  - id: huge\n    check: construction\n    construction: {name: geometric, code_dim: 8}\n"
        "    expect: {accuracy: 1.0}\n"
    )
    text = text.replace("entities: 64", "entities: 5000")
    spec = load_spec_text(text, "limits.spec.yaml")
    calls: list[str] = []
    limits = Limits(max_entities=4096)
    with pytest.raises(LimitExceeded, match="max_entities = 4,096"):
        runner = SpecRunner(spec, limits, progress=lambda k, f, m: calls.append(k))
        runner.preflight()
    assert calls == []
    with pytest.raises(LimitExceeded, match=r"N\*R \(facts\) is 10,000, over the limit max_facts"):
        SpecRunner(spec, Limits(max_facts=9_999)).preflight()


def test_limit_from_environment_via_cli(write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(
        GOOD.replace("entities: 64", "entities: 300000").replace("relations: 2", "relations: 8")
    )
    proc = run_cli("check", str(path), env={"VERIFIER_MAX_FACTS": "1000000"})
    assert proc.returncode == 2
    assert "over the limit max_facts = 1,000,000" in proc.stderr
    assert "VERIFIER_MAX_FACTS" in proc.stderr


def test_spec_error_object_carries_location() -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(GOOD.replace("relations: 2", "relations: x"), "f.spec.yaml")
    err = info.value
    assert (err.file, err.line, err.key) == ("f.spec.yaml", 2, "instance.relations")


def test_oversized_spec_is_refused() -> None:
    with pytest.raises(SpecError, match="over the limit max_spec_bytes"):
        load_spec_text(GOOD + "#" * 1000, max_bytes=500)


def test_unknown_sweep_field(write_spec) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(GOOD.replace("    expect:", "    sweep: {widht: [1, 2]}\n    expect:"))
    code, stderr = _check_in_process(path)
    assert code == 2
    assert "sweep field 'widht'" in stderr


_FORMULA_HEAD = (
    "name: t\ninstance: {kind: bijection, entities: 16, relations: 2, seed: 0}\nclaims:\n"
    "  - id: c\n    check: construction\n    construction: {name: geometric}\n"
)


@pytest.mark.parametrize(
    ("expect", "line", "hint"),
    [
        ("    expect:\n      margin: >= 0.5\n", 8, 'margin: ">= 0.5"'),
        ("    expect:\n      accuracy: 1.0\n      margin: > 0.5\n", 9, 'margin: "> 0.5"'),
        ("    expect: {accuracy: 1.0, margin: >= 0.5}\n", 7, 'margin: ">= 0.5"'),
    ],
)
def test_an_unquoted_formula_gets_a_hint_to_quote_it(expect: str, line: int, hint: str) -> None:
    with pytest.raises(SpecError, match="malformed YAML") as err:
        load_spec_text(_FORMULA_HEAD + expect, file="f.spec.yaml")
    assert err.value.line == line
    assert f"a formula starting with < or > must be quoted: {hint}" in str(err.value)


def test_other_yaml_errors_get_no_formula_hint() -> None:
    with pytest.raises(SpecError, match="malformed YAML") as err:
        load_spec_text("name: t\ninstance: {kind: bijection\nclaims: []\n", file="f.spec.yaml")
    assert "quoted" not in str(err.value)
