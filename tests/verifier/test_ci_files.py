"""The CI files users copy: the pre-commit hook and the example jobs use real options."""

from __future__ import annotations

import re
import shlex
import subprocess

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


def _install_lines(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if not line.strip().startswith("#")]
    return [line for line in lines if "pip install" in line and "torch" not in line]


def test_examples_install_this_project_never_the_pypi_name() -> None:
    """``verifier`` on PyPI is an unrelated project: the jobs install from a repository URL,
    and stop with a message while its placeholder is not filled in."""
    for example in EXAMPLES:
        data = yaml.safe_load(example.read_text())
        env = data.get("env") or data["verify-specs"]["variables"]
        package = env["VERIFIER_PACKAGE"]
        assert package.startswith("git+https://"), example.name
        assert all('"$VERIFIER_PACKAGE"' in line for line in _install_lines(example.read_text()))
        guard = next(line for line in example.read_text().splitlines() if "OWNER/REPO*" in line)
        script = guard.strip().removeprefix("- ")
        for value, code in ((package, 2), ("git+https://github.com/acme/verifier@0123abc", 0)):
            proc = subprocess.run(
                ["bash", "-c", script], env={"VERIFIER_PACKAGE": value}, capture_output=True
            )
            assert proc.returncode == code, (example.name, value)


def test_ci_doc_snippets_use_no_tag_that_does_not_exist() -> None:
    doc = (ROOT / "docs" / "ci.md").read_text()
    tags = subprocess.run(
        ["git", "-C", str(ROOT), "tag"], capture_output=True, text=True, check=False
    ).stdout.split()
    for rev in re.findall(r"^\s*rev:\s*(\S+)", doc, re.M):
        assert rev == "COMMIT" or rev in tags, rev  # a placeholder the user fills, or a real tag
    assert not re.search(r"pip install\s+['\"]?verifier['\"]?(\s|$)", doc)
    assert "`.gitignore`" in doc
