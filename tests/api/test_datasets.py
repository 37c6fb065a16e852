"""Dataset versions through the API: the same service the CLI's `dataset` command uses."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from brewslm import project
from brewslm.api.app import create_app
from brewslm.stages import data

pytestmark = pytest.mark.store


def test_versions_and_rows(tmp_path):
    client = TestClient(create_app())
    info = project.create("ds")
    assert client.get("/api/projects/ds/datasets").json() == {"versions": []}
    resp = client.get("/api/projects/ds/datasets/1/rows")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "dataset_version_missing"
    src = tmp_path / "pc.jsonl"
    src.write_text("\n".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"})
                             for i in range(4)) + "\n")
    data.ingest(info, str(src))
    data.map_rows(info)
    (version,) = client.get("/api/projects/ds/datasets").json()["versions"]
    assert version["version"] == 1 and version["rows"] == 4
    shown = client.get("/api/projects/ds/datasets/1/rows", params={"limit": 2}).json()
    assert shown["shown"] == 2 and shown["rows"][0]["messages"][0]["content"] == "p0"
    by_id = client.get(f"/api/projects/ds/datasets/{version['dataset_id'][:12]}/rows").json()
    assert by_id["shown"] == 4
    assert client.get("/api/projects/ds/datasets/1/rows", params={"limit": 0}).status_code == 422
