"""Initial weights of the section 2 model for a task and its settings, seeded from
``Stream.INIT``, and the conversion between the trainer's tensors and
:class:`~verifier.model.OneLayerTransformer`."""

from __future__ import annotations

import math

import numpy as np
import torch

from verifier.facts.bijections import BijectionFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.seeds import Stream, rng
from verifier.train.config import ATTENTION_WEIGHTS, RELATION_ROWS, WEIGHT_NAMES, TrainConfig
from verifier.train.tasks import TrainTask, as_task


def model_config(task: TrainTask, cfg: TrainConfig) -> ModelConfig:
    """The section 2 model's shapes for ``task`` and ``cfg``."""
    return ModelConfig(
        n_vocab=task.n_vocab,
        n_ctx=task.n_ctx,
        d_model=cfg.d_model,
        d_head=cfg.head_dim,
        n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp,
        n_out=task.n_out,
    )


def initial_weights(task: TrainTask, cfg: TrainConfig, seed: int) -> dict[str, torch.Tensor]:
    """Seeded fan-in scaled Gaussian init of every trainer tensor, float32.

    ``W_E, W_pos ~ N(0, s^2)``; ``W_Q, W_K, W_V, W_in, W_U ~ N(0, s^2/d_model)``;
    ``W_O ~ N(0, s^2/d_head)``; ``W_out ~ N(0, s^2/d_mlp)``, with ``s = init_scale`` times the
    tensor's ``init`` multiplier (``W_E``: the subject rows; ``W_E_relations``: the other rows).
    Biases start at zero, and so do ``W_Q, W_K`` under uniform attention and every attention
    weight under ``attention="none"``. A tensor in ``unit_norm`` has its rows (``W_E``,
    ``W_E_relations``) or columns (``W_U``, one per attribute) rescaled to norm 1 before its
    multiplier, as the associative-memory peer draws its frozen embeddings (Nichani, Lee,
    Bietti 2025; docs/theory.md section 3): a Gaussian column can fall inside the convex hull of the
    others and never be the argmax, a unit one cannot. Each weight has its own sub-stream of
    ``Stream.INIT``, so changing one shape or multiplier shifts no other draw.
    """
    mcfg = model_config(task, cfg)
    shapes = OneLayerTransformer.shapes(mcfg)
    fan_in = {
        "W_E": 1,
        "W_pos": 1,
        "W_Q": cfg.d_model,
        "W_K": cfg.d_model,
        "W_V": cfg.d_model,
        "W_O": cfg.head_dim,
        "W_in": cfg.d_model,
        "W_out": cfg.d_mlp,
        "W_U": cfg.d_model,
    }
    out: dict[str, torch.Tensor] = {}
    zero = {"uniform": ("W_Q", "W_K"), "none": ATTENTION_WEIGHTS}.get(cfg.attention, ())
    for i, name in enumerate(WEIGHT_NAMES):
        if name not in fan_in or name in zero:
            draw = np.zeros(shapes[name])
        else:
            std = cfg.init_scale / math.sqrt(fan_in[name])
            draw = rng(seed, Stream.INIT, i).standard_normal(shapes[name]) * std
        if name == "W_U":
            out[name] = _f32(_unembedding(draw, cfg))
        elif name == "W_E":
            n = task.n_entities
            subjects, rest = draw[:n], draw[n:]
            if "W_E" in cfg.unit_norm:
                subjects = _unit(subjects, axis=1)
            if RELATION_ROWS in cfg.unit_norm:
                rest = _unit(rest, axis=1)
            out["W_E"] = _f32(subjects * cfg.init_multiplier("W_E"))
            out[RELATION_ROWS] = _f32(rest * cfg.init_multiplier(RELATION_ROWS))
        else:
            out[name] = _f32(draw * cfg.init_multiplier(name))
    return out


def _unembedding(draw: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """W_U from its Gaussian draw: unit columns (one per attribute) if asked, the multiplier."""
    if "W_U" in cfg.unit_norm:
        draw = _unit(draw, axis=0)
    return draw * cfg.init_multiplier("W_U")


def initial_unembedding(n_out: int, cfg: TrainConfig, seed: int) -> np.ndarray:
    """The ``(d_model, n_out)`` W_U that :func:`initial_weights` draws for ``seed`` (float32
    values, as float64): what a frozen unembedding stays at, without building the task."""
    std = cfg.init_scale / math.sqrt(cfg.d_model)
    index = WEIGHT_NAMES.index("W_U")
    draw = rng(seed, Stream.INIT, index).standard_normal((cfg.d_model, n_out)) * std
    out: np.ndarray = _unembedding(draw, cfg).astype(np.float32).astype(np.float64)
    return out


def _unit(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` with every slice along ``axis`` rescaled to Euclidean norm 1 (zero slices stay 0)."""
    norm = np.linalg.norm(a, axis=axis, keepdims=True)
    out: np.ndarray = np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)
    return out


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def build_model(data: BijectionFacts | TrainTask, cfg: TrainConfig) -> OneLayerTransformer:
    """A float32 model for the task's vocabulary and length at :func:`initial_weights`.

    Frozen weights (``cfg.freeze``) have ``requires_grad`` off.
    """
    task = as_task(data)
    model = to_model(task, cfg, initial_weights(task, cfg, cfg.seed))
    for name in WEIGHT_NAMES:
        if cfg.frozen(name):
            getattr(model, name).requires_grad_(False)
    return model


def to_model(
    task: TrainTask, cfg: TrainConfig, weights: dict[str, torch.Tensor]
) -> OneLayerTransformer:
    """The float32 :class:`OneLayerTransformer` holding one replicate's trainer tensors."""
    model = OneLayerTransformer(model_config(task, cfg), dtype=torch.float32)
    with torch.no_grad():
        for name in WEIGHT_NAMES:
            value = (
                torch.cat([weights["W_E"], weights[RELATION_ROWS]])
                if name == "W_E"
                else weights[name]
            )
            getattr(model, name).copy_(value)
    return model


def from_model(model: OneLayerTransformer, n_entities: int) -> dict[str, torch.Tensor]:
    """One replicate's trainer tensors (float32 copies) from a model."""
    out = {
        name: getattr(model, name).detach().float().clone()
        for name in WEIGHT_NAMES
        if name != "W_E"
    }
    table = model.W_E.detach().float()
    out["W_E"], out[RELATION_ROWS] = table[:n_entities].clone(), table[n_entities:].clone()
    return out
