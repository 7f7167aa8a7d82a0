"""The verdict cache: what its key covers, and reuse through the runner, the pool and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from verifier.cli import app
from verifier.codekey import PACKAGE_ROOT, engine_key, kind_modules
from verifier.engine import executors
from verifier.engine.report import Report
from verifier.engine.runner import SpecRunner
from verifier.engine.verdicts import VerdictStore
from verifier.limits import Limits
from verifier.spec import load_spec_text

SPEC = """
name: reuse-me
instance: {kind: bijection, entities: 64, relations: 2, seed: 5}
claims:
  - id: built
    check: construction
    construction: {name: geometric, code_dim: auto, margin: 0.5}
    sweep: {N: [32, 64]}
    expect: {accuracy: 1.0}
  - id: counted
    check: bound
    theorem: LB1
    given: {precision_bits: 16}
    against: built
    sweep: {N: [32, 64]}
    expect: {min_embedding_dim: "<= measured_embedding_dim"}
  - id: alone
    check: bound
    theorem: LB1
    given: {precision_bits: 16}
    expect: {min_embedding_dim: ">= 0"}
  - id: gd
    check: training
    model: {d_model: 12, d_mlp: 48, heads: 1}
    optim: {lr: 2e-2, steps: 400}
    expect: {accuracy: 1.0}
  - id: moved
    check: transfer
    from: gd
    method: probe
    expect: {control_accuracy: "<= 0.1"}
"""
pytest_plugins = ["pytester"]
KEYS = ["built[N=32]", "built[N=64]", "counted[N=32]", "counted[N=64]", "alone", "gd", "moved"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py


def _run(text: str, cache: Path, root: Path | None = None, read: bool = True) -> Report:
    runner = SpecRunner(
        load_spec_text(text, "reuse.spec.yaml"),
        cache_dir=str(cache),
        verdicts=VerdictStore(str(cache), read=read, root=root),
    )
    runner.preflight()
    return runner.run()


def _reran(report: Report) -> list[str]:
    return [r.key for r in report.results if not r.reused]


def _verdicts(report: Report) -> list[tuple[str, str, Any]]:
    return [(r.key, r.status, r.measured) for r in report.results]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder where SPEC was verified once (training included)."""
    folder = tmp_path_factory.mktemp("cache")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first = _run(SPEC, folder)
    finally:
        torch.set_num_threads(before)
    assert [r.key for r in first.results] == KEYS
    assert all(r.ok and not r.reused for r in first.results), first
    return folder


def _copy(cache: Path, tmp_path: Path) -> Path:
    out = tmp_path / "cache"
    shutil.copytree(cache, out)
    return out


def test_unchanged_spec_reuses_every_verdict(cache: Path, tmp_path: Path) -> None:
    folder = _copy(cache, tmp_path)
    fresh = _run(SPEC, folder, read=False)  # verified again: the reference verdicts
    again = _run(SPEC, folder)
    assert _reran(again) == []
    assert _verdicts(again) == _verdicts(fresh)
    assert all(r.verified_at and r.verified_at[:4].isdigit() for r in again.results)
    # comments, key order and a description do not change a verdict's key
    moved = SPEC.replace("  - id: alone\n", "  # prose\n  - id: alone\n    description: prose\n")
    assert _reran(_run(moved, folder)) == []


def test_editing_a_claim_reruns_it_and_its_dependents_only(
    cache: Path, tmp_path: Path, trainings: list[int]
) -> None:
    folder = _copy(cache, tmp_path)
    edited = SPEC.replace("code_dim: auto, margin: 0.5}", "code_dim: auto, margin: 0.4}")
    assert _reran(_run(edited, folder)) == KEYS[:4]  # built and counted, which reads it
    assert _reran(_run(edited, folder)) == []
    edited = SPEC.replace('"<= measured_embedding_dim"', '"<= 2 * measured_embedding_dim"')
    assert _reran(_run(edited, folder)) == ["counted[N=32]", "counted[N=64]"]
    gd_expect = "expect: {accuracy: 1.0}\n  - id: moved"
    edited = SPEC.replace(gd_expect, gd_expect.replace("1.0", "'>= 0.99'"))
    assert _reran(_run(edited, folder)) == ["gd", "moved"]
    assert trainings == []  # gd's model came from its checkpoint: expect is not in that key


