"""Provenance in every report (verifier/engine/provenance.py): versions, device, CPU, training
settings, the specs' git state, the host name only on request; in JSON and JUnit."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest

import verifier
from tests.conftest import run_cli
from verifier.engine import provenance
from verifier.train import loop

SPEC = (
    "name: p\ninstance: {kind: bijection, entities: 16, relations: 2, seed: 0}\nclaims:\n"
    "  - id: c\n    check: construction\n    construction: {name: geometric}\n"
    "    expect: {accuracy: 1.0}\n"
)


def test_versions_settings_and_no_host_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERIFIER_TRAIN_THREADS", "3")
    monkeypatch.setenv("VERIFIER_TRAIN_ORDER", "11")
    monkeypatch.setenv("VERIFIER_DEVICE", "cpu")
    monkeypatch.delenv(provenance.HOST_VAR, raising=False)
    p = provenance.collect()
    assert p.verifier == verifier.__version__ and p.python == platform.python_version()
    for name in ("torch", "numpy", "scipy", "cvxpy", "sympy"):
        assert getattr(p, name) == metadata.version(name)
    assert (p.train_threads, p.train_order, p.device) == (3, 11, "cpu")
    assert p.environment["VERIFIER_TRAIN_ORDER"] == "11"
    assert p.cpu and p.host is None and p.git_commit is None


def test_host_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(provenance.HOST_VAR, "1")
    assert provenance.collect().host
    monkeypatch.setenv(provenance.HOST_VAR, "0")
    assert provenance.collect().host is None


def test_bad_settings_never_fail_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERIFIER_DEVICE", "tpu")
    monkeypatch.setenv("VERIFIER_TRAIN_THREADS", "many")
    p = provenance.collect()
    assert p.device.startswith("unresolved: VERIFIER_DEVICE") and p.train_threads == 1
    assert p.environment["VERIFIER_TRAIN_THREADS"] == "many"  # the raw value is kept


def test_the_variable_names_are_the_trainers() -> None:
    assert provenance.TRAIN_THREADS_VAR == loop.TRAIN_THREADS_VAR
    assert provenance.TRAIN_ORDER_VAR == loop.TRAIN_ORDER_VAR


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_and_dirty(tmp_path: Path) -> None:
    spec = tmp_path / "specs" / "p.spec.yaml"
    assert provenance.git_state(str(tmp_path / "nowhere.spec.yaml")) == (None, None)
    spec.parent.mkdir()
    spec.write_text(SPEC)
    assert provenance.git_state(str(spec)) == (None, None)  # not a repository
    _git(tmp_path, "init", "-q")
    (tmp_path / "other.txt").write_text("x")
    _git(tmp_path, "add", "other.txt")
    _git(tmp_path, "commit", "-qm", "first")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert provenance.git_state(str(spec)) == (head, True)  # the spec is not committed
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "spec")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert provenance.git_state(str(spec)) == (head, False)
    spec.write_text(SPEC + "# edited\n")
    assert provenance.git_state(str(spec)) == (head, True)
    spec.write_text(SPEC)
    (tmp_path / "other.txt").write_text("y")  # a tracked file elsewhere in the tree
    assert provenance.git_state(str(spec)) == (head, True)


def test_no_git_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "p.spec.yaml"
    spec.write_text(SPEC)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert provenance.git_state(str(spec)) == (None, None)


def test_every_report_has_it_in_json_and_junit(tmp_path: Path) -> None:
    [report] = verifier.check(SPEC, cache=False)
    assert report.provenance is not None and report.provenance.verifier == verifier.__version__
    spec = tmp_path / "p.spec.yaml"
    spec.write_text(SPEC)
    out, junit = tmp_path / "r.json", tmp_path / "r.xml"
    proc = run_cli(
        "check", str(spec), "--no-cache", "--json", str(out), "--junit", str(junit),
        "--provenance-host",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [data] = json.loads(out.read_text())
    assert data["provenance"]["torch"] == metadata.version("torch")
    assert data["provenance"]["host"]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verifier.verifier"] == verifier.__version__
    assert props["verifier.train_threads"] == str(data["provenance"]["train_threads"])
    assert props["verifier.host"] == data["provenance"]["host"]
    assert props["verifier.device"] == data["provenance"]["device"]


def test_cuda_device_is_named_with_its_card(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA branch without a GPU: the card's name as torch reports it."""
    import torch

    monkeypatch.setattr(provenance, "resolve_device", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Card X")
    assert provenance.device_text() == "cuda (Card X)"
