"""model_file claims: a one-layer model trained here, saved as safetensors (and as a torch state
dict), verified from a spec exactly as a trained model is measured; what is refused, and where."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from verifier.checks.construction import bijection_facts
from verifier.cli import app
from verifier.engine.runner import SpecRunner
from verifier.engine.verdicts import VerdictStore
from verifier.errors import LimitExceeded, SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits
from verifier.measure import mechanism as mech
from verifier.measure.recall import exact_recall
from verifier.model import OneLayerTransformer
from verifier.spec import BijectionInstance, TrainingClaim, load_spec_file, load_spec_text
from verifier.train import train
from verifier.train.config import train_config

INSTANCE = "instance: {kind: bijection, entities: 48, relations: 2, seed: 0}\n"
TRAINING = (
    "name: t\n" + INSTANCE + "claims:\n  - id: gd\n    check: training\n"
    "    model: {d_model: 8, d_mlp: 32, attention: uniform, init: {W_E: 0.01}}\n"
    "    optim: {optimizer: adamw, lr: 1e-2, steps: 400,\n"
    "            groups: {W_E: {optimizer: sgd, lr: 0.1, momentum: 0.9, per_subject: true}}}\n"
    "    expect: {accuracy: 1.0}\n"
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py


def model_spec(file: str, extra: str = "", expect: str = 'accuracy: ">= 0.9"') -> str:
    return (
        "name: mine\n" + INSTANCE + "claims:\n  - id: mine\n    check: model_file\n"
        f"    file: {file}\n{extra}    expect: {{{expect}}}\n"
    )


TRANSFER = "  - id: probe\n    check: transfer\n    from: mine\n    expect: {accuracy: '>= 0'}\n"


def save_trained(folder: Path) -> OneLayerTransformer:
    """Train TRAINING's model (under a second) and save it in ``folder`` as model.safetensors
    and model.pt (a torch.save state dict)."""
    spec = load_spec_text(TRAINING)
    instance, claim = spec.instance, spec.claims[0]
    assert isinstance(instance, BijectionInstance) and isinstance(claim, TrainingClaim)
    result = train(bijection_facts(instance), train_config(instance, claim))
    state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    torch.save(state, folder / "model.pt")
    return result.model


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, OneLayerTransformer]:
    """A folder with the trained model as model.safetensors and model.pt, and the model."""
    folder = tmp_path_factory.mktemp("models")
    return folder, save_trained(folder)


def _facts() -> BijectionFacts:
    return BijectionFacts(n_entities=48, n_relations=2, seed=0)


def _run(text: str, file: Path, limits: Limits | None = None) -> dict[str, dict]:  # type: ignore[type-arg]
    file.write_text(text)
    runner = SpecRunner(load_spec_file(file), limits or Limits())
    runner.preflight()
    return {
        r.key: {"status": r.status, **r.measured, "message": r.message}
        for r in runner.run().results
    }


def test_safetensors_model_is_measured_as_the_trained_model(
    trained: tuple[Path, OneLayerTransformer],
) -> None:
    """Recall, every mechanism measure and probe transfer equal what the training claim's own
    code computes on the same float32 weights, widened to float64."""
    folder, model = trained
    results = _run(model_spec("model.safetensors") + TRANSFER, folder / "a.spec.yaml")
    mine, probe = results["mine"], results["probe"]
    assert mine["status"] == "passed", mine["message"]
    facts, m64 = _facts(), mech.as_float64(model)
    recall = exact_recall(m64, facts.batches(4096), facts.n_facts)
    assert (mine["accuracy"], mine["margin"]) == (recall.accuracy, recall.margin)
    assert mine["accuracy"] >= 0.9
    for name in ("superposition_r2", "probe_accuracy", "functional_superposition"):
        assert mine[name] == mech.MEASURES[name](m64, facts).value, name
    assert isinstance(mine["superposition_r2"], float) and mine["superposition_r2"] <= 1.0
    assert "relation_gating_init" not in mine  # no untrained model in a file
    assert (mine["params"], mine["embedding_dim"], mine["mlp_width"]) == (m64.n_params(), 8, 32)
    new = mech.new_bijections(facts, 1)
    expected = mech.transfer_accuracy(m64, facts, new, "probe", 1).value
    assert probe["status"] == "passed" and probe["accuracy"] == expected


def test_state_dict_reads_the_same_as_safetensors(
    trained: tuple[Path, OneLayerTransformer],
) -> None:
    folder, _ = trained
    a = _run(model_spec("model.safetensors", "    mechanism: false\n"), folder / "b.spec.yaml")
    b = _run(model_spec("model.pt", "    mechanism: false\n"), folder / "c.spec.yaml")
    assert a["mine"]["status"] == b["mine"]["status"] == "passed"
    assert {k: v for k, v in a["mine"].items() if k != "message"} == {
        k: v for k, v in b["mine"].items() if k != "message"
    }


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.getcwd, ())  # harmless, but not a tensor: the restricted unpickler refuses


def _refused(spec_file: Path, text: str, limits: Limits | None = None) -> SpecError | LimitExceeded:
    spec_file.write_text(text)
    runner = SpecRunner(load_spec_file(spec_file), limits or Limits())
    with pytest.raises((SpecError, LimitExceeded)) as info:
        runner.preflight()
    assert isinstance(info.value, SpecError | LimitExceeded)
    return info.value


def test_refusals_name_the_key(tmp_path: Path, trained: tuple[Path, OneLayerTransformer]) -> None:
    folder, _ = trained
    with (tmp_path / "evil.pt").open("wb") as f:
        pickle.dump({"W_E": Evil()}, f)
    torch.save({"W_E": torch.zeros(3, 3), "extra": {"x": Evil()}}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        exc = _refused(tmp_path / "e.spec.yaml", model_spec(name))
        assert isinstance(exc, SpecError) and exc.key == "mine.file", exc
        assert "weights-only" in exc.message or "torch.save" in exc.message, exc.message
    exc = _refused(
        tmp_path / "s.spec.yaml",
        model_spec(str(folder / "model.safetensors")),
        Limits(max_model_bytes=1000),
    )
    assert isinstance(exc, LimitExceeded) and exc.name == "max_model_bytes"
    outside = Limits(models_dir=str(tmp_path / "jail"))
    (tmp_path / "jail").mkdir()
    (tmp_path / "jail" / "link.safetensors").symlink_to(folder / "model.safetensors")
    for path in (
        str(folder / "model.safetensors"),
        "jail/../model.safetensors",
        "jail/link.safetensors",
    ):
        exc = _refused(tmp_path / "o.spec.yaml", model_spec(path), outside)
        assert isinstance(exc, SpecError) and exc.key == "mine.file"
        assert "outside" in exc.message
    exc = _refused(
        tmp_path / "n.spec.yaml", model_spec("model.safetensors"), Limits(models_dir_required=True)
    )
    assert isinstance(exc, SpecError) and "--models-dir" in exc.message


def test_shapes_are_checked_against_the_instance(
    tmp_path: Path, trained: tuple[Path, OneLayerTransformer]
) -> None:
    folder, _ = trained
    other = load_spec_text(model_spec(str(folder / "model.safetensors")).replace("48", "40"))
    with pytest.raises(SpecError, match=r"W_E: expected 42 rows .* got 50") as info:
        SpecRunner(other, Limits()).preflight()
    assert info.value.key == "mine.file"
    state = {k: v.detach().clone() for k, v in _load(folder).items()}
    state["W_K"] = torch.zeros(1, 8, 4)
    save_file(state, str(tmp_path / "bad.safetensors"))
    exc = _refused(tmp_path / "k.spec.yaml", model_spec("bad.safetensors"))
    assert isinstance(exc, SpecError) and "W_K: expected shape (1, 8, 8)" in exc.message
    exc = _refused(
        tmp_path / "w.spec.yaml", model_spec(str(folder / "model.safetensors")), Limits(max_width=4)
    )
    assert isinstance(exc, LimitExceeded) and exc.name == "max_width"


def _load(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_cli_exits_2_naming_the_key(
    tmp_path: Path, trained: tuple[Path, OneLayerTransformer]
) -> None:
    """A pickle that is not weights-only, a path outside VERIFIER_MODELS_DIR and a file over
    VERIFIER_MAX_MODEL_BYTES: exit 2, one line naming the key (or the limit)."""
    folder, _ = trained
    with (tmp_path / "evil.pt").open("wb") as f:
        pickle.dump(Evil(), f)
    jail = tmp_path / "jail"
    jail.mkdir()
    cases = [
        ("evil.pt", {}, ["mine.file", "weights-only"]),
        (
            str(folder / "model.safetensors"),
            {"VERIFIER_MODELS_DIR": str(jail)},
            ["mine.file", "outside"],
        ),
        (
            str(folder / "model.safetensors"),
            {"VERIFIER_MAX_MODEL_BYTES": "1000"},
            ["max_model_bytes"],
        ),
    ]
    for path, env, words in cases:
        spec = tmp_path / "cli.spec.yaml"
        spec.write_text(model_spec(path))
        result = CliRunner().invoke(app, ["check", str(spec), "--no-cache"], env=env)
        assert result.exit_code == 2, result.output
        assert all(w in result.output for w in words), result.output


def test_verdict_key_covers_the_file_bytes(
    tmp_path: Path, trained: tuple[Path, OneLayerTransformer]
) -> None:
    """A changed model file is verified again: its sha256 is part of the verdict key."""
    folder, _ = trained
    state = _load(folder)
    save_file(state, str(tmp_path / "m.safetensors"))
    (tmp_path / "k.spec.yaml").write_text(model_spec("m.safetensors", "    mechanism: false\n"))
    store = VerdictStore(str(tmp_path / "cache"))

    def key() -> str | None:
        runner = SpecRunner(load_spec_file(tmp_path / "k.spec.yaml"), Limits(), verdicts=store)
        return runner.key_of(runner.points["mine"][0])

    first = key()
    state["W_U"] = state["W_U"] + torch.from_numpy(np.full((8, 48), 1e-3, dtype=np.float32))
    save_file(state, str(tmp_path / "m.safetensors"))
    assert first is not None and key() not in (None, first)
    (tmp_path / "m.safetensors").unlink()
    assert key() is None  # unreadable now: never reused


def test_cli_and_python_doors_resolve_against_the_spec_folder(
    tmp_path: Path, trained: tuple[Path, OneLayerTransformer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another working directory: the relative path is the spec folder's."""
    import verifier

    folder, _ = trained
    spec = folder / "doors.spec.yaml"
    spec.write_text(model_spec("model.safetensors", "    mechanism: false\n"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["check", str(spec), "--no-cache"])
    assert result.exit_code == 0, result.output
    (report,) = verifier.check(spec, cache=False)
    assert report.results[0].status == "passed" and report.results[0].measured["accuracy"] >= 0.9


def _header_file(path: Path, header: bytes, data: bytes = b"") -> None:
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)


