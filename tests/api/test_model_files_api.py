"""Model paths over HTTP: refused without a models folder, and outside it (``..``, symlinks,
absolute paths), with 422 naming the key; over the size limit or a pickle that is not
weights-only refused the same; a model inside it verified through the worker's code path."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app, served_limits
from api.settings import Settings
from api.store import Store
from api.workers import execute_job
from tests.verifier.test_model_files import Evil, model_spec, save_trained
from verifier.limits import Limits

YAML = {"Content-Type": "application/yaml"}


def _post(client: TestClient, text: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = client.post("/v1/verifications", content=text, headers=YAML)
    return r.status_code, r.json()


def test_no_models_folder_refuses_every_model_path(tmp_path: Path) -> None:
    save_trained(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", workers=0, validators=0)
    with TestClient(create_app(settings, Limits())) as c:
        for path in ("model.safetensors", str(tmp_path / "model.safetensors")):
            status, body = _post(c, model_spec(path))
            assert status == 422 and body["key"] == "mine.file", body
            assert "--models-dir" in body["message"]


def test_models_folder_confines_paths_and_runs_what_is_inside(tmp_path: Path) -> None:
    models, outside = tmp_path / "models", tmp_path / "outside"
    models.mkdir()
    outside.mkdir()
    save_trained(models)
    shutil.copy(models / "model.safetensors", outside / "model.safetensors")
    (models / "link.safetensors").symlink_to(outside / "model.safetensors")
    with (models / "evil.pt").open("wb") as f:
        pickle.dump({"W_E": Evil()}, f)
    settings = Settings(data_dir=tmp_path / "data", workers=0, validators=0, models_dir=models)
    limits = Limits(max_model_bytes=20_000)
    with TestClient(create_app(settings, limits)) as c:
        for path in (
            str(outside / "model.safetensors"),
            "../outside/model.safetensors",
            "link.safetensors",
        ):
            status, body = _post(c, model_spec(path))
            assert status == 422 and body["key"] == "mine.file", (path, body)
            assert "outside" in body["message"] and str(outside) not in body["message"]
        status, body = _post(c, model_spec("evil.pt"))
        assert status == 422 and body["key"] == "mine.file" and "weights-only" in body["message"]
        (models / "big.safetensors").write_bytes(b"\0" * 20_001)
        status, body = _post(c, model_spec("big.safetensors"))
        assert status == 422 and body["limit"] == "max_model_bytes", body
        text = model_spec("model.safetensors", expect='accuracy: ">= 0.9"')
        status, job = _post(c, text)
        assert status == 202, job
        store = Store(settings.db_path)
        claimed = store.claim(worker_pid=0)
        assert claimed is not None
        assert (
            execute_job(store, claimed, served_limits(limits, settings), timeout_s=60) == "passed"
        )
        done = c.get(f"/v1/verifications/{job['id']}").json()
        measured = done["report"]["results"][0]["measured"]
        assert measured["accuracy"] >= 0.9 and measured["superposition_r2"] <= 1.0
        # the stored report is keyed by the spec alone: a spec that reads a file is verified
        # again, never answered with a report of other bytes
        again = c.post("/v1/verifications", content=text, headers=YAML)
        assert again.status_code == 202 and again.json()["id"] != job["id"]
