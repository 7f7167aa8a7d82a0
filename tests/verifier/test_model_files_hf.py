"""adapter hf: a small GPT-2-shaped model built from a config (no download), trained here on
bijection facts, saved with save_pretrained and verified from a spec; its recall and
superposition measures equal what the same functions give on its own weights. Skips without
the extra [hf] (transformers)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.verifier.test_model_files import model_spec
from verifier.engine.runner import SpecRunner
from verifier.errors import SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits
from verifier.measure import mechanism as mech
from verifier.measure.recall import margins_of
from verifier.spec import load_spec_file

transformers = pytest.importorskip(
    "transformers", reason="the extra [hf] is not installed: pip install 'verifier[hf]'"
)
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py
HF = "    adapter: hf\n"
N, R = 48, 2  # the instance of model_spec


def _train(folder: Path) -> torch.nn.Module:
    """GPT-2 with one layer, d = 16, the verifier's vocabulary (N + R tokens), trained with
    Adam to exact recall (float32) and saved as config.json + model.safetensors."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=N + R,
        n_positions=2,
        n_embd=16,
        n_layer=1,
        n_head=2,
        n_inner=64,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    lm = transformers.GPT2LMHeadModel(config)
    ((tokens, targets),) = list(BijectionFacts(N, R, 0).batches(4096))
    opt = torch.optim.Adam(lm.parameters(), lr=1e-2)
    for _ in range(600):
        logits = lm(input_ids=tokens).logits[:, -1, :N]
        loss = torch.nn.functional.cross_entropy(logits, targets)
        if bool((logits.argmax(1) == targets).all()) and float(loss.detach()) < 0.05:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    lm.eval().save_pretrained(folder)
    return lm


def test_a_trained_gpt2_folder_is_verified(tmp_path: Path) -> None:
    lm = _train(tmp_path / "gpt2")
    spec = tmp_path / "hf.spec.yaml"
    spec.write_text(model_spec("gpt2", HF, 'accuracy: ">= 0.9", superposition_r2: "<= 1"'))
    runner = SpecRunner(load_spec_file(spec), Limits())
    runner.preflight()
    (result,) = runner.run().results
    assert result.status == "passed", result.message
    facts, lm64 = BijectionFacts(N, R, 0), lm.double()
    ((tokens, targets),) = list(facts.batches(4096))
    with torch.no_grad():
        margins, _ = margins_of(lm64(input_ids=tokens).logits[:, -1, :N], targets)
    assert result.measured["accuracy"] == float((margins > 0).double().mean())
    assert result.measured["margin"] == float(margins.min())
    weights = lm64.transformer.wte.weight.detach()  # tied: lm_head is the same matrix
    view = SimpleNamespace(W_E=weights[: N + R], W_U=weights[:N].T)
    for name in ("superposition_r2", "probe_accuracy"):
        assert result.measured[name] == mech.MEASURES[name](view, facts).value, name  # type: ignore[arg-type]
    assert "relu_necessity" not in result.measured  # needs the one-layer model's own MLP
    assert result.evidence["architecture"] == "gpt2"


def test_an_hf_folder_is_checked_before_loading(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gpt2", "vocab_size": 10, "n_embd": 4}')
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    spec = tmp_path / "s.spec.yaml"
    spec.write_text(model_spec("m", HF))
    with pytest.raises(SpecError, match=r"pytorch_model\.bin is a pickle") as info:
        SpecRunner(load_spec_file(spec), Limits()).preflight()
    assert info.value.key == "mine.file"
    (folder / "model.safetensors").write_bytes(b"never read: the config is refused first")
    (folder / "config.json").write_text('{"model_type": "gpt2", "vocab_size": 30, "n_embd": 4}')
    with pytest.raises(SpecError, match="vocab_size: expected at least 50"):
        SpecRunner(load_spec_file(spec), Limits()).preflight()
