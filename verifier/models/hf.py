"""The adapter ``hf``: a Hugging Face ``transformers`` causal LM from a local model folder.

The folder holds ``config.json`` and ``model.safetensors`` (a ``pytorch_model.bin`` is a pickle
and is not read). The config's vocabulary, the header's shapes and the folder's bytes are checked
against the instance and the limits before any weight is read; the model is then built with
``AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, use_safetensors=True)``
(nothing is downloaded, no remote code runs) and read in float64.

Tokens are the verifier's (:mod:`verifier.models.registry`): the embedding rows ``0..N+R-1``
are the entities then the relations; the logits of a query are its last position's first
``n_out`` entries, so recall is the strict argmax among the attributes. The subject rows
``e_s`` are the input embedding's rows, the attribute vectors ``u_j`` the output embedding's
rows (tied to the input ones in GPT-2); exact recall and the measures that read those alone
(``superposition_r2``, ``probe_accuracy``) run on it. Needs the extra ``[hf]``.
"""

from __future__ import annotations

import importlib.util
import json
from math import prod
from pathlib import Path
from typing import Any

import torch

from verifier.errors import SpecError
from verifier.limits import Limits, require
from verifier.models.base import Expected, ModelInfo
from verifier.models.paths import check_inside
from verifier.models.weights_files import safetensors_header

CONFIG, WEIGHTS = "config.json", "model.safetensors"
MAX_CONFIG_BYTES = 1 << 20
WIDTH_KEYS = ("n_embd", "hidden_size", "d_model")
POSITION_KEYS = ("n_positions", "max_position_embeddings")


class CausalLM(torch.nn.Module):
    """A ``transformers`` causal LM seen through the verifier's tokens (float64).

    ``W_E (n_vocab, d)``: the input embedding's first ``N + R`` rows; ``W_U (d, n_out)``: the
    output embedding's first ``n_out`` rows, transposed.
    """

    def __init__(self, lm: Any, n_vocab: int, n_out: int) -> None:
        super().__init__()
        self.lm = lm
        self.n_vocab, self.n_out = n_vocab, n_out

    @property
    def W_E(self) -> torch.Tensor:
        return self.lm.get_input_embeddings().weight.detach()[: self.n_vocab]  # type: ignore[no-any-return]

    @property
    def W_U(self) -> torch.Tensor:
        return self.lm.get_output_embeddings().weight.detach()[: self.n_out].T  # type: ignore[no-any-return]

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(batch, pos)`` tokens -> ``(batch, n_out)`` logits at the last position."""
        logits = self.lm(input_ids=tokens).logits  # (batch, pos, vocab)
        return logits[:, -1, : self.n_out]  # type: ignore[no-any-return]

    def n_params(self) -> int:
        """Parameters of the whole model (tied weights once)."""
        return sum(p.numel() for p in self.lm.parameters())


class HFAdapter:
    """``hf``: a local Hugging Face causal-LM folder (config.json + model.safetensors)."""

    def inspect(self, path: Path, expected: Expected, limits: Limits) -> ModelInfo:
        """The config and the weights' header against the instance and the limits."""
        if importlib.util.find_spec("transformers") is None:
            raise SpecError(
                "adapter hf: expected the transformers package (pip install 'verifier[hf]'), "
                "got none"
            )
        if not path.is_dir():
            raise SpecError(
                "adapter hf: expected a Hugging Face model folder (config.json, "
                "model.safetensors), got a file (adapter one_layer reads a weights file)"
            )
        config, weights = path / CONFIG, path / WEIGHTS
        for f in (config, weights):
            if not f.is_file():
                why = " (a pytorch_model.bin is a pickle and is not read)" if f == weights else ""
                raise SpecError(f"adapter hf: expected {f.name} in the model folder{why}")
        files = sorted(f for f in path.iterdir() if f.is_file())  # what transformers may read
        for f in files:
            check_inside(f, limits)
        size = sum(f.stat().st_size for f in files)
        require("max_model_bytes", size, limits.max_model_bytes, "the model folder's bytes")
        if config.stat().st_size > MAX_CONFIG_BYTES:
            raise SpecError(f"{CONFIG}: expected at most {MAX_CONFIG_BYTES:,} bytes")
        try:
            cfg = json.loads(config.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SpecError(f"{CONFIG}: expected JSON, got an error: {exc}") from None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("model_type"), str):
            raise SpecError(f"{CONFIG}: expected a mapping with a model_type")
        vocab = cfg.get("vocab_size")
        if not isinstance(vocab, int) or vocab < max(expected.n_vocab, expected.n_out):
            raise SpecError(
                f"{CONFIG}: vocab_size: expected at least {max(expected.n_vocab, expected.n_out)} "
                f"(N + R input tokens and the attributes), got {vocab}"
            )
        d = next((cfg[k] for k in WIDTH_KEYS if isinstance(cfg.get(k), int)), None)
        if d is None:
            raise SpecError(f"{CONFIG}: expected the width as one of {', '.join(WIDTH_KEYS)}")
        positions = next((cfg[k] for k in POSITION_KEYS if isinstance(cfg.get(k), int)), None)
        if positions is not None and positions < expected.n_ctx:
            raise SpecError(
                f"{CONFIG}: expected at least {expected.n_ctx} positions, got {positions}"
            )
        require("max_width", d, limits.max_width, f"the model's width ({CONFIG})")
        entries = safetensors_header(weights)
        params = sum(prod(e.shape) for e in entries.values())
        require("max_weights", params, limits.max_weights, "the model's parameter count")
        return ModelInfo(cfg["model_type"], d, None, params, tuple(files), size)

    def load(self, path: Path, expected: Expected, limits: Limits) -> CausalLM:
        """The model in float64, in eval mode (after :meth:`inspect`)."""
        self.inspect(path, expected, limits)
        from transformers import AutoModelForCausalLM

        try:
            lm: torch.nn.Module = AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, use_safetensors=True, trust_remote_code=False
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:  # its refusals, one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise SpecError(
                f"adapter hf: transformers could not build the model: {first}"
            ) from None
        return CausalLM(lm.double().eval(), expected.n_vocab, expected.n_out).eval()


__all__ = ["CausalLM", "HFAdapter"]
