"""The files of an export through the REST API: listed with their sha256, each downloadable
(streamed, nested paths too), and refused when the path leaves the export's folder (400
export_file_path_invalid), names no file of it (404 export_file_not_found), or the id is no
export (404 artifact_not_found); beyond loopback only with the token."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from brewslm import artifacts, project
from brewslm.api.app import create_app

FILES = {"model.gguf": b"GGUF" + bytes(range(256)) * 64, "README.md": b"# card\n",
         "adapter/adapter_config.json": b'{"r": 8}\n'}


def _publish(info, kind: str, files: dict[str, bytes], meta: dict) -> artifacts.ArtifactInfo:
    builder = artifacts.ArtifactBuilder(info.dir, kind)
    for rel, data in files.items():
        (builder.dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (builder.dir / rel).write_bytes(data)
    art = artifacts.publish(builder, meta)
    artifacts.register(info, art, run_id=None)
    return art


@pytest.fixture
def exported():
    """A project with one export (files and their SHA256SUMS, as the export stage writes) and
    one model artifact; (project, export, model)."""
    info = project.create("shipped", base_model="builtin:tiny")
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {rel}\n"
                   for rel, data in sorted(FILES.items()))
    export = _publish(info, "export", {**FILES, "SHA256SUMS": sums.encode()},
                      {"format": "gguf", "quant": "q8_0", "parity_passed": True})
    model = _publish(info, "model", {"weights.bin": b"\0" * 16}, {})
    return info, export, model


def test_list_and_download_every_file(exported):
    _, export, _ = exported
    client = TestClient(create_app())
    listed = client.get(f"/api/projects/shipped/exports/{export.id}/files")
    assert listed.status_code == 200
    files = {f["path"]: f for f in listed.json()["files"]}
    assert sorted(files) == sorted([*FILES, "SHA256SUMS"])
    for rel, data in FILES.items():
        assert files[rel]["sha256"] == hashlib.sha256(data).hexdigest()
        assert files[rel]["bytes"] == len(data)
        got = client.get(files[rel]["url"])
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).hexdigest() == files[rel]["sha256"]
        assert got.headers["content-type"] == "application/octet-stream"
    assert 'filename="model.gguf"' in client.get(files["model.gguf"]["url"]).headers[
        "content-disposition"]
    # SHA256SUMS is not in itself: its sha256 is computed
    sums = client.get(files["SHA256SUMS"]["url"]).content
    assert files["SHA256SUMS"]["sha256"] == hashlib.sha256(sums).hexdigest()
    # a unique prefix of the export id works as the id
    assert client.get(f"/api/projects/shipped/exports/{export.id[:10]}/files/README.md"
                      ).content == FILES["README.md"]


@pytest.mark.parametrize("path", ["..%2Fartifact.json", "adapter%2F..%2F..%2Fartifact.json",
                                  "%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                                  "link-out", "a%00b"])
def test_a_path_outside_the_export_is_refused(exported, path):
    _, export, _ = exported
    (export.path / "link-out").symlink_to(export.path.parent / "artifact.json")
    got = TestClient(create_app()).get(f"/api/projects/shipped/exports/{export.id}/files/{path}")
    assert got.status_code == 400, got.text
    assert got.json()["error"]["code"] == "export_file_path_invalid"


def test_unknown_files_exports_and_non_exports_are_404(exported):
    _, export, model = exported
    client = TestClient(create_app())
    for url, code in (
            (f"/api/projects/shipped/exports/{export.id}/files/missing.bin",
             "export_file_not_found"),
            (f"/api/projects/shipped/exports/{export.id}/files/adapter",  # a folder
             "export_file_not_found"),
            (f"/api/projects/shipped/exports/{'f' * 64}/files/README.md", "artifact_not_found"),
            (f"/api/projects/shipped/exports/{model.id}/files/weights.bin",
             "artifact_not_found"),
            (f"/api/projects/shipped/exports/{model.id}/files", "artifact_not_found")):
        got = client.get(url)
        assert got.status_code == 404, url
        assert got.json()["error"]["code"] == code, url
    assert client.get("/api/projects/nope/exports/abc/files/x").json()["error"]["code"] \
        == "project_not_found"


def test_downloads_need_the_token_beyond_loopback(exported, monkeypatch):
    _, export, _ = exported
    monkeypatch.setenv("BREWSLM_API_TOKEN", "s3cret")
    client = TestClient(create_app(require_token=True))
    url = f"/api/projects/shipped/exports/{export.id}/files/model.gguf"
    refused = client.get(url)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    allowed = client.get(url, headers={"Authorization": "Bearer s3cret"})
    assert allowed.status_code == 200 and allowed.content == FILES["model.gguf"]