@pytest.mark.parametrize(
    ("name", "write", "extra", "expected"),
    [
        ("empty.safetensors", lambda p: p.write_bytes(b""), "", "got 0 bytes"),
        ("huge.safetensors", lambda p: p.write_bytes(b"\xff" * 16), "", "length field"),
        ("text.safetensors", lambda p: _header_file(p, b"{not json"), "", "not JSON"),
        (
            "ints.safetensors",
            lambda p: _header_file(
                p, b'{"W_E": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}', b"\0" * 8
            ),
            "",
            "expected a floating type",
        ),
        ("absent.safetensors", lambda p: None, "", "got nothing at"),
        ("sub", lambda p: p.mkdir(), "", "got a folder"),
        ("/dev/null", lambda p: None, "", "not a regular file"),
        ("any.safetensors", lambda p: None, "    adapter: onnx\n", "expected a model adapter"),
    ],
)
def test_bad_files_get_one_line_errors(
    tmp_path: Path, name: str, write: object, extra: str, expected: str
) -> None:
    assert callable(write)
    write(tmp_path / name)
    exc = _refused(tmp_path / "bad.spec.yaml", model_spec(name, extra))
    assert isinstance(exc, SpecError) and expected in exc.message, exc.message
    assert exc.key == ("mine.adapter" if "adapter" in extra else "mine.file")
    assert exc.line == 4 and exc.file == str(tmp_path / "bad.spec.yaml")


