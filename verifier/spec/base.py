"""The base of every spec model: strict keys, finite numbers, and the pattern of ids and names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# The largest learning rate, weight decay or init multiplier a spec may give: far above any
# useful value, far below where float32 weights and their products overflow (3.4e38).
MAX_SCALE = 1e3
# The largest LP box (|v|_inf): the solvers lose their tolerances long before.
MAX_BOX = 1e6


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys and non-finite numbers (.inf, .nan) are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
