"""The base of every spec model: strict keys, finite numbers, and the pattern of ids and names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys and non-finite numbers (.inf, .nan) are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
