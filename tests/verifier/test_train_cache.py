"""The training artifacts cache: what the key covers, and reuse through the CLI and pytest."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import verifier.train as train_module
from verifier import codekey
from verifier.cli import DEFAULT_CACHE_DIR as CLI_DEFAULT
from verifier.cli import app
from verifier.engine.runner import SpecRunner
from verifier.errors import VerifierError
from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts
from verifier.limits import Limits
from verifier.pytest_plugin import DEFAULT_CACHE_DIR as PLUGIN_DEFAULT
from verifier.spec import load_spec_text
from verifier.train import (
    TrainConfig,
    code_fingerprint,
    query_task,
    run_key,
    training_threads,
)
from verifier.train.config import train_config

pytest_plugins = ["pytester"]

SPEC = """
name: cached-multi-hop
instance: {kind: multi_hop, entities: 32, relations: 2, hops: 2, cot: true, seed: 3}
claims:
  - id: gd
    check: training
    model: {d_model: 16, d_mlp: 128, heads: 1}
    optim: {optimizer: adamw, lr: 2e-2, weight_decay: 0.1, steps: 600}
    expect: {accuracy: 1.0}
"""


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py


# --- the key -------------------------------------------------------------------------------------

INSTANCE = {"kind": "multi_hop", "entities": 32, "relations": 2, "hops": 2, "cot": True,
            "chains": "all", "attributes": "shared", "seed": 3}  # fmt: skip
BASE = TrainConfig(d_model=16, d_mlp=128)


def _other(value: Any, name: str) -> Any:
    if name == "freeze":
        return ("W_E",)
    if name == "optimizer":
        return "sgd"
    if name == "schedule":
        return "cosine"
    if name == "attention":
        return "uniform"
    if name == "stop_accuracy":
        return 0.99
    if name == "unit_norm":
        return ("W_U",)
    if name == "init":
        return (("W_E", 0.01),)
    if name == "groups":
        return (("W_E", train_module.OptimGroup(optimizer="sgd", per_subject=True)),)
    if value is None:
        return 7
    return value + (0.5 if isinstance(value, float) else 1)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainConfig)])
def test_every_training_setting_changes_the_key(name: str) -> None:
    changed = dataclasses.replace(BASE, **{name: _other(getattr(BASE, name), name)})
    assert run_key(INSTANCE, changed) != run_key(INSTANCE, BASE)


def test_the_example_order_changes_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = run_key(INSTANCE, BASE)
    monkeypatch.setenv("VERIFIER_TRAIN_ORDER", "1")
    assert run_key(INSTANCE, BASE) != key


def test_replicate_seeds_change_the_key() -> None:
    one = run_key(INSTANCE, BASE)
    assert run_key(INSTANCE, BASE, seeds=[0, 1]) not in (one, run_key(INSTANCE, BASE, seeds=[0, 2]))


@pytest.mark.parametrize(
    ("field", "value"),
    [("seed", 4), ("entities", 33), ("relations", 3), ("hops", 3), ("cot", False),
     ("chains", [[0, 1]])],
)  # fmt: skip
def test_every_instance_field_changes_the_key(field: str, value: Any) -> None:
    assert run_key({**INSTANCE, field: value}, BASE) != run_key(INSTANCE, BASE)


def test_the_code_is_in_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = codekey.closure(codekey.import_graph(), [train_module.__name__])
    assert {"verifier.model", "verifier.facts.bijections", "verifier.seeds"} <= trainer
    assert len(code_fingerprint()) == 64
    key = run_key(INSTANCE, BASE)
    monkeypatch.setattr(train_module, "code_fingerprint", lambda: "edited source")
    assert run_key(INSTANCE, BASE) != key
    monkeypatch.undo()
    monkeypatch.setattr(train_module, "TRAINER_VERSION", 99)
    assert run_key(INSTANCE, BASE) != key


def test_the_thread_count_is_in_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 results of larger tasks can differ with the intra-op thread count."""
    assert run_key(INSTANCE, BASE, threads=1) != run_key(INSTANCE, BASE, threads=2)
    small = query_task(ChainFacts(32, 2, 2, seed=3), cot=True)
    large = BijectionFacts(512, 4, seed=0)
    big = TrainConfig(d_model=32, d_mlp=256)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert training_threads(large, big) == 1  # fixed, not torch's setting: same weights anywhere
    monkeypatch.setenv("VERIFIER_TRAIN_THREADS", "2")
    assert training_threads(small, BASE) == 1  # pinned: thread hand-offs cost more than they save
    assert training_threads(large, big) == 2
    monkeypatch.setenv("VERIFIER_TRAIN_THREADS", "two")
    with pytest.raises(VerifierError, match="VERIFIER_TRAIN_THREADS: expected a positive integer"):
        training_threads(large, big)


