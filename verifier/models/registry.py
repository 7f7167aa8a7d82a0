"""Model adapters: a model source on disk -> a model the verifier's measures read.

An adapter (:class:`~verifier.models.base.ModelAdapter`) turns a file or folder the user trained
elsewhere into what a trained model is to the verifier (docs/theory.md section 2;
docs/model-files.md):

- ``inspect`` reads only what describes the model (a safetensors header, a config file) and
  checks it against the spec's instance and the limits, before any weight is read: its input
  and output vocabularies, widths, parameter count and the bytes on disk.
- ``load`` returns the model in float64: a :class:`~verifier.model.OneLayerTransformer` (exact
  recall, every mechanism measure and probe transfer run on it as on a trained one), or another
  :class:`~verifier.models.base.RecallModel` (exact recall and the measures that read the
  subject rows ``e_s`` and unembedding columns ``u_j`` alone).

:data:`MODEL_ADAPTERS` is the only list of adapter names: the built-in ``one_layer`` and ``hf``
register here, as plugins do through :func:`register_adapter` (entry-point group
``verifier.models``).
"""

from __future__ import annotations

from verifier import plugins
from verifier.models.base import Expected, ModelAdapter, ModelInfo, RecallModel
from verifier.models.hf import HFAdapter
from verifier.models.one_layer import OneLayerAdapter

MODEL_ADAPTERS: dict[str, ModelAdapter] = {}


def register_adapter(name: str, adapter: ModelAdapter) -> None:
    """Register ``adapter`` under ``name`` (what a claim's ``adapter:`` names).

    Raises:
        ValueError: the name is taken by another adapter.
    """
    if name in MODEL_ADAPTERS and MODEL_ADAPTERS[name] is not adapter:
        raise ValueError(f"model adapter {name!r} is registered already")
    MODEL_ADAPTERS[name] = adapter


def register_plugin(name: str, obj: object) -> None:
    """Register a plugin's adapter under its entry point's ``name`` (group ``verifier.models``).

    Raises:
        TypeError: ``obj`` has no callable ``inspect`` and ``load``.
        ValueError: the name is taken by another adapter.
    """
    if not all(callable(getattr(obj, method, None)) for method in ("inspect", "load")):
        raise TypeError(f"expected a model adapter (inspect and load), got {type(obj).__name__}")
    register_adapter(name, obj)  # type: ignore[arg-type]  # checked above, structurally


def adapters() -> dict[str, ModelAdapter]:
    """Every registered adapter by name: the built-ins, then the plugins' (loaded now)."""
    plugins.load(GROUP)
    return MODEL_ADAPTERS


GROUP = "verifier.models"
register_adapter("one_layer", OneLayerAdapter())
register_adapter("hf", HFAdapter())

__all__ = [
    "GROUP",
    "MODEL_ADAPTERS",
    "Expected",
    "ModelAdapter",
    "ModelInfo",
    "RecallModel",
    "adapters",
    "register_adapter",
    "register_plugin",
]
