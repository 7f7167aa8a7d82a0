"""Every training setting of the spec reaches the trainer's :class:`TrainConfig`, through the one
builder (:func:`verifier.train.config.train_config`).

A field added to the spec's training models and forgotten by the builder fails here: the leaf
paths below are read from the models themselves, and each must have a changed value whose
effect the config shows (or be listed, with its reason, in ``NOT_SETTINGS``).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from verifier.spec import BijectionInstance, TrainingClaim
from verifier.spec.claims.base import ClaimBase
from verifier.spec.claims.training import OptimGroup as SpecOptimGroup
from verifier.spec.claims.training import TrainingAugment, TrainingModel, TrainingOptim
from verifier.train import AugmentConfig, OptimGroup, TrainConfig
from verifier.train.config import NOT_SETTINGS, RENAMED, train_config

INSTANCE = BijectionInstance(kind="bijection", entities=16, relations=2, seed=0)
BASE: dict[str, Any] = {
    "id": "gd",
    "check": "training",
    "model": {"d_model": 8, "d_mlp": 16},
    "optim": {"lr": 0.01, "steps": 100, "groups": {"W_E": {}}, "augment": {}},
}
CLAIM_SETTINGS = ("freeze", "train_seed")  # the claim's own fields that are settings
# A value other than the default for every leaf of the spec's training settings.
CHANGED: dict[str, Any] = {
    "model.d_model": 9,
    "model.d_mlp": 17,
    "model.heads": 2,
    "model.d_head": 3,
    "model.init_scale": 0.5,
    "model.attention": "uniform",
    "model.init": {"W_in": 0.5, "W_E": 0.25},
    "model.unit_norm": ["W_U"],
    "optim.optimizer": "sgd",
    "optim.lr": 0.02,
    "optim.steps": 200,
    "optim.schedule": "cosine",
    "optim.warmup": 5,
    "optim.weight_decay": 0.1,
    "optim.momentum": 0.5,
    "optim.batch_size": 16,
    "optim.stop_loss": 0.1,
    "optim.eval_every": 10,
    "optim.min_steps": 50,
    "optim.stop_accuracy": 0.5,
    "optim.groups.W_E.optimizer": "sgd",
    "optim.groups.W_E.lr": 0.1,
    "optim.groups.W_E.momentum": 0.5,
    "optim.groups.W_E.weight_decay": 0.2,
    "optim.groups.W_E.per_subject": True,
    "optim.augment.subjects": 5,
    "optim.augment.refit_every": 3,
    "optim.augment.weight": 0.5,
    "optim.augment.start": 4,
    "freeze": ["W_E", "W_U"],
    "train_seed": 7,
}


def _leaves() -> set[str]:
    """Every setting's path, read from the spec models."""
    containers = {"groups", "augment"}
    return {
        *(f"model.{f}" for f in TrainingModel.model_fields),
        *(f"optim.{f}" for f in TrainingOptim.model_fields if f not in containers),
        *(f"optim.groups.W_E.{f}" for f in SpecOptimGroup.model_fields),
        *(f"optim.augment.{f}" for f in TrainingAugment.model_fields),
        *CLAIM_SETTINGS,
    }


def _config(path: str | None = None, value: Any = None) -> TrainConfig:
    raw = copy.deepcopy(BASE)
    if path is not None:
        *parents, leaf = path.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = value
    return train_config(INSTANCE, TrainingClaim.model_validate(raw))


def _read(cfg: TrainConfig, path: str) -> Any:
    """What the config holds for the spec field at ``path``, in the spec's form."""
    parts = path.split(".")
    if path == "train_seed":
        return cfg.seed
    if path.startswith("optim.groups.W_E."):
        return getattr(dict(cfg.groups)["W_E"], parts[-1])
    if path.startswith("optim.augment."):
        assert cfg.augment is not None
        return getattr(cfg.augment, parts[-1])
    value = getattr(cfg, RENAMED.get(parts[-1], parts[-1]))
    if parts[-1] == "init":
        return dict(value)
    return list(value) if isinstance(value, tuple) else value


def test_every_spec_setting_has_a_changed_value_here() -> None:
    assert set(CHANGED) == _leaves()


def test_the_claims_fields_are_settings_or_listed_as_not_settings() -> None:
    own = set(TrainingClaim.model_fields) - set(ClaimBase.model_fields) - {"check"}
    assert own == {"model", "optim", *CLAIM_SETTINGS, *NOT_SETTINGS}
    assert all(reason for reason in NOT_SETTINGS.values())


def test_the_spec_settings_have_config_fields_of_the_same_name() -> None:
    config = {f.name for f in dataclasses.fields(TrainConfig)}
    for model in (TrainingModel, TrainingOptim):
        assert {RENAMED.get(f, f) for f in model.model_fields} <= config
    assert set(SpecOptimGroup.model_fields) == {f.name for f in dataclasses.fields(OptimGroup)}
    assert set(TrainingAugment.model_fields) == {f.name for f in dataclasses.fields(AugmentConfig)}


@pytest.mark.parametrize("path", sorted(CHANGED))
def test_each_spec_setting_reaches_the_config(path: str) -> None:
    base, changed = _config(), _config(path, CHANGED[path])
    assert _read(base, path) != CHANGED[path]
    assert _read(changed, path) == CHANGED[path]
    assert changed != base


def test_unset_containers_and_seed_defaults() -> None:
    raw = copy.deepcopy(BASE)
    raw["optim"] = {"lr": 0.01, "steps": 100}
    cfg = train_config(INSTANCE.model_copy(update={"seed": 5}), TrainingClaim.model_validate(raw))
    assert cfg.groups == () and cfg.augment is None and cfg.seed == 5
    assert cfg.n_heads == 1 and cfg.head_dim == 8


def test_mappings_become_sorted_tuples() -> None:
    """Equal settings written in another order give one config (one checkpoint key)."""
    a = _config("model.init", {"W_in": 0.5, "W_E": 0.25})
    b = _config("model.init", {"W_E": 0.25, "W_in": 0.5})
    assert a == b and a.init == (("W_E", 0.25), ("W_in", 0.5))
    assert _config("model.unit_norm", ["W_U", "W_E", "W_U"]).unit_norm == ("W_E", "W_U")
