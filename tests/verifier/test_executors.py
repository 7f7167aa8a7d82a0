"""Executors (verifier/engine/executors.py): in-process, process pool and Ray give one report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from verifier.cli import app
from verifier.engine.executors import plan, run_specs, set_threads
from verifier.engine.report import Report
from verifier.engine.runner import SpecRunner
from verifier.errors import VerifierError
from verifier.spec import Spec, load_spec_text

# Two swept claims (one with a growth law) and an unswept one: 10 results, 9 point tasks.
SPEC = """\
name: executor-case
instance: {kind: bijection, entities: 64, relations: 2, seed: 4}
claims:
  - id: code-dim
    check: construction
    construction: {name: geometric, codebook: rademacher, code_dim: auto, margin: 0.5}
    sweep: {N: [32, 64, 128, 256]}
    expect:
      accuracy: 1.0
      growth: {measure: code_dim, over: N, law: logarithmic, against: [exponential]}
  - id: narrow
    check: construction
    construction: {name: geometric, codebook: rademacher, code_dim: 4}
    sweep: {N: [32, 64], R: [1, 2]}
    expect: {accuracy: "< 1"}
  - id: onehot
    check: construction
    construction: {name: geometric, codebook: onehot}
    expect: {accuracy: 1.0, margin: 1.0}
"""


def spec() -> Spec:
    return load_spec_text(SPEC, file="executor-case.spec.yaml")


def comparable(reports: list[Report]) -> list[dict[str, Any]]:
    """Reports without wall times (the only field allowed to differ between executors)."""
    out = []
    for report in reports:
        data = report.model_dump(mode="json", exclude={"duration_s"})
        for r in data["results"]:
            r.pop("duration_s")
        out.append(data)
    return out


@pytest.fixture(scope="module")
def in_process() -> list[Report]:
    return run_specs([spec()], jobs=1)


def test_plan_splits_points_and_keeps_keys() -> None:
    runner = SpecRunner(spec())
    tasks, keys = plan([runner]), runner.keys()
    assert [t.keys for t in tasks] == [(k,) for k in keys if not k.endswith("[growth]")]
    assert keys[4] == "code-dim[growth]"
    only_growth = plan([runner], select=lambda name, key: key == "code-dim[growth]")
    assert [t.keys[0] for t in only_growth] == [p.key for p in runner.points["code-dim"]]
    [whole] = plan([runner], per="spec")
    assert whole.claims == ("code-dim", "narrow", "onehot") and whole.keys == ()


def test_in_process_matches_the_runner_and_reports_every_point(in_process: list[Report]) -> None:
    [report] = in_process
    assert [r.key for r in report.results] == SpecRunner(spec()).keys()
    assert comparable(in_process) == comparable([SpecRunner(spec()).run()])
    seen: list[tuple[str, int, int]] = []
    run_specs([spec()], jobs=1, on_point=lambda s, k, d, t, st: seen.append((k, d, t)))
    assert [d for _, d, _ in seen] == list(range(1, 10)) and {t for *_, t in seen} == {9}
    assert report.passed, [r.failure_text() for r in report.results if not r.ok]


def test_local_pool_via_the_cli_gives_the_same_report_and_a_plot(
    in_process: list[Report], tmp_path: Path
) -> None:
    path = tmp_path / "executor-case.spec.yaml"
    path.write_text(SPEC)
    out, plots = tmp_path / "report.json", tmp_path / "plots"
    proc = CliRunner().invoke(
        app,  # --no-reuse: verdicts an earlier run stored in .verifier would say reused
        [
            "check",
            str(path),
            "--jobs",
            "2",
            "--json",
            str(out),
            "--plots",
            str(plots),
            "--no-reuse",
        ],
    )
    assert proc.exit_code == 0, proc.output
    pooled = [Report.model_validate(r) for r in json.loads(out.read_text())]
    for report in pooled:  # the CLI loaded the file by its own path
        report.file = in_process[0].file
        for r in report.results:
            r.file = in_process[0].file
    assert comparable(pooled) == comparable(in_process)
    assert (plots / "executor-case__code-dim-growth.png").read_bytes().startswith(b"\x89PNG")


def test_ray_gives_the_local_results(in_process: list[Report]) -> None:
    try:
        import ray
    except ImportError:
        print("SKIP reason: ray is not installed (pip install 'verifier[ray]')")
        pytest.skip("ray is not installed (pip install 'verifier[ray]')")
    ray.init(  # workers at nice 0 (Ray's default 15 starves them beside other work)
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _system_config={"worker_niceness": 0},
    )
    try:
        done: list[str] = []
        reports = run_specs(
            [spec()], executor="ray", on_point=lambda s, k, d, t, st: done.append(k)
        )
    finally:
        ray.shutdown()
    assert comparable(reports) == comparable(in_process)
    keys = SpecRunner(spec()).keys()
    assert sorted(done) == sorted(k for k in keys if "growth" not in k)


def test_bad_executor_settings_are_refused() -> None:
    with pytest.raises(VerifierError, match="expected an integer >= 1, got 0"):
        run_specs([spec()], jobs=0)
    proc = CliRunner().invoke(
        app, ["check", "specs/single_hop/refutations.spec.yaml", "--executor", "spark"]
    )
    assert proc.exit_code == 2
    assert "--executor: expected local or ray, got 'spark'" in proc.output


def test_worker_threads_are_set() -> None:
    import torch

    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)
        if env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env
