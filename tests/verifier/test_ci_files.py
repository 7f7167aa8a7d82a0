"""The CI files users copy: the pre-commit hook and the example jobs use real options."""

from __future__ import annotations

import re
import shlex

import yaml
from typer.testing import CliRunner

from tests.conftest import ROOT
from verifier.cli import app

FIXTURES = ROOT / "tests" / "fixtures" / "agree"
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.yml"))


def test_the_pre_commit_hook_runs_verifier_check_on_touched_specs() -> None:
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert {"id", "name", "entry", "language", "files"} <= set(hook)
    files = re.compile(hook["files"])
    assert files.search("specs/single_hop/grid.spec.yaml")
    assert files.search("specs/convex/full/reembed.spec.yaml")  # named files run, full/ or not
    assert not files.search("README.md") and not files.search("specs/notes.yaml")
    command = shlex.split(hook["entry"])
    assert command[:2] == ["verifier", "check"]
    # pre-commit appends the touched files to the entry
    runner = CliRunner()
    passing = runner.invoke(app, [*command[1:], "--no-cache", str(FIXTURES / "other.spec.yaml")])
    assert passing.exit_code == 0, passing.output
    failing = runner.invoke(app, [*command[1:], "--no-cache", str(FIXTURES / "mixed.spec.yaml")])
    assert failing.exit_code == 1, failing.output


def test_the_example_jobs_parse_and_use_options_verifier_check_has() -> None:
    assert [p.name for p in EXAMPLES] == ["github-actions.yml", "gitlab-ci.yml"]
    help_text = CliRunner().invoke(app, ["check", "--help"], terminal_width=200).output
    for example in EXAMPLES:
        text = example.read_text()
        assert isinstance(yaml.safe_load(text), dict), example.name
        commands = [line for line in text.splitlines() if "verifier check" in line]
        assert commands, example.name
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", " ".join(commands)):
            assert option in help_text, f"{example.name}: {option}"
        assert "--baseline" in text and "--summary" in text and "--junit" in text
        assert ".verifier" in text  # the cache folder is kept between runs
