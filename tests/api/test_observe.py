"""The observability routes of the REST API: clusters, the support bundle (a zip), the audit
explorer (search, why, lineage, rows) and doctor — the same answers as the CLI, refusals in the
one error shape, the token check, and a docstring for every route in the OpenAPI schema."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from brewslm import artifacts, project
from brewslm.api.app import create_app
from brewslm.observe import audit, clusters, why
from brewslm.stages import data

sys.path.insert(0, str(Path(__file__).parents[1] / "observe"))  # the stand-in stages
import observe_fakes as fakes  # noqa: E402

pytestmark = pytest.mark.store

ROUTES = ["/api/projects/{name}/clusters", "/api/projects/{name}/bundle",
          "/api/projects/{name}/audit", "/api/projects/{name}/audit/why/{candidate}",
          "/api/projects/{name}/audit/lineage/{target}", "/api/projects/{name}/audit/rows/{row_id}",
          "/api/doctor"]


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app())


@pytest.fixture
def story(prepare_small, tmp_path):
    info = prepare_small("served")
    rows = [r["row_id"] for r in data.dataset_rows(info, limit=2)["rows"]]
    ids = fakes.lifecycle(info, rows)
    assert data.ingest(info, str(tmp_path / "gone.jsonl")).status == "failed"
    return info, ids, rows


def error_code(resp, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]["code"]


def test_clusters_match_the_service(client, story):
    info = story[0]
    resp = client.get("/api/projects/served/clusters")
    assert resp.status_code == 200
    assert resp.json() == clusters.compute(info)
    assert [(c["reason_code"], c["count"]) for c in resp.json()["clusters"]] == [
        ("eval_gate_failed", 2), ("stage_failed", 1)]
    only = client.get("/api/projects/served/clusters", params={"stage": "ingest"}).json()
    assert [c["cause"] for c in only["clusters"]] == ["ingest_source_not_found"]
    assert error_code(client.get("/api/projects/served/clusters",
                                 params={"since": "soon"}), 400) == "filter_invalid"


def test_bundle_is_a_zip_and_recorded(client, story, monkeypatch, no_secret_env):
    monkeypatch.setenv("HF_TOKEN", "hf_PLANTEDaBcDeFgHiJkLmNoPqRsTuVwXyZ0123")
    resp = client.get("/api/projects/served/bundle")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/zip"
    assert 'filename="brewslm-served-bundle.zip"' in resp.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        blob = b"".join(zf.read(n) for n in names)
    assert {"manifest.json", "events.jsonl", "runs.json", "environment.json"} <= names
    assert manifest["redactions"]["by_kind"] == {"hf_token": 1}
    assert b"hf_PLANTED" not in blob
    events = client.get("/api/projects/served/events", params={"code": "bundle_created"})
    (created,) = events.json()["events"]
    assert created["payload"]["path"] is None
    assert created["payload"]["redactions"] == manifest["redactions"]


def test_audit_search(client, story):
    info, ids, rows = story
    resp = client.get("/api/projects/served/audit", params={"severity": "error"})
    assert resp.status_code == 200
    body = resp.json()
    assert body == audit.search(info, audit.make_query(severity="error"))
    assert [e["reason_code"] for e in body["events"]] == [
        "eval_gate_failed", "eval_gate_failed", "stage_failed"]
    by_artifact = client.get("/api/projects/served/audit",
                             params={"artifact": ids["good_model"][:10]}).json()
    assert [r["stage"] for r in by_artifact["runs"]] == ["train", "evaluate", "export"]
    by_row = client.get("/api/projects/served/audit", params={"row": rows[0]}).json()
    assert [s["stage"] for s in by_row["ledger"]] == [
        "ingest", "map", "prepare", "evaluate", "evaluate", "evaluate"]
    assert error_code(client.get("/api/projects/served/audit", params={"severity": "loud"}),
                      400) == "filter_invalid"
    assert error_code(client.get("/api/projects/served/audit", params={"limit": 0}),
                      422) == "request_invalid"


def test_audit_why(client, story):
    info, ids, _ = story
    resp = client.get(f"/api/projects/served/audit/why/{ids['bad_train']}")
    assert resp.status_code == 200
    assert resp.json() == why.explain(info, ids["bad_train"])
    assert resp.json()["verdict"] == "not promotable"
    assert [f["code"] for f in resp.json()["forced"]] == ["preflight_forced", "export_forced"]
    dataset = data.dataset_versions(info)[-1]["dataset_id"]
    assert error_code(client.get(f"/api/projects/served/audit/why/{dataset}"),
                      404) == "audit_candidate_unknown"
    assert error_code(client.get("/api/projects/served/audit/why/run-0000000000000000"),
                      404) == "run_not_found"


def test_audit_lineage_by_id_and_by_path(client, story):
    info, ids, _ = story
    by_id = client.get(f"/api/projects/served/audit/lineage/{ids['export'][:12]}").json()
    assert [n["kind"] for n in by_id["nodes"]] == ["export", "model", "eval_report", "manifest",
                                                   "dataset", "snapshot", "introspection"]
    gguf = artifacts.get(info, ids["export"]).path / "model.gguf"
    by_path = client.get(f"/api/projects/served/audit/lineage/{quote(str(gguf), safe='')}")
    assert by_path.status_code == 200, by_path.text
    assert by_path.json()["target"] == ids["export"]
    assert error_code(client.get("/api/projects/served/audit/lineage/"
                                 + quote("/no/such.gguf", safe="")), 404) == "audit_path_unknown"
    assert error_code(client.get("/api/projects/served/audit/lineage/zzzz"),
                      404) == "artifact_not_found"


def test_audit_rows(client, story):
    info, ids, rows = story
    resp = client.get(f"/api/projects/served/audit/rows/{rows[1]}")
    assert resp.status_code == 200
    assert resp.json() == audit.row_story(info, rows[1])
    assert [e["promotable"] for e in resp.json()["evaluations"]] == [False, True, False]
    assert error_code(client.get("/api/projects/served/audit/rows/rnope"), 404) == \
        "row_not_found"


def test_doctor(client):
    resp = client.get("/api/doctor")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"status", "counts", "checks"} and body["counts"]["fail"] == 0
    assert {c["name"] for c in body["checks"]} >= {"python", "libraries", "database"}


@pytest.mark.parametrize("path", ["/api/projects/nope/clusters", "/api/projects/nope/bundle",
                                  "/api/projects/nope/audit", "/api/projects/nope/audit/why/x",
                                  "/api/projects/nope/audit/lineage/x",
                                  "/api/projects/nope/audit/rows/r1"])
def test_unknown_project(client, path):
    assert error_code(client.get(path), 404) == "project_not_found"


def test_routes_need_the_token_beyond_loopback(monkeypatch):
    monkeypatch.setenv("BREWSLM_API_TOKEN", "t0ken-for-the-test")
    guarded = TestClient(create_app(require_token=True))
    project.create("locked")
    for path in ("/api/projects/locked/clusters", "/api/projects/locked/bundle", "/api/doctor",
                 "/api/projects/locked/audit"):
        assert error_code(guarded.get(path), 401) == "unauthorized"
    ok = guarded.get("/api/projects/locked/clusters",
                     headers={"Authorization": "Bearer t0ken-for-the-test"})
    assert ok.status_code == 200 and ok.json()["clusters"] == []


def test_every_route_is_documented(client):
    paths = client.get("/openapi.json").json()["paths"]
    for route in ROUTES:
        op = paths[route]["get"]
        assert len(op["description"]) > 80, route
        assert op["tags"] == ["observability"]
    bundle_op = paths["/api/projects/{name}/bundle"]["get"]
    assert "application/zip" in bundle_op["responses"]["200"]["content"]
    params = {p["name"] for p in paths["/api/projects/{name}/audit"]["get"]["parameters"]}
    assert params == {"name", "stage", "severity", "code", "run", "since", "until", "row",
                      "artifact", "limit", "authorization"}
