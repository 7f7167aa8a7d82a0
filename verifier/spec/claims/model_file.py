"""Model-file claims: a model trained elsewhere, read from disk and measured as a trained one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, model_validator

from verifier.measure.registry import MECHANISM_MEASURES
from verifier.spec.base import IDENT
from verifier.spec.claims.base import ClaimBase
from verifier.spec.instances import BijectionInstance, MultiHopInstance

# What needs no training run: the untrained model's baseline is not in a file.
FILE_MECHANISM_MEASURES = tuple(m for m in MECHANISM_MEASURES if not m.endswith("_init"))
# The measures that read the subject rows e_s and unembedding columns u_j alone: those an
# adapter other than one_layer (another architecture) gives.
EMBEDDING_MEASURES = ("superposition_r2", "probe_accuracy")
ONE_LAYER = "one_layer"

if TYPE_CHECKING:
    from verifier.limits import Limits


class ModelFileClaim(ClaimBase):
    """Read a model the user trained from a file, evaluate exactly, measure its mechanism.

    The instance's facts are the ones it was trained on (docs/model-files.md: the token layout).
    With ``adapter: one_layer`` the file is the section 2 model, and every mechanism measure
    and ``transfer`` claims (``from:`` this claim; not ``relearn``) run on it as on a trained
    one; another adapter gives exact recall and the measures that read ``W_E`` and ``W_U``.
    """

    check: Literal["model_file"]
    file: str = Field(
        min_length=1,
        max_length=4096,
        description="the model: a .safetensors or torch.save state dict file (one_layer), a "
        "Hugging Face model folder (hf); relative to the spec file's folder",
    )
    adapter: str = Field(
        ONE_LAYER,
        pattern=IDENT,
        max_length=80,
        description="how to read it: one_layer (the section 2 model's TransformerLens weights), "
        "hf (a transformers causal LM, extra [hf]), or a plugin's adapter",
    )
    mechanism: bool = Field(True, description="measure the mechanism (docs/theory.md section 7)")

    MEASURES: ClassVar[tuple[str, ...]] = (
        "accuracy",  # float64 exact recall over every fact
        "margin",
        *FILE_MECHANISM_MEASURES,
        "params",
        "fact_params",  # the subject table, N d
        "embedding_dim",
        "mlp_width",  # one_layer only
        "n_facts",
    )
    INSTANCE_KINDS: ClassVar[tuple[str, ...]] = ("bijection",)
    _spec_file: str = PrivateAttr("<spec>")

    @model_validator(mode="after")
    def _fixed(self) -> ModelFileClaim:
        if self.sweep or self.search_spec():
            raise ValueError(
                "model_file claims take no sweep, minimize or maximize: the file is one model"
            )
        if not self.mechanism:
            named = sorted(set(self.expect) & set(MECHANISM_MEASURES))
            if named:
                raise ValueError(
                    f"mechanism: false skips the mechanism measures; expected none in expect, "
                    f"got {', '.join(named)}"
                )
        return self

    def produced_measures(self, instance: BijectionInstance | MultiHopInstance) -> Iterable[str]:
        """Recall and sizes; the mechanism measures with ``mechanism`` on, all of them for
        ``one_layer`` and those of ``W_E`` and ``W_U`` alone for another adapter."""
        mechanism = EMBEDDING_MEASURES if self.adapter != ONE_LAYER else FILE_MECHANISM_MEASURES
        if not self.mechanism:
            mechanism = ()
        skip = {"mlp_width"} if self.adapter != ONE_LAYER else set()
        return tuple(
            m
            for m in self.MEASURES
            if m not in skip and (m in mechanism or m not in FILE_MECHANISM_MEASURES)
        )

    def written_in(self, file: str) -> None:
        """Resolve ``file`` against this spec file's folder."""
        self._spec_file = file

    @property
    def spec_file(self) -> str:
        """The spec file this claim was read from (a label such as ``<request>`` for text)."""
        return self._spec_file

    def external_inputs(self, limits: Limits) -> dict[str, Any] | None:
        """The model's bytes, as sha256 per file (None when it cannot be read now)."""
        from verifier.errors import VerifierError
        from verifier.models.paths import resolve_model_path, source_digest

        try:
            path = resolve_model_path(self.file, self._spec_file, limits)
            return {"model": source_digest(path, limits)}
        except (VerifierError, OSError):
            return None
