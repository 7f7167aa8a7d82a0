"""The example plugin (examples/verifier-example) through the HTTP door: its spec verified by the
real server the integration tests use, its theorem in ``GET /v1/theorems``, its names in
``GET /v1/schema``'s enums. The other doors: tests/verifier/test_plugins.py."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import TERMINAL, submit, wait_for
from tests.verifier.test_plugins import EXAMPLE_SPEC, needs_example

pytestmark = [pytest.mark.integration, needs_example]


def test_the_example_spec_passes_over_http(client: httpx.Client) -> None:
    r = submit(client, EXAMPLE_SPEC.read_text())
    assert r.status_code == 202, r.text
    done = wait_for(client, r.json()["id"], TERMINAL, timeout=300)
    assert done["status"] == "passed", done
    results = {x["key"]: x for x in done["report"]["results"]}
    assert set(results) == {"padded", "padded-size", "mlp-needed", "trained"}
    assert results["mlp-needed"]["check"] == "ablation"
    assert results["trained"]["measured"]["subject_norm_spread"] >= 1


def test_the_example_names_are_served(client: httpx.Client) -> None:
    theorems = client.get("/v1/theorems")
    assert theorems.status_code == 200
    assert "PADDED" in [t["id"] for t in theorems.json()]
    defs = client.get("/v1/schema").json()["$defs"]
    assert "padded_compact" in defs["Construction"]["properties"]["name"]["enum"]
    assert "PADDED" in defs["BoundClaim"]["properties"]["theorem"]["anyOf"][0]["enum"]
    assert defs["AblationClaim"]["properties"]["check"]["const"] == "ablation"
