"""Deployment versions through the REST API: list, promote, rollback (refused without a
predecessor), telemetry percentiles per version, and the error bodies of unknown versions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from brewslm import project
from brewslm.api.app import create_app
from brewslm.serving import deployments, telemetry
from brewslm.serving.openai_app import RequestRecord

pytestmark = pytest.mark.store


@pytest.fixture
def versions():
    info = project.create("versioned", base_model="builtin:tiny")
    passed, failed = {"passed": True, "prompts": []}, {"passed": False, "prompts": []}
    for smoke in (passed, passed, failed):
        deployments.create(info, export_id="e" * 64, fmt="hf", run_id=None, smoke=smoke)
    record = telemetry.recorder(info)
    for i, latency in enumerate((0.1, 0.2, 0.3, 0.4)):
        record(RequestRecord("dep-x", 1, "/v1/chat/completions", 200, True, latency,
                             latency / 2, 10, 5, f"prompt {i}", None, datetime.now(UTC), False))
    record(RequestRecord("dep-x", 1, "/v1/completions", 503, False, 0.05, None, 0, 0, None,
                         "backend_error", datetime.now(UTC), False))
    return info


def test_promote_rollback_and_telemetry(versions):
    client = TestClient(create_app())
    listed = client.get("/api/projects/versioned/deployments").json()
    assert [v["status"] for v in listed["versions"]] == ["pending", "pending", "rejected"]
    assert listed["promoted"] is None

    assert client.post("/api/projects/versioned/deployments/1/promote").status_code == 200
    promoted = client.post("/api/projects/versioned/deployments/2/promote").json()["version"]
    assert promoted["status"] == "promoted" and promoted["predecessor"] == 1
    rejected = client.post("/api/projects/versioned/deployments/3/promote")
    assert rejected.status_code == 400
    assert rejected.json()["error"]["code"] == "deploy_version_rejected"

    back = client.post("/api/projects/versioned/deployments/rollback").json()["version"]
    assert back["version"] == 1 and back["status"] == "promoted"
    again = client.post("/api/projects/versioned/deployments/rollback")
    assert again.status_code == 400 and again.json()["error"]["code"] == "deploy_no_predecessor"

    stats = client.get("/api/projects/versioned/deployments/1/telemetry").json()
    assert (stats["requests"], stats["errors"]) == (5, 1)
    assert stats["latency_s"]["p50"] == pytest.approx(0.25)
    assert stats["by_status"] == {"200": 4, "503": 1}
    assert stats["tokens_per_s"] == pytest.approx(20 / 1.0)
    unknown = client.get("/api/projects/versioned/deployments/9/telemetry")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "deploy_version_unknown"
    assert client.get("/api/projects/versioned/exports").json() == {"exports": []}