def test_transfer_from_a_model_file_is_refused_where_it_cannot_run() -> None:
    relearn = TRANSFER.replace("from: mine", "from: mine\n    method: relearn")
    with pytest.raises(SpecError, match="relearn takes a training claim's optimiser settings"):
        load_spec_text(model_spec("m.safetensors") + relearn)
    with pytest.raises(SpecError, match="expected a model_file claim with adapter one_layer"):
        load_spec_text(model_spec("m", "    adapter: hf\n") + TRANSFER)


def test_hf_without_transformers_is_refused_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "transformers" else real(name, *a),
    )
    (tmp_path / "m").mkdir()
    exc = _refused(tmp_path / "hf.spec.yaml", model_spec("m", "    adapter: hf\n"))
    assert isinstance(exc, SpecError) and exc.key == "mine.file"
    assert "pip install 'verifier[hf]'" in exc.message


def test_the_report_draws_a_read_models_gating(tmp_path: Path) -> None:
    """The HTML report's gating heatmap is drawn for a model_file claim as for a training one
    (N = 100: gated_fraction's 1% rule needs N >= 100); a random model, nothing trained."""
    from verifier.model import ModelConfig
    from verifier.render.plots import gating_plots

    model = OneLayerTransformer(ModelConfig(102, 2, 8, 8, 1, 32, 100), dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=generator) for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "m.safetensors"))
    text = model_spec("m.safetensors", expect="accuracy: '>= 0'").replace("48", "100")
    (tmp_path / "g.spec.yaml").write_text(text)
    runner = SpecRunner(load_spec_file(tmp_path / "g.spec.yaml"), Limits())
    runner.preflight()
    report = runner.run()
    assert report.results[0].status == "passed", report.results[0].message
    assert [p.title for p in gating_plots(report)] == [
        "mine: MLP gating (activation rate of each unit per relation)"
    ]


def test_a_model_file_claim_is_one_model() -> None:
    with pytest.raises(SpecError, match="take no sweep, minimize or maximize"):
        load_spec_text(model_spec("m.safetensors", "    sweep: {seed: [0, 1]}\n"))
    with pytest.raises(SpecError, match="mechanism: false skips the mechanism measures"):
        load_spec_text(
            model_spec("m.safetensors", "    mechanism: false\n", "superposition_r2: '>= 0.5'")
        )
    with pytest.raises(SpecError, match="relu_necessity is undefined"):
        load_spec_text(model_spec("m", "    adapter: hf\n", "relu_necessity: '>= 0'"))