def test_a_dependent_that_reads_the_model_reruns_its_dependency_from_the_checkpoint(
    cache: Path, tmp_path: Path, trainings: list[int]
) -> None:
    folder = _copy(cache, tmp_path)
    edited = SPEC.replace('{control_accuracy: "<= 0.1"}', '{control_accuracy: "<= 0.2"}')
    report = _run(edited, folder)
    assert _reran(report) == ["gd", "moved"] and all(r.ok for r in report.results)
    assert trainings == []
    # with no checkpoint left the dependency trains again rather than failing the dependent
    shutil.rmtree(folder / "training")
    edited = edited.replace('"<= 0.2"', '"<= 0.3"')
    assert _reran(_run(edited, folder)) == ["gd", "moved"] and trainings == [1]


def _edited_package(tmp_path: Path, relative: str) -> Path:
    root = tmp_path / "verifier"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    with (root / relative).open("a") as f:
        f.write("\n# an edit\n")
    return root


@pytest.mark.parametrize(
    ("edited", "reran"),
    [
        # construction claims, counted (which reads them), and training: it imports facts_of
        ("checks/construction.py", [*KEYS[:4], "gd", "moved"]),
        ("checks/bound.py", ["counted[N=32]", "counted[N=64]", "alone"]),
        ("train/__init__.py", ["gd", "moved"]),
        ("theory/__init__.py", KEYS),  # the spec language's theorem registry: every claim
        ("cli.py", []),  # a door, not the engine
        ("pytest_plugin.py", []),
    ],
)
def test_a_source_edit_reruns_what_its_key_covers(
    cache: Path, tmp_path: Path, edited: str, reran: list[str]
) -> None:
    folder = _copy(cache, tmp_path)
    unedited = tmp_path / "unedited"
    shutil.copytree(PACKAGE_ROOT, unedited, ignore=shutil.ignore_patterns("__pycache__"))
    assert _reran(_run(SPEC, folder, root=unedited)) == []  # a copy keys as the original
    assert _reran(_run(SPEC, folder, root=_edited_package(tmp_path, edited))) == reran


def test_the_key_covers_libraries_limits_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec_text(SPEC, "reuse.spec.yaml")
    store = VerdictStore(str(tmp_path))

    def key(limits: Limits | None = None, claim: str = "alone") -> str | None:
        runner = SpecRunner(spec, limits, verdicts=store)
        return runner.key_of(runner.points[claim][0])

    base, trained, moved = key(), key(claim="gd"), key(claim="moved")
    assert base is not None and key() == base
    assert key(Limits(solver_time_limit_s=5.0)) != base
    monkeypatch.setenv("VERIFIER_TRAIN_THREADS", "3")  # the trainer's: training, transfer
    assert key() == base and key(claim="gd") != trained and key(claim="moved") != moved
    monkeypatch.setenv("VERIFIER_SOLVER_THREADS", "3")  # any other setting: every claim
    assert key() != base
    monkeypatch.setenv("VERIFIER_API_TOKEN", "secret")  # the service's own settings: not in it
    with_token = key()
    monkeypatch.delenv("VERIFIER_API_TOKEN")
    assert key() == with_token
    from verifier import codekey

    monkeypatch.setattr(codekey, "library_versions", lambda: {"torch": "0.0"})
    codekey._engine_key.cache_clear()
    try:
        assert key() != with_token
    finally:
        monkeypatch.undo()
        codekey._engine_key.cache_clear()


def test_kinds_get_finer_keys_from_the_import_graph() -> None:
    bound, training = kind_modules("bound"), kind_modules("training")
    assert bound is not None and training is not None
    assert "verifier.train" in training and "verifier.train" not in bound
    assert "verifier.checks.construction" not in bound  # another kind's module: not a root
    assert {
        "verifier.engine.runner",
        "verifier.spec",
        "verifier.theory",
        "verifier.engine.verdicts",
    } <= bound
    assert not {"verifier.cli", "verifier.pytest_plugin"} & (bound | training)
    assert engine_key("no-such-kind") is None  # no built-in or installed kind: never reused