def test_sweep_points_have_their_own_keys_and_equal_runs_share_one() -> None:
    text = SPEC.replace("expect: {accuracy: 1.0}", "sweep: {seed: [3, 4], lr: [0.02, 0.01]}")
    text += SPEC.split("claims:\n")[1].replace("id: gd", "id: same-run-other-id")
    runner = SpecRunner(load_spec_text(text), Limits())
    keys = {
        p.key: run_key(p.instance.model_dump(mode="json"), train_config(p.instance, p.claim))
        for claim_id in ("gd", "same-run-other-id")
        for p in runner.points[claim_id]
    }
    assert len(keys) == 5 and len(set(keys.values())) == 4
    assert keys["gd[seed=3,lr=0.02]"] == keys["same-run-other-id"]  # id and expect are not in it


# --- reuse through the doors ---------------------------------------------------------------------


def _strip(data: Any) -> Any:
    """A report without its timings."""
    if isinstance(data, dict):
        return {k: _strip(v) for k, v in data.items() if k != "duration_s"}
    if isinstance(data, list):
        return [_strip(v) for v in data]
    return data


def _cli(*args: str) -> Any:
    # --no-reuse: these tests are about checkpoints, not stored verdicts (test_reuse.py)
    proc = CliRunner().invoke(app, ["run", *args, "--json", "--no-reuse"])
    assert proc.exit_code == 0, proc.output
    return _strip(json.loads(proc.stdout))


def test_cli_reuses_the_checkpoint_and_no_cache_retrains(
    tmp_path: Path, trainings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "cached.spec.yaml"
    spec.write_text(SPEC)
    cache = tmp_path / "elsewhere"
    first = _cli(str(spec), "--cache-dir", str(cache))
    assert len(trainings) == 1 and len(list((cache / "training").glob("*.pt"))) == 1
    second = _cli(str(spec), "--cache-dir", str(cache))
    assert len(trainings) == 1  # the checkpoint was reused: the trainer did not run again
    assert second == first and first["results"][0]["status"] == "passed"
    retrained = _cli(str(spec), "--cache-dir", str(cache), "--no-cache")
    assert len(trainings) == 2 and retrained == first
    monkeypatch.chdir(tmp_path)  # the default folder: ./.verifier/artifacts
    assert _cli(str(spec)) == first and len(trainings) == 3
    assert _cli(str(spec)) == first and len(trainings) == 3
    key = first["results"][0]["evidence"]["checkpoint"]
    assert (tmp_path / CLI_DEFAULT / "training" / f"{key}.pt").is_file()


def test_pytest_reuses_the_checkpoint_and_no_cache_retrains(
    pytester: pytest.Pytester, trainings: list[int]
) -> None:
    pytester.makefile(".spec.yaml", cached=SPEC)
    # An in-process run drops the modules it imported; torch imports some lazily at an
    # optimiser's first step and cannot register them twice, so import them out here first.
    train_module.train(BijectionFacts(4, 1, seed=0), TrainConfig(d_model=2, d_mlp=2, steps=1))
    trainings.clear()
    # hypothesis's plugin re-imports hypothesis in every in-process run (2-3 s): not needed here
    args = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--rootdir", str(pytester.path)]
    args.append("--verifier-no-reuse")  # checkpoints, not stored verdicts (test_reuse.py)
    pytester.runpytest_inprocess(*args).assert_outcomes(passed=1)
    assert len(trainings) == 1
    assert (pytester.path / PLUGIN_DEFAULT / "training").is_dir()  # <rootdir>/.verifier/artifacts
    pytester.runpytest_inprocess(*args).assert_outcomes(passed=1)
    assert len(trainings) == 1
    pytester.runpytest_inprocess(*args, "--verifier-no-cache").assert_outcomes(passed=1)
    assert len(trainings) == 2
    other = ["--verifier-cache-dir", "other"]  # relative to the invocation folder
    pytester.runpytest_inprocess(*args, *other).assert_outcomes(passed=1)
    assert len(trainings) == 3 and (pytester.path / "other" / "training").is_dir()


def test_pool_workers_share_the_cache(tmp_path: Path) -> None:
    """``--jobs 2`` workers write checkpoints into the run's folder and a second run reads them:
    the files are not rewritten and the reports are identical."""
    from verifier.engine.executors import run_specs

    text = SPEC.replace("steps: 600}", "steps: 600}\n    sweep: {seed: [0, 1]}")
    cache = tmp_path / "artifacts"

    def run() -> list[dict[str, Any]]:
        spec = load_spec_text(text, "pool.yaml")
        [report] = run_specs([spec], jobs=2, cache_dir=str(cache))
        return [r.model_dump(exclude={"duration_s"}) for r in report.results]

    first = run()
    files = sorted(cache.rglob("*.pt"))
    assert len(files) == 2, files  # one checkpoint per sweep point
    stamps = [f.stat().st_mtime_ns for f in files]
    assert run() == first
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert all(r["status"] == "passed" for r in first)
