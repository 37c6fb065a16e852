"""Stage 01 through the runner: snapshots, malformed rows in the ledger, reuse by content,
clean refusals with nothing written."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from brewslm import artifacts, project, rows
from brewslm.events import query
from brewslm.stages import data
from brewslm.stages.ingest import read_records

pytestmark = pytest.mark.store


@pytest.fixture
def proj():
    return project.create("ing")


def _jsonl(path, lines: list[str]) -> str:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    return str(path)


GOOD = [json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) for i in range(5)]


def test_snapshot_holds_records_and_ledger_holds_the_malformed(proj, tmp_path):
    src = _jsonl(tmp_path / "d.jsonl", GOOD[:2] + ["{not json", "", "[1, 2]"] + GOOD[2:])
    result = data.ingest(proj, src)
    out = result.to_dict()
    assert out["status"] == "succeeded" and len(out["snapshot_id"]) == 64
    assert out["counts"] == {"in": 7, "out": 5, "rejected": 2}
    assert out["rejections_by_reason"] == {"malformed_json": 1, "not_a_record": 1}
    snap = artifacts.get(proj, out["snapshot_id"])
    records = list(read_records(snap.path))
    assert [r[3]["prompt"] for r in records] == ["p0", "p1", "p2", "p3", "p4"]
    assert [r[2] for r in records] == ["line 1", "line 2", "line 6", "line 7", "line 8"]
    assert "snapshot_created" in [e["reason_code"] for e in out["events"]]
    (stage,) = rows.stats(proj)["stages"]
    assert (stage["in"], stage["out"], stage["dropped"], stage["flagged"]) == (7, 5, 2, False)


def test_trace_tells_a_malformed_rows_story_from_file_and_line(proj, tmp_path):
    src = _jsonl(tmp_path / "d.jsonl", GOOD[:2] + ["{not json"])
    data.ingest(proj, src)
    ledger_file = next((proj.dir / "ledger" / "ingest").glob("*.parquet"))
    dropped = [r for r in pq.read_table(ledger_file).to_pylist() if r["outcome"] == "dropped"]
    trace = rows.trace(proj, dropped[0]["row_id"])
    (step,) = trace["steps"]
    assert (step["source"], step["position"], step["reason_code"]) == (
        "d.jsonl", "line 3", "malformed_json")
    assert trace["final"] == "dropped at ingest (malformed_json)"


def test_same_content_gives_same_snapshot_and_reuses_the_run(proj, tmp_path):
    first = data.ingest(proj, _jsonl(tmp_path / "d.jsonl", GOOD))
    again = data.ingest(proj, str(tmp_path / "d.jsonl"))
    assert again.status == "reused" and again.result["snapshot_id"] == first.result[
        "snapshot_id"]
    other = project.create("ing2")
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    copy = data.ingest(other, _jsonl(elsewhere / "d.jsonl", GOOD))
    assert copy.result["snapshot_id"] == first.result["snapshot_id"]
    changed = data.ingest(proj, _jsonl(tmp_path / "d.jsonl", GOOD[:4]))
    assert changed.status == "succeeded"
    assert changed.result["snapshot_id"] != first.result["snapshot_id"]


def test_row_ids_are_stable_across_reingest(proj, tmp_path):
    src = _jsonl(tmp_path / "d.jsonl", GOOD)
    ids = [r[0] for r in read_records(artifacts.get(
        proj, data.ingest(proj, src).result["snapshot_id"]).path)]
    other = project.create("ing3")
    again = [r[0] for r in read_records(artifacts.get(
        other, data.ingest(other, src).result["snapshot_id"]).path)]
    assert ids == again and len(set(ids)) == 5


@pytest.mark.parametrize("content,code", [
    (b"", "ingest_empty_source"),
    (b"\x00\x01\x02\xff" * 64, "ingest_not_a_format"),
])
def test_unreadable_sources_fail_cleanly_with_exit_2(proj, tmp_path, content, code):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    result = data.ingest(proj, str(path))
    assert (result.status, result.exit_code, result.error["code"]) == ("failed", 2, code)
    assert artifacts.list_artifacts(proj) == []
    assert not list((proj.dir / "ledger").rglob("*.parquet*"))
    failed = query.events(proj, query.make_filter(code="stage_failed"))
    assert failed[0]["payload"]["cause"] == code


def test_json_scalar_file_and_missing_path(proj, tmp_path):
    scalar = tmp_path / "one.json"
    scalar.write_text("42")
    assert data.ingest(proj, str(scalar)).error["code"] == "ingest_not_a_format"
    assert data.ingest(proj, str(tmp_path / "nope.jsonl")).error["code"] == (
        "ingest_source_not_found")
