"""The REST API: projects, events and their filters, runs, artifacts, the row ledger, tokens.

Every refusal is asserted by its exact status code and reason code, in the one error body shape
{"error": {"code", "message", "details"}}. One test starts the real server (`brewslm server`)
as a subprocess on a free loopback port; the rest use FastAPI's in-process TestClient.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from brewslm import locks, project
from brewslm.api.app import create_app, is_loopback, serve
from brewslm.errors import InputError
from brewslm.events import emit_event
from brewslm.ledger import make_row_id
from brewslm.stages.runner import StageResult, run_stage
from brewslm.stages.synthetic import SyntheticStage

pytestmark = pytest.mark.store

SYNTH = {"rows": 100, "reject_every": 7, "change_every": 5}


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app())


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an error with this status and reason code, in the one body shape."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def make_project(client: TestClient, name: str = "tickets", **extra: Any) -> dict[str, Any]:
    resp = client.post("/api/projects", json={"name": name, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()["project"]


def synthetic(name: str, parent_run_id: str | None = None, **params: int) -> StageResult:
    result = run_stage(SyntheticStage(), project.get(name), params={**SYNTH, **params},
                       parent_run_id=parent_run_id)
    assert result.status == "succeeded", result.error
    return result


def codes_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["reason_code"] for e in events]


# --- health and projects ------------------------------------------------------------------------
def test_health(client: TestClient) -> None:
    resp = client.get("/api/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"
    assert resp.json()["version"]


def test_create_list_show_project(client: TestClient) -> None:
    created = make_project(client, "tickets", description="support tickets")
    assert created["name"] == "tickets"
    assert created["description"] == "support tickets"
    assert created["base_model"] is None
    make_project(client, "second")

    listed = client.get("/api/projects")
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()["projects"]] == ["tickets", "second"]

    shown = client.get("/api/projects/tickets")
    assert shown.status_code == 200
    data = shown.json()["project"]
    assert data["id"] == created["id"]
    assert data["counts"] == {"runs": 0, "events": 1, "artifacts": 0}  # project_created
    assert data["stages"] == {}


def test_duplicate_project_is_a_conflict(client: TestClient) -> None:
    make_project(client)
    err = assert_error(client.post("/api/projects", json={"name": "tickets"}), 409,
                       "project_exists")
    assert "tickets" in err["message"]
    assert len(client.get("/api/projects").json()["projects"]) == 1


@pytest.mark.parametrize("name", ["Bad Name", "-leading-dash", "", "x" * 65, "a/b", "ÜBER"])
def test_bad_project_name(client: TestClient, name: str) -> None:
    assert_error(client.post("/api/projects", json={"name": name}), 400, "project_name_invalid")
    assert client.get("/api/projects").json()["projects"] == []


@pytest.mark.parametrize("kwargs, loc", [
    ({"json": {}}, ["body", "name"]),
    ({"json": {"description": "no name"}}, ["body", "name"]),
    ({"json": {"name": 123}}, ["body", "name"]),
    ({"json": {"name": "ok", "base_model": ["builtin:tiny"]}}, ["body", "base_model"]),
    ({"json": ["tickets"]}, ["body"]),
    ({"content": b"not json", "headers": {"content-type": "application/json"}}, "JSON"),
    ({"content": b"{\"name\": ", "headers": {"content-type": "application/json"}}, "JSON"),
])
def test_malformed_create_is_request_invalid(client: TestClient, kwargs: dict[str, Any],
                                             loc: list[Any] | str) -> None:
    err = assert_error(client.post("/api/projects", **kwargs), 422, "request_invalid")
    errors = err["details"]["errors"]
    if loc == "JSON":  # not JSON at all: the location is a character offset in the body
        assert [(e["loc"][0], e["msg"]) for e in errors] == [("body", "JSON decode error")]
    else:
        assert loc in [e["loc"] for e in errors]
    assert client.get("/api/projects").json()["projects"] == []


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/projects/nope"),
    ("DELETE", "/api/projects/nope"),
    ("GET", "/api/projects/nope/runs"),
    ("GET", "/api/projects/nope/runs/run-0000000000000000"),
    ("GET", "/api/projects/nope/events"),
    ("GET", "/api/projects/nope/artifacts"),
    ("GET", "/api/projects/nope/rows/stats"),
    ("GET", "/api/projects/nope/rows/r0000000000000000"),
])
def test_unknown_project(client: TestClient, method: str, path: str) -> None:
    err = assert_error(client.request(method, path), 404, "project_not_found")
    assert "nope" in err["message"]


def test_delete_project(client: TestClient) -> None:
    info = make_project(client)
    synthetic("tickets")
    assert Path(info["dir"]).is_dir()

    resp = client.delete("/api/projects/tickets")
    assert resp.status_code == 200
    assert resp.json()["deleted"]["name"] == "tickets"
    assert not Path(info["dir"]).exists()
    assert client.get("/api/projects").json()["projects"] == []
    assert_error(client.get("/api/projects/tickets"), 404, "project_not_found")
    assert_error(client.delete("/api/projects/tickets"), 404, "project_not_found")
    # the name is free again, and the new project starts empty
    make_project(client)
    assert client.get("/api/projects/tickets").json()["project"]["counts"]["runs"] == 0


def test_delete_refused_while_a_stage_holds_the_lock(client: TestClient) -> None:
    info = make_project(client)
    with locks.project_lock(Path(info["dir"]), project="tickets", stage="synthetic",
                            run_id="run-holder"):
        err = assert_error(client.delete("/api/projects/tickets"), 409, "stage_locked")
        assert "run-holder" in err["message"]
    assert client.delete("/api/projects/tickets").status_code == 200


def test_codes_lists_the_taxonomy(client: TestClient) -> None:
    resp = client.get("/api/codes")
    assert resp.status_code == 200
    by_code = {c["code"]: c for c in resp.json()["codes"]}
    assert by_code["synthetic_row_rejected"]["severity"] == "warning"
    assert {"request_invalid", "unauthorized", "filter_invalid"} <= set(by_code)


# --- events and their filters -------------------------------------------------------------------
@pytest.fixture
def timeline_project(client: TestClient) -> dict[str, Any]:
    """A project with a parent run, its child run, an unrelated run and three loose events of
    rising severity, split in time by `mid`; another project's events must never show."""
    make_project(client, "tickets")
    make_project(client, "other")
    synthetic("other", rows=10)
    info = project.get("tickets")
    parent = synthetic("tickets", rows=10)
    child = synthetic("tickets", parent_run_id=parent.run_id, rows=20)
    time.sleep(0.02)
    mid = datetime.now(UTC)
    time.sleep(0.02)
    unrelated = synthetic("tickets", rows=30)
    emit_event("stage_blocked", "preflight blocked", project_id=info.id, stage="preflight",
               run_id=unrelated.run_id)
    emit_event("stage_failed", "train failed", project_id=info.id, stage="train")
    emit_event("contract_violated", "clean broke its contract", project_id=info.id,
               stage="clean")
    return {"parent": parent.run_id, "child": child.run_id, "unrelated": unrelated.run_id,
            "mid": mid}


