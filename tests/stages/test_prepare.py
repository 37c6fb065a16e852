"""Stage 06 through the runner: manifest byte-identical for the same inputs, splits that do
not leak near-duplicates, the ledger's split/truncation/drop per row, and the histogram."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from brewslm import artifacts, project, rows
from brewslm.events import query
from brewslm.stages import data
from brewslm.stages.prepare import read_split

pytestmark = pytest.mark.store

RECORDS = [{"text": f"Ticket {i}: the {w} is broken again",
            "label": ["billing", "technical"][i % 2]}
           for i, w in enumerate(["app", "page", "invoice", "export", "login", "sync"] * 5)]


def _project(tmp_path, name="prep", records=RECORDS):
    info = project.create(name, base_model="builtin:tiny")
    (tmp_path / name).mkdir()
    src = tmp_path / name / "data.jsonl"  # one file name: row ids depend on it
    src.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    data.ingest(info, str(src))
    assert data.map_rows(info).status == "succeeded"
    return info


def _manifest(info, result):
    art = artifacts.get(info, result["manifest_id"])
    return art, json.loads((art.path / "manifest.json").read_text())


def test_manifest_splits_and_ledger(tmp_path):
    info = _project(tmp_path)
    result = data.prepare(info, eval_fraction=0.2, seed=3).to_dict()
    assert result["status"] == "succeeded", result.get("error")
    assert result["splits"]["train"] + result["splits"]["eval"] == 30
    assert result["counts"] == {"in": 30, "out": 30, "rejected": 0}
    art, manifest = _manifest(info, result)
    assert manifest["tokenizer_hash"] and manifest["template_hash"]
    assert manifest["policies"]["seed"] == 3
    assert set(manifest["splits"]["train"]["row_ids"]).isdisjoint(
        manifest["splits"]["eval"]["row_ids"])
    assert (art.path / "token_lengths.png").stat().st_size > 0
    assert "<img" in (art.path / "token_lengths.html").read_text()
    (path,) = (info.dir / "ledger" / "prepare").glob("*.parquet")
    ledger = pq.read_table(path).to_pylist()
    assert {r["split"] for r in ledger} == {"train", "eval"}
    first = next(read_split(art.path, "train"))
    assert len(first["input_ids"]) == len(first["labels"]) == first["n_tokens"]
    assert 0 < first["n_trainable"] < first["n_tokens"]
    assert [e["reason_code"] for e in result["events"]].count("manifest_created") == 1
    assert not rows.stats(info)["flagged"]


def test_same_inputs_give_the_same_manifest_hash_byte_for_byte(tmp_path):
    first = data.prepare(_project(tmp_path, "a"), seed=1).to_dict()
    second = data.prepare(_project(tmp_path, "b"), seed=1).to_dict()
    assert first["manifest_hash"] == second["manifest_hash"]
    assert first["manifest_id"] == second["manifest_id"]  # the whole artifact, byte for byte
    other_seed = data.prepare(_project(tmp_path, "c"), seed=2).to_dict()
    assert other_seed["manifest_hash"] != first["manifest_hash"]


def test_over_long_rows_are_dropped_or_truncated_and_counted(tmp_path):
    records = [{"prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(10)]
    records.append({"prompt": "Tell me a long story.", "completion": "once upon a time " * 100})
    info = _project(tmp_path, "long", records)
    dropped = data.prepare(info, max_tokens=64).to_dict()
    assert dropped["rejections_by_reason"] == {"too_many_tokens": 1}
    truncated = data.prepare(info, max_tokens=64, truncation="truncate").to_dict()
    assert truncated["counts"]["rejected"] == 0
    (path,) = [p for p in (info.dir / "ledger" / "prepare").glob("*.parquet")
               if p.stem == truncated["run_id"]]
    cut = [r for r in pq.read_table(path).to_pylist() if r["outcome"] == "changed"]
    assert len(cut) == 1 and cut[0]["truncated_tokens"] > 0


def test_stratified_split_keeps_label_shares(tmp_path):
    info = _project(tmp_path, "strat")
    result = data.prepare(info, eval_fraction=0.2, stratify_by="label").to_dict()
    _, manifest = _manifest(info, result)
    eval_ids = set(manifest["splits"]["eval"]["row_ids"])
    labels = {r["row_id"]: r["meta"]["label"]
              for r in data.dataset_rows(info, limit=100)["rows"]}
    eval_labels = [labels[r] for r in eval_ids]
    assert eval_labels.count("billing") == eval_labels.count("technical")


def test_prepare_needs_a_tokenizer(tmp_path):
    info = project.create("notok")
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps({"prompt": "a b", "completion": "c d"}) + "\n")
    data.ingest(info, str(src))
    data.map_rows(info)
    result = data.prepare(info)
    assert (result.status, result.exit_code, result.error["code"]) == (
        "failed", 2, "tokenizer_unavailable")
    assert query.events(info, query.make_filter(code="stage_failed"))


def test_eval_much_longer_than_train_warns():
    from brewslm.stages.prepare import PrepareStage

    emitted = []

    class Ctx:
        def emit(self, code, summary, **payload):
            emitted.append((code, payload))

    def manifest(train_p95, eval_p95):
        return {"splits": {"train": {"tokens": {"p95": train_p95}},
                           "eval": {"tokens": {"p95": eval_p95}}}}

    PrepareStage()._warn_if_eval_longer(Ctx(), manifest(100, 130))
    assert emitted == []
    PrepareStage()._warn_if_eval_longer(Ctx(), manifest(100, 131))
    assert emitted == [("eval_longer_than_train", {"train_p95": 100, "eval_p95": 131})]
