"""Docs in the repository: generated pages are fresh, citations resolve, nothing points outside."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import ROOT
from verifier.spec import docs

OUTSIDE = "../" + "shared"  # spelled in two parts so this file does not match itself


def _repository_files() -> list[Path]:
    """Tracked and untracked files that git does not ignore (every file a clone would hold)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.split()
    return [ROOT / f for f in out if (ROOT / f).is_file()]


def test_spec_language_page_is_generated_from_the_models() -> None:
    page = ROOT / "docs" / "spec-language.md"
    assert page.read_text() == docs.render(), "stale: run `python -m verifier.spec.docs`"
    assert docs.main(["--check"]) == 0


def test_a_stale_page_fails_the_check(tmp_path: Path) -> None:
    stale = tmp_path / "spec-language.md"
    stale.write_text(docs.render().replace("| `entities` |", "| `entitys` |"))
    assert docs.main(["--check", "--output", str(stale)]) == 1
    assert docs.main(["--output", str(stale)]) == 0  # regenerating fixes it
    assert docs.main(["--check", "--output", str(stale)]) == 0


def test_every_model_field_is_on_the_page() -> None:
    from verifier.spec import Spec

    page = docs.render()
    for name, model in Spec.model_json_schema(by_alias=True)["$defs"].items():
        assert f"### {name}" in page
        for field in model["properties"]:
            assert f"| `{field}` |" in page, f"{name}.{field}"


def test_no_file_refers_outside_the_repository() -> None:
    offenders = []
    for path in _repository_files():
        try:
            if OUTSIDE in path.read_text(errors="ignore"):
                offenders.append(str(path.relative_to(ROOT)))
        except OSError:
            continue
    assert offenders == []


def test_theory_citations_name_sections_that_exist() -> None:
    theory = (ROOT / "docs" / "theory.md").read_text()
    sections = set(re.findall(r"^#{2,3} (\d+[a-z]?)\. ", theory, re.M))
    assert {"1", "2", "3", "3b", "4", "5", "6", "7", "7b"} <= sections
    cited: set[str] = set()
    citation = re.compile(r"docs/theory\.md,? (?:sections? )?([\d, a-z-]+)")
    for path in [*ROOT.joinpath("verifier").rglob("*.py"), *ROOT.joinpath("specs").rglob("*.yaml")]:
        for match in citation.finditer(path.read_text()):
            for a, b in re.findall(r"(\d+[a-z]?)(?:-(\d+))?", match.group(1)):
                cited.update([a] if not b else [str(i) for i in range(int(a), int(b) + 1)])
    assert cited and cited <= sections, cited - sections


def test_readme_links_the_docs_and_every_relative_link_resolves() -> None:
    readme = (ROOT / "README.md").read_text()
    pages = ("docs/theory.md", "docs/spec-language.md", "docs/ci.md", "docs/python.md")
    for page in (*pages, "docs/verdicts.md"):
        assert f"({page})" in readme, page
    for md in [ROOT / "README.md", *ROOT.joinpath("docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", md.read_text()):
            if "://" in target:
                continue
            assert (md.parent / target).exists(), f"{md.name}: {target}"


def test_verdicts_page_names_every_status_and_method() -> None:
    """docs/verdicts.md and the console legend cover what a report can say."""
    from typing import get_args

    from verifier.checks.base import Method
    from verifier.console import METHODS, STATUSES
    from verifier.engine.report import Status

    page = (ROOT / "docs" / "verdicts.md").read_text()
    for word in (*get_args(Method), *get_args(Status)):
        assert f"| `{word}` |" in page, word
    assert set(METHODS) == set(get_args(Method))
    assert set(get_args(Status)) <= set(STATUSES)
