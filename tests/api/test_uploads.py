"""Uploads: a data file sent as multipart lands in the project's uploads/ folder under a safe
name, ready for ingest by path; traversal names, empty files, oversize files and bodies that
are not multipart are refused with the one error body shape, and nothing is left behind."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from brewslm import project
from brewslm.api.app import create_app
from brewslm.api.uploads import safe_name
from brewslm.errors import InputError
from brewslm.stages import data as stages

pytestmark = pytest.mark.store

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "brewslm" / "samples" / "tickets.jsonl"
URL = "/api/projects/up/uploads"


@pytest.fixture
def client() -> TestClient:
    project.create("up", base_model="builtin:tiny")
    return TestClient(create_app())


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an error with this status and reason code, in the one body shape."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    return body["error"]


def uploads_folder() -> Path:
    return project.get("up").dir / "uploads"


def send(client: TestClient, filename: str, data: bytes):
    return client.post(URL, files={"file": (filename, data, "application/octet-stream")})


def test_an_upload_is_stored_hashed_and_ingestible_by_its_path(client):
    data = SAMPLE.read_bytes()
    resp = send(client, "tickets.jsonl", data)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body == {"name": "tickets.jsonl", "path": str(uploads_folder() / "tickets.jsonl"),
                    "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert Path(body["path"]).read_bytes() == data
    result = stages.ingest(project.get("up"), body["path"])
    assert result.to_dict()["counts"] == {"in": 400, "out": 399, "rejected": 1}
    listed = client.get(URL).json()["uploads"]
    assert [(u["name"], u["bytes"], u["path"]) for u in listed] == [
        ("tickets.jsonl", len(data), body["path"])]


def test_an_upload_never_replaces_other_bytes(client):
    first = send(client, "rows.csv", b"a,b\n1,2\n").json()
    again = send(client, "rows.csv", b"a,b\n1,2\n").json()
    other = send(client, "rows.csv", b"a,b\n3,4\n").json()
    assert again["path"] == first["path"]
    sha = hashlib.sha256(b"a,b\n3,4\n").hexdigest()
    assert other["name"] == f"rows-{sha[:12]}.csv"
    assert Path(first["path"]).read_bytes() == b"a,b\n1,2\n"
    assert sorted(p.name for p in uploads_folder().iterdir()) == sorted(["rows.csv", other["name"]])


@pytest.mark.parametrize("filename, stored", [
    ("../../evil.jsonl", "evil.jsonl"),
    ("..\\..\\windows.csv", "windows.csv"),
    ("/etc/passwd", "passwd"),
    (".hidden.jsonl", "hidden.jsonl"),
    ("my data (1).jsonl", "my_data_1_.jsonl"),
])
def test_a_path_in_the_file_name_is_dropped(client, tmp_path, filename, stored):
    resp = send(client, filename, b'{"a": 1}\n')
    assert resp.status_code == 201, resp.text
    path = Path(resp.json()["path"])
    assert resp.json()["name"] == stored
    assert path.parent == uploads_folder() and path.name == stored
    assert not (uploads_folder().parent.parent / "evil.jsonl").exists()


@pytest.mark.parametrize("filename", ["..", "...", "/", "../"])
def test_a_file_name_with_nothing_usable_is_refused(client, filename):
    err = assert_error(send(client, filename, b"x\n"), 400, "upload_name_invalid")
    assert "file name" in err["message"]
    assert list(uploads_folder().iterdir()) == []


def test_an_empty_file_is_refused(client):
    err = assert_error(send(client, "empty.jsonl", b""), 400, "upload_empty")
    assert "empty" in err["message"] and err["details"]["name"] == "empty.jsonl"
    assert list(uploads_folder().iterdir()) == []


def test_a_file_over_the_limit_is_refused_while_streaming(client, monkeypatch):
    monkeypatch.setenv("BREWSLM_UPLOAD_MAX_BYTES", "100")
    assert send(client, "ok.jsonl", b"x" * 100).status_code == 201
    err = assert_error(send(client, "big.jsonl", b"x" * 101), 413, "upload_too_large")
    assert err["details"] == {"limit_bytes": 100}
    assert "upload limit of 100 bytes" in err["message"]
    assert [p.name for p in uploads_folder().iterdir()] == ["ok.jsonl"]


def test_a_body_declared_over_the_limit_is_refused_before_reading(client, monkeypatch):
    monkeypatch.setenv("BREWSLM_UPLOAD_MAX_BYTES", "100")
    err = assert_error(send(client, "huge.jsonl", b"x" * 200_000), 413, "upload_too_large")
    assert err["details"] == {"limit_bytes": 100}
    assert not uploads_folder().exists()


def test_a_body_that_is_not_a_multipart_file_is_refused(client):
    assert_error(client.post(URL, json={"file": "x"}), 400, "request_invalid")
    no_file = client.post(URL, data={"other": "field"}, files={"note": ("a.txt", b"x")})
    err = assert_error(no_file, 400, "request_invalid")
    assert "field named 'file'" in err["message"]


def test_an_unknown_project_is_404(client):
    resp = client.post("/api/projects/nope/uploads", files={"file": ("a.jsonl", b"x\n")})
    assert_error(resp, 404, "project_not_found")
    assert_error(client.get("/api/projects/nope/uploads"), 404, "project_not_found")


def test_uploads_need_the_token_when_the_server_requires_one(client, monkeypatch):
    monkeypatch.setenv("BREWSLM_API_TOKEN", "s3cret")
    guarded = TestClient(create_app(require_token=True))
    assert_error(guarded.post(URL, files={"file": ("a.jsonl", b"x\n")}), 401, "unauthorized")
    assert_error(guarded.get(URL), 401, "unauthorized")
    ok = guarded.post(URL, files={"file": ("a.jsonl", b"x\n")},
                      headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 201


def test_safe_name_keeps_a_long_names_extension():
    name = safe_name("x" * 300 + ".jsonl")
    assert len(name) == 120 and name.endswith(".jsonl")
    with pytest.raises(InputError):
        safe_name(None)
