"""The README stays honest: its commands come first, and its example spec runs as shown."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from verifier.engine.runner import run_spec
from verifier.spec import load_spec_text

README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_commands() -> None:
    head = README.splitlines()[:10]
    assert any(line.startswith("make run") for line in head)
    assert any(line.startswith("make test") for line in head)
    makefile = (ROOT / "Makefile").read_text()
    assert "torch==2.13.0" in makefile
    assert re.search(r"^test:.*\n\t.*pytest tests specs", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_spec_is_the_bundled_one_and_passes() -> None:
    block = re.search(r"```yaml\n(.*?)```", README, re.S)
    assert block is not None
    text = block.group(1)
    path = text.splitlines()[0].removeprefix("# ").strip()
    bundled = load_spec_text((ROOT / path).read_text(), path)
    shown = load_spec_text(text, "README.md")
    assert shown.claims[0] == bundled.claims[0]
    assert shown.instance == bundled.instance
    report = run_spec(shown)
    assert [r.status for r in report.results] == ["passed"]


def test_readme_states_the_fixed_bounds() -> None:
    from verifier.spec.formulas import (
        MAX_CONSTANT,
        MAX_EXACT_DIGITS,
        MAX_EXPONENT,
        MAX_FORMULA_CHARS,
    )
    from verifier.spec.yaml_lines import MAX_DEPTH, MAX_EXPANDED_NODES, MAX_FLOW_DEPTH

    limits = README.split("## Limits", 1)[1]
    assert f"at most {MAX_FORMULA_CHARS} characters" in limits
    assert MAX_CONSTANT == 1e300 and "at most 1e300 in magnitude" in limits
    assert f"exponent at most {MAX_EXPONENT:,}" in limits
    assert f"at most {MAX_EXACT_DIGITS:,} digits" in limits
    assert MAX_DEPTH == MAX_FLOW_DEPTH and f"at most {MAX_DEPTH} levels" in limits
    assert f"{MAX_EXPANDED_NODES:,} nodes" in limits
