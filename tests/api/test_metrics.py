"""Training traces through the API: the JSON the CLI prints, and the loss curve as PNG."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from brewslm import project
from brewslm.api.app import create_app
from brewslm.stages import data
from brewslm.stages.train import train

pytestmark = pytest.mark.store


@pytest.fixture
def trained(tmp_path):
    info = project.create("traced", base_model="builtin:tiny")
    src = tmp_path / "data.jsonl"
    src.write_text("".join(f'{{"instruction": "ticket {i}: app {i % 7} broken", '
                           f'"response": "category {i % 3}"}}\n' for i in range(40)))
    data.ingest(info, str(src))
    data.map_rows(info)
    assert data.prepare(info).status == "succeeded"
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
