"""Limits on the work one spec may ask for. Everything is refused before work starts.

Values come from environment variables ``VERIFIER_<NAME>`` (pydantic-settings), so a service
or a CI job can tighten them without touching code.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from verifier.errors import LimitExceeded, VerifierError


class Limits(BaseSettings):
    """Configured ceilings (``VERIFIER_MAX_ENTITIES=...`` and so on)."""

    model_config = SettingsConfigDict(env_prefix="VERIFIER_", extra="ignore")

    max_spec_bytes: int = 256_000  # size of the spec text
    max_claims: int = 200  # claims in one spec, after sweep expansion
    max_entities: int = 1_000_000  # N
    max_facts: int = 4_000_000  # N * R
    max_queries: int = 4_000_000  # N * R**k (multi-hop)
    max_code_dim: int = 4096  # m, including code_dim: auto's search
    # code_dim auto: its last scan is A^2 m / 2 float32 products (A attributes; 7.8e11 at
    # A = 10^5, m = 156), early-exit scans before it cost less. N = 10^5, R = 4 end to end
    # took 461 s on 2 shared cores (bench/README.md); A = 10^6 is ~100x the search (hours)
    max_auto_attributes: int = 1_000_000
    max_width: int = 16_384  # d_model and d_mlp of any model built or trained
    max_weights: int = 400_000_000  # parameters of any one model
    max_steps: int = 100_000  # training steps
    max_replicates: int = 16  # seeds of one replicated training claim (trained as one stack)
    max_sweep_points: int = 256  # points in one sweep grid
    max_lp_entries: int = 50_000_000  # rows x columns of one convex program (P1-P3)
    solver_time_limit_s: float = 60.0  # wall-clock limit of one LP solve
    max_job_flops: int = 2 * 10**15  # estimated flops of one claim over its points and replicates
    max_job_memory: int = 16 * 2**30  # estimated peak bytes of one claim point
    # Model files a claim reads (verifier/models/paths.py). max_model_bytes: a file, or a model
    # folder's files together; models_dir: every model path must resolve inside it;
    # models_dir_required: refuse every model path while models_dir is unset (the HTTP API).
    max_model_bytes: int = 4 * 2**30
    models_dir: str | None = None
    models_dir_required: bool = False


class LimitSettingError(VerifierError):
    """A ``VERIFIER_<NAME>`` limit variable whose value is not of the limit's type."""


def limits_from_environment() -> Limits:
    """The limits as the environment sets them.

    Raises:
        LimitSettingError: a variable that does not parse, named with what was expected and
            what came (never pydantic's traceback).
    """
    try:
        return Limits()
    except ValidationError as exc:
        problems = "; ".join(
            f"VERIFIER_{'_'.join(str(p) for p in e['loc']).upper()}: expected "
            f"{_EXPECTED.get(e['type'], e['msg'])}, got {e.get('input')!r}"
            for e in exc.errors()
        )
        raise LimitSettingError(problems) from None


_EXPECTED = {
    "int_parsing": "an integer written in digits, with no exponent",
    "int_from_float": "an integer written in digits",
    "float_parsing": "a number",
    "bool_parsing": "true or false",
}


def require(name: str, value: int, limit: int, what: str) -> None:
    """Raise :class:`LimitExceeded` naming the limit when ``value > limit``."""
    if value > limit:
        raise LimitExceeded(name, value, limit, what)
