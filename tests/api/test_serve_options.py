"""``verifier serve`` options and settings for the executor (no server, no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.main import ray_config
from api.ray_runner import RayConfig
from api.settings import Settings
from verifier.cli import app


def test_an_unknown_executor_is_refused_before_serving() -> None:
    proc = CliRunner().invoke(app, ["serve", "--executor", "spark"])
    assert proc.exit_code == 2
    assert "--executor: expected local or ray, got 'spark'" in proc.output


def test_ray_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert ray_config(Settings()) is None  # the local pool stays the default
    monkeypatch.setenv("VERIFIER_API_EXECUTOR", "ray")
    monkeypatch.setenv("VERIFIER_API_RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.setenv("VERIFIER_API_RAY_TASK_RETRIES", "0")
    monkeypatch.setenv("VERIFIER_API_CACHE_DIR", str(tmp_path / "shared"))
    settings = Settings()
    assert ray_config(settings) == RayConfig("10.0.0.5:6379", 0, settings.poll_s)
    assert settings.cache_dir == tmp_path / "shared"
    monkeypatch.setenv("VERIFIER_API_EXECUTOR", "spark")
    with pytest.raises(ValueError, match="executor"):
        Settings()


def test_models_dir_reaches_the_engine_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--models-dir (or VERIFIER_API_MODELS_DIR) confines model paths; without it the server
    refuses every model path (models_dir_required)."""
    import uvicorn

    from api.main import served_limits
    from verifier.limits import Limits

    served: list[Limits] = []

    def run(server: uvicorn.Server) -> None:  # serve nothing: read what it would serve
        served.append(server.config.app.state.limits)
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    models = tmp_path / "models"
    models.mkdir()
    args = ["serve", "--data-dir", str(tmp_path / "data"), "--models-dir", str(models)]
    proc = CliRunner().invoke(app, args)
    assert proc.exit_code == 0, proc.output
    assert (served[0].models_dir, served[0].models_dir_required) == (str(models.resolve()), True)
    monkeypatch.setenv("VERIFIER_API_MODELS_DIR", str(models))
    assert Settings().models_dir == models
    unset = served_limits(Limits(), Settings(models_dir=None))
    assert (unset.models_dir, unset.models_dir_required) == (None, True)
