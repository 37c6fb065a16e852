"""Training traces through the API: the JSON the CLI prints, and the loss curve as PNG."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from brewslm.api.app import create_app
from brewslm.stages.train import train

pytestmark = pytest.mark.store


@pytest.fixture
def trained(prepare_small):
    info = prepare_small("traced")
    result = train(info, backend="simulate", overrides=["max_steps=30", "eval_every=10"])
    assert result.status == "succeeded"
    return result.run_id


def test_metrics_json_and_png(trained):
    client = TestClient(create_app())
    body = client.get(f"/api/projects/traced/runs/{trained}/metrics").json()
    assert body["run_id"] == trained and body["simulated"] is True
    assert [r["step"] for r in body["rows"] if "eval_loss" in r] == [10, 20, 30]
    assert body["summary"]["last_loss"] < body["summary"]["first_loss"]
    assert "loss" in body["plot"]
    png = client.get(f"/api/projects/traced/runs/{trained}/metrics.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    missing = client.get("/api/projects/traced/runs/run-nope/metrics")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_missing"