def get_events(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    resp = client.get("/api/projects/tickets/events", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.json()["project"] == "tickets"
    return resp.json()["events"]


def test_events_unfiltered(client: TestClient, timeline_project: dict[str, Any]) -> None:
    events = get_events(client)
    assert codes_of(events) == ["project_created"] + ["stage_started", "stage_succeeded"] * 3 + [
        "stage_blocked", "stage_failed", "contract_violated"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    first = events[0]
    assert set(first) == {"id", "created_at", "stage", "severity", "reason_code", "summary",
                          "run_id", "parent_run_id", "payload"}
    assert first["stage"] == "project" and first["severity"] == "info"
    assert first["payload"] == {"name": "tickets", "base_model": None}


def test_events_by_stage(client: TestClient, timeline_project: dict[str, Any]) -> None:
    events = get_events(client, stage="synthetic")
    assert codes_of(events) == ["stage_started", "stage_succeeded"] * 3
    assert codes_of(get_events(client, stage="train")) == ["stage_failed"]
    assert get_events(client, stage="deploy") == []
    err = assert_error(client.get("/api/projects/tickets/events", params={"stage": "bogus"}),
                       400, "filter_invalid")
    assert err["details"] == {"field": "stage"}


@pytest.mark.parametrize("severity, expected", [
    ("info", 10),
    ("warning", ["stage_blocked", "stage_failed", "contract_violated"]),
    ("error", ["stage_failed", "contract_violated"]),
    ("critical", ["contract_violated"]),
])
def test_events_at_least_severity(client: TestClient, timeline_project: dict[str, Any],
                                  severity: str, expected: int | list[str]) -> None:
    events = get_events(client, severity=severity)
    if isinstance(expected, int):
        assert len(events) == expected
    else:
        assert codes_of(events) == expected


@pytest.mark.parametrize("severity", ["fatal", "WARNING", "warn"])
def test_events_bad_severity(client: TestClient, timeline_project: dict[str, Any],
                             severity: str) -> None:
    err = assert_error(client.get("/api/projects/tickets/events", params={"severity": severity}),
                       400, "filter_invalid")
    assert err["details"] == {"field": "severity"}


def test_events_by_run_include_children(client: TestClient,
                                        timeline_project: dict[str, Any]) -> None:
    parent, child = timeline_project["parent"], timeline_project["child"]
    family = get_events(client, run=parent)
    assert codes_of(family) == ["stage_started", "stage_succeeded"] * 2
    assert [e["run_id"] for e in family] == [parent, parent, child, child]
    assert {e["parent_run_id"] for e in family if e["run_id"] == child} == {parent}

    only_child = get_events(client, run=child)
    assert [e["run_id"] for e in only_child] == [child, child]

    unrelated = get_events(client, run=timeline_project["unrelated"])
    assert codes_of(unrelated) == ["stage_started", "stage_succeeded", "stage_blocked"]

    assert_error(client.get("/api/projects/tickets/events", params={"run": "run-nope"}), 404,
                 "run_not_found")


def test_events_since_until(client: TestClient, timeline_project: dict[str, Any]) -> None:
    mid: datetime = timeline_project["mid"]
    everything = get_events(client)
    before = get_events(client, until=mid.isoformat())
    after = get_events(client, since=mid.isoformat())
    assert codes_of(before) == ["project_created"] + ["stage_started", "stage_succeeded"] * 2
    assert codes_of(after) == ["stage_started", "stage_succeeded", "stage_blocked",
                               "stage_failed", "contract_violated"]
    assert before + after == everything
    # 'Z' and a naive time both mean UTC
    zulu = mid.replace(tzinfo=None).isoformat() + "Z"
    assert get_events(client, since=zulu) == after
    assert get_events(client, since=mid.replace(tzinfo=None).isoformat()) == after
    # a window that holds nothing, and one that holds everything
    assert get_events(client, since=mid.isoformat(), until=mid.isoformat()) == []
    hour = timedelta(hours=1)
    assert get_events(client, since=(mid - hour).isoformat(),
                      until=(mid + hour).isoformat()) == everything


def test_events_since_with_utc_offset(client: TestClient,
                                      timeline_project: dict[str, Any]) -> None:
    """The same instant written with another UTC offset selects the same events (SQLite stores
    UTC and compares as text, so the filter must be converted to UTC first)."""
    mid: datetime = timeline_project["mid"]
    after = get_events(client, since=mid.isoformat())
    for hours in (2, -5):
        shifted = mid.astimezone(timezone(timedelta(hours=hours)))  # the same instant
        assert get_events(client, since=shifted.isoformat()) == after, shifted.isoformat()


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "27/11/2026 10:00"])
def test_events_bad_time(client: TestClient, timeline_project: dict[str, Any], field: str,
                         value: str) -> None:
    err = assert_error(client.get("/api/projects/tickets/events", params={field: value}), 400,
                       "filter_invalid")
    assert err["details"] == {"field": field}
    assert value in err["message"]


def test_events_by_code(client: TestClient, timeline_project: dict[str, Any]) -> None:
    started = get_events(client, code="stage_started")
    assert codes_of(started) == ["stage_started"] * 3
    assert get_events(client, code="stage_reused") == []
    # combined filters narrow each other
    assert codes_of(get_events(client, code="stage_started",
                               run=timeline_project["child"])) == ["stage_started"]


def test_events_limit_keeps_the_latest(client: TestClient,
                                       timeline_project: dict[str, Any]) -> None:
    everything = get_events(client)
    assert get_events(client, limit=2) == everything[-2:]
    assert get_events(client, limit=1, severity="warning") == everything[-1:]
    assert get_events(client, limit=100_000) == everything
    for bad in (0, -1, 100_001, "ten"):
        err = assert_error(client.get("/api/projects/tickets/events", params={"limit": bad}),
                           422, "request_invalid")
        assert err["details"]["errors"][0]["loc"] == ["query", "limit"]


def test_events_tree(client: TestClient, timeline_project: dict[str, Any]) -> None:
    resp = client.get("/api/projects/tickets/events", params={"tree": "true"})
    assert resp.status_code == 200
    data = resp.json()
    assert set(data) == {"project", "events", "count", "tree"}
    assert data["project"] == "tickets"
    assert data["count"] == len(data["events"]) == 10
    loose = data["tree"]["events"]
    assert codes_of(loose) == ["project_created", "stage_failed", "contract_violated"]

    roots = {r["run_id"]: r for r in data["tree"]["runs"]}
    assert set(roots) == {timeline_project["parent"], timeline_project["unrelated"]}
    parent = roots[timeline_project["parent"]]
    assert parent["stage"] == "synthetic" and parent["status"] == "succeeded"
    assert codes_of(parent["events"]) == ["stage_started", "stage_succeeded"]
    [child] = parent["children"]
    assert child["run_id"] == timeline_project["child"]
    assert codes_of(child["events"]) == ["stage_started", "stage_succeeded"]
    assert child["children"] == []
    assert codes_of(roots[timeline_project["unrelated"]]["events"]) == [
        "stage_started", "stage_succeeded", "stage_blocked"]

    # filters apply to the tree too
    warned = client.get("/api/projects/tickets/events",
                        params={"tree": "true", "severity": "warning"}).json()
    assert warned["count"] == 3
    assert [r["run_id"] for r in warned["tree"]["runs"]] == [timeline_project["unrelated"]]
    assert_error(client.get("/api/projects/tickets/events", params={"tree": "maybe"}), 422,
                 "request_invalid")


# --- runs, artifacts, the row ledger ------------------------------------------------------------
@pytest.fixture
def synthetic_run(client: TestClient) -> StageResult:
    make_project(client)
    return synthetic("tickets")


def test_runs_list_and_show(client: TestClient, synthetic_run: StageResult) -> None:
    resp = client.get("/api/projects/tickets/runs")
    assert resp.status_code == 200
    [run] = resp.json()["runs"]
    assert run["run_id"] == synthetic_run.run_id
    assert run["stage"] == "synthetic" and run["status"] == "succeeded"
    assert run["parameters"] == SYNTH
    assert run["ledger"]["in"] == 100 and run["ledger"]["dropped"] == 15
    assert client.get("/api/projects/tickets/runs", params={"stage": "synthetic"}).json() == {
        "runs": [run]}
    assert client.get("/api/projects/tickets/runs", params={"stage": "train"}).json() == {
        "runs": []}

    shown = client.get(f"/api/projects/tickets/runs/{synthetic_run.run_id}")
    assert shown.status_code == 200
    assert shown.json() == {"run": run}
    err = assert_error(client.get("/api/projects/tickets/runs/run-nope"), 404, "run_not_found")
    assert "run-nope" in err["message"]


def test_run_of_another_project_is_not_found(client: TestClient,
                                             synthetic_run: StageResult) -> None:
    make_project(client, "other")
    assert_error(client.get(f"/api/projects/other/runs/{synthetic_run.run_id}"), 404,
                 "run_not_found")


def test_artifacts_list(client: TestClient, synthetic_run: StageResult) -> None:
    resp = client.get("/api/projects/tickets/artifacts")
    assert resp.status_code == 200
    [art] = resp.json()["artifacts"]
    assert art["id"] == synthetic_run.outputs["dataset"]["id"] == art["sha256"]
    assert art["kind"] == "dataset"
    assert art["run_id"] == synthetic_run.run_id
    assert art["meta"]["rows"] == 85
    assert Path(art["path"], "rows.parquet").is_file()


def test_rows_stats(client: TestClient, synthetic_run: StageResult) -> None:
    resp = client.get("/api/projects/tickets/rows/stats")
    assert resp.status_code == 200
    data = resp.json()
    assert data["project"] == "tickets"
    assert data["flagged"] == []
    [entry] = data["stages"]
    # 100 rows: 15 multiples of 7 dropped; 17 multiples of 5 (not of 7) changed; 68 kept
    assert {k: entry[k] for k in ("stage", "run_id", "in", "out", "dropped", "kept", "changed",
                                  "added", "by_reason", "balanced", "matches_run_record",
                                  "flagged")} == {
        "stage": "synthetic", "run_id": synthetic_run.run_id, "in": 100, "out": 85,
        "dropped": 15, "kept": 68, "changed": 17, "added": 0,
        "by_reason": {"synthetic_row_rejected": 15}, "balanced": True,
        "matches_run_record": True, "flagged": False}


def test_rows_stats_of_a_project_without_rows(client: TestClient) -> None:
    make_project(client)
    resp = client.get("/api/projects/tickets/rows/stats")
    assert resp.status_code == 200
    assert resp.json() == {"project": "tickets", "stages": [], "flagged": []}


def test_row_trace_dropped(client: TestClient, synthetic_run: StageResult) -> None:
    row_id = make_row_id("synthetic:0", 0)
    resp = client.get(f"/api/projects/tickets/rows/{row_id}")
    assert resp.status_code == 200
    data = resp.json()
    assert data["row_id"] == row_id
    [step] = data["steps"]
    assert step["stage"] == "synthetic" and step["run_id"] == synthetic_run.run_id
    assert step["outcome"] == "dropped"
    assert step["reason_code"] == "synthetic_row_rejected"
    assert step["position"] == "row 0" and step["source"] == "synthetic"
    assert step["meaning"] and step["hint"]
    assert data["final"] == "dropped at synthetic (synthetic_row_rejected)"


@pytest.mark.parametrize("position, outcome, final", [
    (1, "kept", "kept at synthetic"),
    (5, "changed", "changed at synthetic"),
])
def test_row_trace_kept_and_changed(client: TestClient, synthetic_run: StageResult,
                                    position: int, outcome: str, final: str) -> None:
    data = client.get(f"/api/projects/tickets/rows/{make_row_id('synthetic:0', position)}").json()
    [step] = data["steps"]
    assert step["outcome"] == outcome and "reason_code" not in step
    assert data["final"] == final
    if outcome == "changed":
        assert step["detail"] == "upper-cased"


def test_row_trace_unknown_row(client: TestClient, synthetic_run: StageResult) -> None:
    for row_id in ("r0000000000000000", make_row_id("synthetic:0", 100)):  # 100 is past the end
        err = assert_error(client.get(f"/api/projects/tickets/rows/{row_id}"), 404,
                           "row_not_found")
        assert row_id in err["message"]


# --- the bearer token ---------------------------------------------------------------------------
@pytest.fixture
def guarded_client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("BREWSLM_API_TOKEN", "s3cret-token")
    return TestClient(create_app(require_token=True))


PROTECTED = ["/api/projects", "/api/codes", "/api/projects/tickets",
             "/api/projects/tickets/events"]


@pytest.mark.parametrize("path", PROTECTED)
def test_token_required_without_header(guarded_client: TestClient, path: str) -> None:
    resp = guarded_client.get(path)
    assert_error(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer ", "Bearer s3cret-token-x",
                                    "Basic czNjcmV0LXRva2Vu", "s3cret"])
