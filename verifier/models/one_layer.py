"""The built-in adapter ``one_layer``: the section 2 model from a weights file.

A ``.safetensors`` file (preferred) or a ``torch.save`` state dict (loaded with
``weights_only=True``) holding exactly the trainer's TransformerLens weights
(:class:`~verifier.model.OneLayerTransformer`: ``W_E (n_vocab, d)``, ``W_pos (n_ctx, d)``,
``W_Q, W_K, W_V (H, d, d_head)``, ``W_O (H, d_head, d)``, ``W_in (d, d_mlp)``, ``b_in``,
``W_out (d_mlp, d)``, ``b_out``, ``W_U (d, n_out)``). The widths are read from the shapes, which
must agree with each other, with the instance (``n_vocab = N + R``, ``n_out`` its attributes,
``n_ctx >= 2``) and with the limits, all before any weight is read.
"""

from __future__ import annotations

from math import prod
from pathlib import Path

import torch

from verifier.errors import SpecError
from verifier.limits import Limits, require
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.models.base import Expected, ModelInfo
from verifier.models.paths import check_inside
from verifier.models.weights_files import (
    TensorEntry,
    entries_of,
    load_state_dict,
    safetensors_header,
)

SUFFIX = ".safetensors"


class OneLayerAdapter:
    """``one_layer``: a safetensors file or a weights-only state dict of the section 2 model."""

    def inspect(self, path: Path, expected: Expected, limits: Limits) -> ModelInfo:
        """Shapes and bytes checked against the instance and the limits (see the module)."""
        cfg, size = self._config(path, expected, limits)
        params = sum(prod(shape) for shape in OneLayerTransformer.shapes(cfg).values())
        return ModelInfo("one-layer transformer", cfg.d_model, cfg.d_mlp, params, (path,), size)

    def load(self, path: Path, expected: Expected, limits: Limits) -> OneLayerTransformer:
        """The model in float64, every weight as stored (widened, never rounded)."""
        cfg, _ = self._config(path, expected, limits)
        if path.suffix == SUFFIX:
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                state = load_file(str(path), device="cpu")
            except (SafetensorError, OSError) as exc:
                raise SpecError(f"expected a readable safetensors file: {exc}") from None
        else:
            state = load_state_dict(path)
        model = OneLayerTransformer(cfg, dtype=torch.float64)
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(state[name].to(torch.float64))
        return model.eval()

    def _config(self, path: Path, expected: Expected, limits: Limits) -> tuple[ModelConfig, int]:
        if not path.is_file():
            what = "a folder (adapter hf reads a Hugging Face model folder)"
            raise SpecError(
                "adapter one_layer: expected a .safetensors or torch.save file, got "
                + (what if path.is_dir() else "something that is not a regular file")
            )
        check_inside(path, limits)
        size = path.stat().st_size
        require("max_model_bytes", size, limits.max_model_bytes, "the model file's bytes")
        if path.suffix == SUFFIX:
            entries = safetensors_header(path)
        else:
            entries = entries_of(load_state_dict(path))
        cfg = config_of(entries, expected)
        require("max_width", cfg.d_model, limits.max_width, "the model file's d_model")
        require("max_width", cfg.d_mlp, limits.max_width, "the model file's d_mlp")
        require("max_width", cfg.n_heads * cfg.d_head, limits.max_width, "heads * d_head")
        params = sum(e.numel for e in entries.values())
        require("max_weights", params, limits.max_weights, "the model file's parameter count")
        return cfg, size


def config_of(entries: dict[str, TensorEntry], expected: Expected) -> ModelConfig:
    """The :class:`~verifier.model.ModelConfig` the stored shapes describe.

    Raises:
        SpecError: a missing or extra weight, shapes that disagree with each other, or a
            vocabulary that is not the instance's.
    """
    names = set(OneLayerTransformer.shapes(ModelConfig(1, 1, 1, 1, 1, 1, 1)))
    missing, extra = sorted(names - set(entries)), sorted(set(entries) - names)
    if missing or extra:
        got = []
        if missing:
            got.append(f"missing {', '.join(missing)}")
        if extra:
            got.append(f"unexpected {', '.join(extra[:8])}" + (" ..." if len(extra) > 8 else ""))
        raise SpecError(
            "expected exactly the one-layer model's weights by their TransformerLens names "
            f"({', '.join(sorted(names))}), got {'; '.join(got)}"
        )
    w_e, w_q, w_in, w_u, w_pos = (entries[k].shape for k in ("W_E", "W_Q", "W_in", "W_U", "W_pos"))
    if len(w_e) != 2 or len(w_q) != 3 or len(w_in) != 2 or len(w_u) != 2 or len(w_pos) != 2:
        raise SpecError(
            "expected W_E, W_pos, W_in, W_U of 2 dimensions and W_Q of 3, got "
            f"W_E {w_e}, W_pos {w_pos}, W_in {w_in}, W_U {w_u}, W_Q {w_q}"
        )
    try:
        cfg = ModelConfig(
            n_vocab=w_e[0],
            n_ctx=w_pos[0],
            d_model=w_e[1],
            d_head=w_q[2],
            n_heads=w_q[0],
            d_mlp=w_in[1],
            n_out=w_u[1],
        )
    except ValueError as exc:
        raise SpecError(f"expected every width >= 1: {exc}") from None
    for name, shape in OneLayerTransformer.shapes(cfg).items():
        if entries[name].shape != shape:
            raise SpecError(
                f"{name}: expected shape {shape} (from W_E {w_e}, W_Q {w_q}, W_in {w_in}, "
                f"W_U {w_u}), got {entries[name].shape}"
            )
    if cfg.n_vocab != expected.n_vocab:
        raise SpecError(
            f"W_E: expected {expected.n_vocab} rows (N + R input tokens: entities, then "
            f"relations), got {cfg.n_vocab}"
        )
    if cfg.n_out != expected.n_out:
        raise SpecError(
            f"W_U: expected {expected.n_out} columns (the instance's attributes), got {cfg.n_out}"
        )
    if cfg.n_ctx < expected.n_ctx:
        raise SpecError(
            f"W_pos: expected at least {expected.n_ctx} positions (a query [r, s]), got {cfg.n_ctx}"
        )
    return cfg


__all__ = ["OneLayerAdapter", "config_of"]