def test_only_final_verdicts_are_stored(tmp_path: Path) -> None:
    text = SPEC.split("  - id: built")[0] + (
        "  - id: not-measured\n"
        "    check: bound\n"
        "    theorem: G1\n"
        "    limit: 'code_dim / log(N)'\n"  # a ceiling sympy cannot take: undecided
        "    expect: {limit: 16}\n"
    )
    first = _run(text, tmp_path)
    assert [r.status for r in first.results] == ["undecided"]
    assert _reran(_run(text, tmp_path)) == ["not-measured"]
    assert not list((tmp_path / "verdicts").rglob("*.json"))


def test_pool_runs_take_stored_verdicts_without_starting_workers(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy(cache, tmp_path)

    def no_pool(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("every verdict is stored: no task should be sent")

    monkeypatch.setattr(executors, "_local_pool", no_pool)
    spec = load_spec_text(SPEC, "reuse.spec.yaml")
    store = VerdictStore(str(folder))
    [report] = executors.run_specs([spec], jobs=2, cache_dir=str(folder), verdicts=store)
    assert [r.key for r in report.results] == KEYS and _reran(report) == []


def test_cli_marks_reused_results_and_no_reuse_verifies_again(tmp_path: Path) -> None:
    spec = tmp_path / "built.spec.yaml"
    spec.write_text(SPEC.split("  - id: counted")[0])
    cache = tmp_path / "cache"

    def check(*extra: str) -> list[dict[str, Any]]:
        out = tmp_path / "report.json"
        args = ["check", str(spec), "--cache-dir", str(cache), "--json", str(out), *extra]
        proc = CliRunner().invoke(app, args)
        assert proc.exit_code == 0, proc.output
        [report] = json.loads(out.read_text())
        return list(report["results"])

    assert [r["reused"] for r in check()] == [False, False]
    proc = CliRunner().invoke(app, ["check", str(spec), "--cache-dir", str(cache)])
    assert proc.output.count("reused 20") == 2 and "(2 reused)" in proc.output
    assert [r["reused"] for r in check("--no-reuse")] == [False, False]
    assert [r["reused"] for r in check("--no-cache")] == [False, False]
    assert [r["reused"] for r in check()] == [True, True]


# --- the import graph against what really runs --------------------------------------------------

_BIJECTION = "name: k\ninstance: {kind: bijection, entities: 32, relations: 2, seed: 1}\nclaims:\n"
_GD = (
    "  - {id: gd, check: training, model: {d_model: 8, d_mlp: 16}, optim: {lr: 0.02, steps: 20},"
    " expect: {accuracy: '>= 0'}}\n"
)
KIND_SPECS = {
    "bound": _BIJECTION + "  - {id: b, check: bound, theorem: LB1, given: {precision_bits: 16},"
    " expect: {min_embedding_dim: '>= 0'}}\n",
    "construction": _BIJECTION
    + "  - {id: c, check: construction, construction: {name: geometric}, expect: {accuracy: 1}}\n",
    "feasibility": _BIJECTION + "  - {id: f, check: feasibility, program: codebook_margin,"
    " construction: {name: geometric, code_dim: 16}, expect: {status: feasible}}\n",
    "budget": "name: k\ninstance: {kind: multi_hop, entities: 16, relations: 2, hops: 2, seed: 1}\n"
    "claims:\n  - {id: d, check: budget, construction: {name: geometric, code_dim: 6},"
    " budget: {params: 100000}, expect: {depth: '>= 0'}}\n",
    "training": _BIJECTION + _GD,
    "transfer": _BIJECTION
    + _GD
    + "  - {id: t, check: transfer, from: gd, method: random, expect: {accuracy: '>= 0'}}\n",
}
_PROBE = """
import json, os, sys, traceback
import cvxpy, numpy, scipy, sympy, torch  # third-party: what a child then imports is ours alone
from verifier.engine.runner import run_spec
from verifier.spec import load_spec_text
found = {}
for kind, text in json.loads(sys.stdin.read()).items():
    read, write = os.pipe()
    if os.fork() == 0:  # the child: this process as it stood before any spec ran
        os.close(read)
        try:
            report = run_spec(load_spec_text(text, "kind.spec.yaml"))
            assert all(r.status != "error" for r in report.results), report
            out = sorted(m for m in sys.modules if m.split(".")[0] == "verifier")
        except BaseException:
            out = traceback.format_exc()
        with os.fdopen(write, "w") as pipe:
            json.dump(out, pipe)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        found[kind] = json.loads(pipe.read())
    os.wait()
print(json.dumps(found))
"""


def test_a_claim_imports_only_modules_its_key_covers() -> None:
    """Each kind's claims, run in a process that has imported only the runner, the spec
    loader and third-party libraries (a child forked per kind, so the kinds run one after
    another without each paying the import of torch, cvxpy and sympy), import nothing outside
    the closures of the spec's kinds (a transfer spec runs its training claim, keyed by the
    training kind): the static graph misses no dynamic import that matters."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        input=json.dumps(KIND_SPECS),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])  # HiGHS prints a banner first
    assert set(found) == set(KIND_SPECS)
    for kind, imported in found.items():
        assert isinstance(imported, list), f"{kind}: {imported}"
        kinds = {c.check_kind() for c in load_spec_text(KIND_SPECS[kind]).claims}
        closures = [kind_modules(k) for k in sorted(kinds)]
        assert kind in kinds and all(c is not None for c in closures)
        covered = frozenset().union(*(c for c in closures if c is not None))
        assert set(imported) - covered == set(), kind


def test_pytest_reuses_verdicts_and_no_reuse_verifies_again(pytester: pytest.Pytester) -> None:
    pytester.makefile(".spec.yaml", built=SPEC.split("  - id: counted")[0])
    args = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--rootdir", str(pytester.path)]

    def reused(*extra: str) -> list[str]:
        junit = pytester.path / "junit.xml"
        pytester.runpytest_inprocess(*args, *extra, f"--junitxml={junit}").assert_outcomes(passed=2)
        cases = ET.parse(junit).getroot().iter("testcase")
        return [
            c.get("name", "")
            for c in cases
            if any(p.get("name") == "reused" for p in c.iter("property"))
        ]

    assert reused() == []
    verdicts = pytester.path / ".verifier" / "artifacts" / "verdicts"
    assert len(list(verdicts.rglob("*.json"))) == 2  # <rootdir>/.verifier/artifacts/verdicts
    assert reused() == ["built[N=32]", "built[N=64]"]
    assert reused("--verifier-no-reuse") == []
    assert reused("--verifier-no-cache") == []


def test_a_growth_result_is_reused_with_its_points(tmp_path: Path) -> None:
    text = SPEC.split("  - id: counted")[0].replace(
        "sweep: {N: [32, 64]}\n    expect: {accuracy: 1.0}",
        "sweep: {N: [16, 32, 64, 128]}\n    expect: {accuracy: 1.0, growth: "
        "{measure: code_dim, over: N, law: logarithmic, against: [linear]}}",
    )
    first = _run(text, tmp_path)
    assert [r.key for r in first.results][-1] == "built[growth]" and _reran(first)[-1].endswith(
        "[growth]"
    )
    again = _run(text, tmp_path)
    assert _reran(again) == [] and _verdicts(again) == _verdicts(first)
    edited = text.replace("against: [linear]", "against: [linear, polynomial]")
    assert _reran(_run(edited, tmp_path)) == ["built[growth]"]  # a point-free edit: fits only


def test_a_dependency_that_runs_again_runs_its_dependents_again(
    cache: Path, tmp_path: Path
) -> None:
    folder = _copy(cache, tmp_path)
    spec = load_spec_text(SPEC, "reuse.spec.yaml")
    store = VerdictStore(str(folder))
    runner = SpecRunner(spec, verdicts=store)
    key = runner.key_of(runner.points["built"][0])
    assert key is not None
    store.path(key).unlink()  # built[N=32] was never stored (an undecided verdict, say)
    assert _reran(_run(SPEC, folder)) == ["built[N=32]", "counted[N=32]"]


def test_a_verdict_stored_after_preflight_is_still_reused(tmp_path: Path) -> None:
    """pytest preflights at collection, long before items run: verdicts stored in between (by
    another door in the same session) are reused, not re-verified."""
    text = SPEC.split("  - id: counted")[0]

    def runner() -> SpecRunner:
        spec = load_spec_text(text, "reuse.spec.yaml")
        return SpecRunner(spec, verdicts=VerdictStore(str(tmp_path)))

    collected = runner()
    collected.preflight()  # nothing stored yet
    other = runner()
    other.preflight()
    assert _reran(other.run()) == ["built[N=32]", "built[N=64]"]
    assert _reran(collected.run()) == []
