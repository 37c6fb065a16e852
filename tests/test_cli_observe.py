"""The observability commands on the CLI: clusters, bundle, audit (why, lineage, row), doctor —
one JSON object with --json, rich tables otherwise, and the exit codes of DESIGN.md (doctor:
1 when a check fails)."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brewslm import artifacts
from brewslm.cli import app
from brewslm.stages import data

sys.path.insert(0, str(Path(__file__).parent / "observe"))  # the stand-in stages
import observe_fakes as fakes  # noqa: E402

pytestmark = pytest.mark.store
runner = CliRunner()


def call(*args: str, code: int = 0) -> dict | str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout) if "--json" in args else result.stdout


@pytest.fixture
def story(prepare_small, tmp_path):
    info = prepare_small("seen")
    rows = [r["row_id"] for r in data.dataset_rows(info, limit=2)["rows"]]
    ids = fakes.lifecycle(info, rows)
    for name in ("gone-1.jsonl", "gone-2.jsonl"):
        assert data.ingest(info, str(tmp_path / name)).status == "failed"
    return info, ids, rows


def test_help_lists_the_commands():
    text = call("--help")
    for command in ("clusters", "bundle", "audit", "doctor"):
        assert command in text
    audit_help = call("audit", "--help")
    for word in ("why", "lineage", "row", "--severity", "--artifact", "--row"):
        assert word in audit_help


def test_clusters(story):
    info, _, _ = story
    out = call("clusters", "-p", "seen", "--json")
    assert [(c["stage"], c["reason_code"], c["cause"], c["count"]) for c in out["clusters"]] == [
        ("ingest", "stage_failed", "ingest_source_not_found", 2),
        ("evaluate", "eval_gate_failed", None, 2)]
    assert call("clusters", "-p", "seen", "--json") == out  # idempotent
    text = call("clusters", "-p", "seen")
    assert "failure clusters of seen (4 error events)" in text
    assert "ingest_source_not_found" in text
    assert call("clusters", "-p", "nobody", "--json", code=2)["error"]["code"] == \
        "project_not_found"


def test_bundle(story, tmp_path):
    out = call("bundle", "-p", "seen", "-o", str(tmp_path / "s.zip"), "--json")
    assert out["path"] == str(tmp_path / "s.zip") and out["bytes"] > 0
    with zipfile.ZipFile(tmp_path / "s.zip") as zf:
        assert "manifest.json" in zf.namelist()
        assert json.loads(zf.read("manifest.json"))["project"] == "seen"
    text = call("bundle", "-p", "seen", "-o", str(tmp_path / "t.zip"))
    assert f"wrote {tmp_path / 't.zip'}" in text.replace("\n", "")
    refused = call("bundle", "-p", "seen", "-o", str(tmp_path), "--json", code=2)
    assert refused["error"]["code"] == "bundle_output_invalid"


def test_audit_search(story):
    _, ids, _ = story
    errors = call("audit", "-p", "seen", "--severity", "error", "--json")
    assert [e["reason_code"] for e in errors["events"]] == [
        "eval_gate_failed", "eval_gate_failed", "stage_failed", "stage_failed"]
    assert errors["counts"]["runs"] == 4
    by_run = call("audit", "-p", "seen", "--run", ids["forced_export_run"], "--json")
    assert [d["code"] for d in by_run["decisions"]] == ["export_forced"]
    scored = call("audit", "-p", "seen", "--code", "eval_scored", "--json")
    assert [(h["stage"], h["rows"]) for h in scored["ledger"]] == [("evaluate", 2)] * 3
    text = call("audit", "-p", "seen", "--stage", "train")
    assert "audit of seen:" in text and "decisions" in text and "│ forced" in text
    bad = call("audit", "-p", "seen", "--severity", "loud", "--json", code=2)
    assert bad["error"]["code"] == "filter_invalid"


def test_audit_why(story):
    _, ids, _ = story
    out = call("audit", "-p", "seen", "why", ids["bad_model"][:12], "--json")
    assert (out["verdict"], out["decided_by"]) == ("not promotable", ids["bad_eval"])
    assert [f["code"] for f in out["forced"]] == ["preflight_forced", "export_forced"]
    also = call("audit", "-p", "seen", "--json", "why", ids["good_train"])  # --json before
    assert also["verdict"] == "promotable"
    text = call("audit", "-p", "seen", "why", ids["good_model"])
    assert "promotable" in text and "beats_base_on_loss" in text
    dataset = data.dataset_versions(story[0])[-1]["dataset_id"]
    refused = call("audit", "-p", "seen", "why", dataset, "--json", code=2)
    assert refused["error"]["code"] == "audit_candidate_unknown"


def test_audit_lineage(story):
    info, ids, _ = story
    out = call("audit", "-p", "seen", "lineage", ids["export"][:10], "--json")
    assert [n["kind"] for n in out["nodes"]] == ["export", "model", "eval_report", "manifest",
                                                 "dataset", "snapshot", "introspection"]
    gguf = artifacts.get(info, ids["export"]).path / "model.gguf"
    assert call("audit", "-p", "seen", "lineage", str(gguf), "--json")["target"] == ids["export"]
    text = call("audit", "-p", "seen", "lineage", ids["export"])
    assert "lineage of" in text and "source:" in text and "seen.jsonl" in text
    assert "(see above)" in text  # the snapshot is reached twice (map and introspect)
    missing = call("audit", "-p", "seen", "lineage", "/no/such/file.gguf", "--json", code=2)
    assert missing["error"]["code"] == "audit_path_unknown"


def test_audit_row(story):
    _, ids, rows = story
    out = call("audit", "-p", "seen", "row", rows[0], "--json")
    assert [e["candidate_id"] for e in out["evaluations"]] == [
        ids["refused_model"], ids["good_model"], ids["bad_model"]]
    text = call("audit", "-p", "seen", "row", rows[0])
    assert "category 1" in text and "exact_match=1" in text
    assert call("audit", "-p", "seen", "row", "rnope", "--json", code=2)["error"][
        "code"] == "row_not_found"


def test_doctor(monkeypatch):
    out = call("doctor", "--json")
    assert out["counts"]["fail"] == 0 and out["status"] in ("ok", "warn")
    assert {c["name"] for c in out["checks"]} >= {"python", "libraries", "devices", "disk",
                                                  "database", "migrations", "taxonomy"}
    assert "doctor:" in call("doctor")
    monkeypatch.setenv("BREWSLM_DATABASE_URL", "sqlite:////nonexistent-dir/x/brewslm.db")
    broken = call("doctor", "--json", code=1)
    db_check = next(c for c in broken["checks"] if c["name"] == "database")
    assert (db_check["status"], db_check["code"]) == ("fail", "doctor_database_unreachable")
