"""Stage 05 through the runner: every drop and change has its reason in the ledger, duplicates
name the row they matched, PII policies, chunking into child rows, the health gate."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest

from brewslm import project, rows
from brewslm.events import query
from brewslm.stages import data

pytestmark = pytest.mark.store

WORDS = ["invoice", "refund", "login", "export", "sync", "parcel", "address", "password",
         "card", "order", "app", "page", "screen", "error", "team", "billing", "account",
         "delivery", "tracking", "profile", "settings", "report", "upload", "download",
         "printer", "laptop", "phone", "email", "code", "warranty"]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


_rng = random.Random(5)
# Distinct rows (random word sequences): templated rows would be near-duplicates of each other.
PC = [{"prompt": _sentence(_rng, 12), "completion": _sentence(_rng, 14)} for _ in range(20)]


def _project(tmp_path, records, name="cl", **settings):
    info = project.create(name, base_model="builtin:tiny")
    for key, value in settings.items():
        info = project.set_setting(name, key, value)
    src = tmp_path / f"{name}.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert data.ingest(info, str(src)).status == "succeeded"
    assert data.map_rows(info).status == "succeeded"
    return info


def _ledger(info, stage):
    (path,) = (info.dir / "ledger" / stage).glob("*.parquet")
    return {r["row_id"]: r for r in pq.read_table(path).to_pylist()}


def _map_ids(info):
    return [rid for rid, r in _ledger(info, "map").items() if r["outcome"] != "dropped"]


def test_duplicates_name_the_kept_row_and_pii_is_redacted(tmp_path):
    records = PC + [PC[3], {**PC[5], "completion": PC[5]["completion"] + " "},
                    {"prompt": "Email me at jane.doe@example.com please",
                     "completion": "I have written to jane.doe@example.com with the steps."}]
    info = _project(tmp_path, records)
    result = data.clean(info).to_dict()
    assert result["status"] == "succeeded"
    assert result["counts"] == {"in": 23, "out": 21, "rejected": 2}
    assert result["rejections_by_reason"] == {"exact_duplicate": 2}
    assert result["notes_by_reason"] == {"pii_found": 1}
    ids = _map_ids(info)
    ledger = _ledger(info, "clean")
    dup = ledger[ids[20]]
    assert (dup["outcome"], dup["reason_code"]) == ("dropped", "exact_duplicate")
    assert json.loads(dup["detail"]) == {"duplicate_of": ids[3]}
    pii = ledger[ids[22]]
    assert (pii["outcome"], pii["reason_code"]) == ("changed", "pii_found")
    assert json.loads(pii["detail"]) == {"redacted": {"EMAIL": 2}}
    shown = data.dataset_rows(info, limit=100)["rows"]
    assert "<EMAIL>" in shown[-1]["messages"][0]["content"]
    assert "jane.doe" not in json.dumps(shown)
    assert result["health"]["signals"]["duplicates"]["status"] == "ok"
    assert not rows.stats(info)["flagged"]
    trace = rows.trace(info, ids[20])
    assert [s["stage"] for s in trace["steps"]] == ["ingest", "map", "clean"]


def test_quality_codes_reach_the_ledger(tmp_path):
    records = PC + [{"prompt": "Say it back", "completion": "Say it back"},
                    {"prompt": "Answer?", "completion": "   "}]
    info = _project(tmp_path, records, name="q")
    result = data.clean(info).to_dict()
    assert result["rejections_by_reason"]["answer_equals_prompt"] == 1
    assert sum(result["rejections_by_reason"].values()) == result["counts"]["rejected"]


def test_pii_block_policy_blocks_with_exit_3(tmp_path):
    rng = random.Random(3)
    records = [{"prompt": f"My card is 4111 1111 1111 1111. {_sentence(rng, 10)}",
                "completion": _sentence(rng, 12)} for _ in range(10)]
    info = _project(tmp_path, records, name="pii")
    result = data.clean(info, pii="block")
    assert (result.status, result.exit_code, result.error["code"]) == ("blocked", 3,
                                                                      "pii_blocked")
    assert len(data.dataset_versions(info)) == 1  # nothing written
    warned = data.clean(info, pii="warn").to_dict()
    assert warned["status"] == "succeeded"
    assert warned["rejections_by_reason"] == {}
    assert warned["notes_by_reason"] == {"pii_found": 10}
    assert "4111 1111" in json.dumps(data.dataset_rows(info)["rows"])


def test_health_block_needs_force_which_is_recorded(tmp_path):
    records = PC[:4] * 5  # 75% duplicates
    info = _project(tmp_path, records, name="dups")
    blocked = data.clean(info)
    assert (blocked.status, blocked.error["code"]) == ("blocked", "health_blocked")
    assert blocked.error["details"]["health"]["signals"]["duplicates"]["status"] == "block"
    forced = data.clean(info, force=True).to_dict()
    assert forced["status"] == "succeeded" and forced["counts"]["out"] == 4
    event = query.events(info, query.make_filter(code="health_forced"))[0]
    assert "duplicates" in event["summary"]


def test_long_documents_become_child_rows(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    rng = random.Random(11)
    long_text = " ".join(_sentence(rng, 12) for _ in range(150))
    (folder / "long.md").write_text(long_text)
    (folder / "short.md").write_text("A short document about billing questions and refunds.")
    info = project.create("chunks", base_model="builtin:tiny")
    project.set_setting("chunks", "clean", {"chunk_max_tokens": 256, "chunk_overlap": 32})
    info = project.get("chunks")
    data.ingest(info, str(folder))
    data.map_rows(info)
    result = data.clean(info).to_dict()
    assert result["status"] == "succeeded", result.get("error")
    ledger = _ledger(info, "clean")
    parents = [r for r in ledger.values() if r["reason_code"] == "split_into_chunks"
               and r["outcome"] == "changed"]
    children = [r for r in ledger.values() if r["outcome"] == "added"]
    assert len(parents) == 1 and len(children) >= 3
    assert {c["parent_row_id"] for c in children} == {parents[0]["row_id"]}
    assert result["counts"] == {"in": 2, "out": 2, "rejected": 0}
    assert result["rows_written"] == 1 + len(children)
    trace = rows.trace(info, parents[0]["row_id"])
    assert sum(1 for s in trace["steps"] if s.get("child_of")) == len(children)