def test_token_wrong(guarded_client: TestClient, header: str) -> None:
    resp = guarded_client.get("/api/projects", headers={"Authorization": header})
    assert_error(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"] == "Bearer"
    resp = guarded_client.post("/api/projects", json={"name": "tickets"},
                               headers={"Authorization": header})
    assert_error(resp, 401, "unauthorized")
    assert project.list_all() == []


def test_token_right(guarded_client: TestClient) -> None:
    auth = {"Authorization": "Bearer s3cret-token"}
    resp = guarded_client.post("/api/projects", json={"name": "tickets"}, headers=auth)
    assert resp.status_code == 201
    resp = guarded_client.get("/api/projects", headers=auth)
    assert resp.status_code == 200
    assert [p["name"] for p in resp.json()["projects"]] == ["tickets"]
    assert guarded_client.get("/api/projects/tickets/events", headers=auth).status_code == 200


def test_token_scheme_is_case_insensitive(guarded_client: TestClient) -> None:
    resp = guarded_client.get("/api/projects", headers={"Authorization": "bearer s3cret-token"})
    assert resp.status_code == 200


def test_unknown_route_is_404_route_not_found(client: TestClient) -> None:
    assert_error(client.get("/api/no-such-route"), 404, "route_not_found")


def test_health_needs_no_token(guarded_client: TestClient) -> None:
    assert guarded_client.get("/api/health").status_code == 200


def test_token_required_but_unset_refuses_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BREWSLM_API_TOKEN", raising=False)
    client = TestClient(create_app(require_token=True))
    assert_error(client.get("/api/projects"), 401, "unauthorized")
    assert_error(client.get("/api/projects", headers={"Authorization": "Bearer "}), 401,
                 "unauthorized")


def test_token_set_but_not_required(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREWSLM_API_TOKEN", "s3cret-token")
    assert client.get("/api/projects").status_code == 200
    assert client.get("/api/projects", headers={"Authorization": "Bearer wrong"}).status_code == 200


# --- serve() and binding ------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "::"])
def test_serve_beyond_loopback_needs_a_token(host: str) -> None:
    with pytest.raises(InputError) as caught:
        serve(host, 8321)
    assert caught.value.code == "server_token_missing"
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("192.168.1.10", False),
    ("example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# --- the real server ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_server_serves_docs_and_openapi(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("brewslm")
    assert exe.is_file(), f"no brewslm executable next to {sys.executable}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen([str(exe), "server", "--host", "127.0.0.1", "--port", str(port)],
                                env=dict(os.environ), stdout=log_fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"server exited {proc.returncode}: {log.read_text()}"
            try:
                health = httpx.get(f"{base}/api/health", timeout=1)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server not ready in 20 s: {log.read_text()}"
            time.sleep(0.1)
        assert health.json()["status"] == "ok"

        docs = httpx.get(f"{base}/docs", timeout=5)
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()

        spec = httpx.get(f"{base}/openapi.json", timeout=5)
        assert spec.status_code == 200
        paths = spec.json()["paths"]
        assert "/api/projects" in paths
        assert {"get", "post"} <= set(paths["/api/projects"])
        assert "/api/projects/{name}/events" in paths

        # loopback: no token needed, and the server uses this test's BREWSLM_HOME
        created = httpx.post(f"{base}/api/projects", json={"name": "served"}, timeout=5)
        assert created.status_code == 201
        assert Path(created.json()["project"]["dir"]).is_relative_to(os.environ["BREWSLM_HOME"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
