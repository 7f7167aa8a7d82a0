"""The Python door: docs/python.md runs as written, and check/load_spec behave as the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import verifier
from tests.conftest import ROOT

DOC = ROOT / "docs" / "python.md"


def test_the_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default cache folder lands here
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 6
    namespace: dict[str, object] = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC}:block {i + 1}", "exec"), namespace)
    assert (tmp_path / ".verifier" / "artifacts" / "verdicts").is_dir()


def test_import_verifier_stays_light() -> None:
    import subprocess
    import sys

    runner = "verifier.engine.runner"
    probe = f"import sys, verifier; print('torch' in sys.modules, {runner!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert set(verifier.__all__) >= {"check", "load_spec", "Report", "SpecError"}
    with pytest.raises(AttributeError, match="no attribute 'run_spec'"):
        verifier.run_spec  # noqa: B018  (private: not part of the door)


def test_sources_and_errors_are_the_clis(tmp_path: Path) -> None:
    fixtures = ROOT / "tests" / "fixtures" / "agree"
    reports = verifier.check([fixtures], cache=False, select="other")
    assert [(r.spec, [x.key for x in r.results]) for r in reports] == [("other", ["onehot"])]
    [from_file] = verifier.check(fixtures / "mixed.spec.yaml", cache=False)
    [from_text] = verifier.check((fixtures / "mixed.spec.yaml").read_text(), cache=False)
    assert [r.status for r in from_file.results] == [r.status for r in from_text.results]
    assert from_file.results[0].file.endswith("mixed.spec.yaml")
    with pytest.raises(verifier.SpecError, match="no such file"):
        verifier.load_spec(tmp_path / "missing.spec.yaml")
    with pytest.raises(verifier.SpecError, match="no such file or folder"):
        verifier.check(tmp_path / "missing")
    with pytest.raises(verifier.LimitExceeded, match="max_entities"):
        verifier.check(
            "name: big\ninstance: {kind: bijection, entities: 2000000, relations: 1}\n"
            "claims:\n  - {id: a, check: construction, construction: {name: geometric}}\n",
            cache=False,
        )
    with pytest.raises(verifier.VerifierError, match="--executor"):
        verifier.check(fixtures, executor="nope", cache=False)  # type: ignore[arg-type]
