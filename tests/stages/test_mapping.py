"""Stages 02-04 through the runner: introspection proposes, the dry-run writes nothing and
counts exactly what the commit does, the commit accounts for every row, plugins load or fail
alone."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from brewslm import artifacts, project, rows
from brewslm.errors import InputError
from brewslm.events import query
from brewslm.stages import data

pytestmark = pytest.mark.store

ALPACA = [{"instruction": f"Say {i}", "input": "", "output": f"{i}"} for i in range(8)]
ALPACA += [{"instruction": "Say x"}, {"instruction": "", "output": "y"},
           {"instruction": 5, "output": "z"}]


@pytest.fixture
def proj(tmp_path):
    info = project.create("map")
    src = tmp_path / "alpaca.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in ALPACA) + "\n")
    assert data.ingest(info, str(src)).status == "succeeded"
    return info


def test_introspect_proposes_alpaca(proj):
    result = data.introspect(proj)
    out = result.to_dict()
    assert out["proposal"]["mapper"] == "alpaca"
    assert out["proposal"]["field_map"]["instruction"] == "instruction"
    assert out["proposal"]["confidence"] >= 0.8 and out["proposal"]["auto_pick"]
    assert {f["name"] for f in out["fields"]} == {"instruction", "input", "output"}
    assert not (proj.dir / "ledger" / "introspect").exists()  # reads, never writes rows


def test_dry_run_writes_nothing_and_counts_like_the_commit(proj):
    dry = data.map_rows(proj, dry_run=True).to_dict()
    assert dry["status"] == "succeeded" and dry["written"] is False
    assert dry["counts"] == {"in": 11, "out": 8, "rejected": 3}
    assert dry["rejections_by_reason"] == {"empty_text": 1, "missing_field": 1, "wrong_type": 1}
    assert dry["examples"]["missing_field"]["detail"] == "missing output<-output"
    assert dry["preview"][0]["after"]["messages"][-1] == {"role": "assistant", "content": "0"}
    assert data.dataset_versions(proj) == []
    assert [a.kind for a in artifacts.list_artifacts(proj)] == ["snapshot", "introspection"]
    commit = data.map_rows(proj).to_dict()
    assert commit["counts"] == dry["counts"]
    assert commit["rejections_by_reason"] == dry["rejections_by_reason"]


def test_commit_writes_a_version_the_ledger_and_a_reusable_mapping(proj):
    out = data.map_rows(proj).to_dict()
    assert out["status"] == "succeeded"
    (version,) = data.dataset_versions(proj)
    assert version["rows"] == 8 and version["mapper"] == "alpaca"
    shown = data.dataset_rows(proj, limit=3)
    assert shown["shown"] == 3 and shown["rows"][0]["task"] == "sft"
    stats = {s["stage"]: s for s in rows.stats(proj)["stages"]}
    assert (stats["map"]["in"], stats["map"]["out"], stats["map"]["dropped"]) == (11, 8, 3)
    assert not rows.stats(proj)["flagged"]
    rejected = next(r for r in _ledger(proj, "map") if r["reason_code"] == "wrong_type")
    trace = rows.trace(proj, rejected["row_id"])
    assert [(s["stage"], s["outcome"]) for s in trace["steps"]] == [
        ("ingest", "kept"), ("map", "dropped")]
    assert trace["steps"][0]["position"] == "line 11"
    again = data.map_rows(proj, mapping=out["mapping_id"])
    assert again.status == "reused" or again.status == "succeeded"
    assert again.to_dict()["counts"] == out["counts"]


def _ledger(proj, stage):
    import pyarrow.parquet as pq

    (path,) = (proj.dir / "ledger" / stage).glob("*.parquet")
    return pq.read_table(path).to_pylist()


def test_low_confidence_is_refused_without_force(tmp_path):
    info = project.create("vague")
    src = tmp_path / "odd.jsonl"
    src.write_text("\n".join(json.dumps({"a": i, "b": [i]}) for i in range(10)) + "\n")
    data.ingest(info, str(src))
    result = data.map_rows(info, dry_run=True)
    assert (result.status, result.exit_code, result.error["code"]) == (
        "failed", 2, "mapping_low_confidence")
    intro = query.events(info, query.make_filter(stage="introspect", severity="warning"))
    assert intro and intro[0]["reason_code"] in {"introspect_low_confidence",
                                                 "introspect_no_shape"}


def test_explicit_mapper_and_field_map_override(proj):
    out = data.map_rows(proj, dry_run=True, mapper="prompt_completion",
                        field_map='{"prompt": "instruction", "completion": "output"}').to_dict()
    assert out["mapping"]["mapper"] == "prompt_completion" and out["counts"]["out"] == 8
    bad = data.map_rows(proj, dry_run=True, mapper="nope")
    assert bad.error["code"] == "mapper_unknown" and bad.exit_code == 2
    with pytest.raises(InputError) as exc:
        data.map_rows(proj, dry_run=True, mapper="alpaca", field_map="{not json")
    assert exc.value.code == "field_map_invalid"
    bad_slot = data.map_rows(proj, dry_run=True, mapper="alpaca",
                             field_map='{"instructions": "instruction"}')
    assert bad_slot.error["code"] == "field_map_invalid"


def test_a_broken_plugin_does_not_block_a_good_one(proj, tmp_path, monkeypatch):
    (tmp_path / "good_plugin.py").write_text(textwrap.dedent('''
        class Shout:
            id, description = "shout", "upper-cases the output"
            slots, required = ("instruction", "output"), ("instruction", "output")
            def map(self, record, field_map):
                out = record.get(field_map["output"])
                if not isinstance(out, str):
                    return None, "missing_field"
                return {"task": "sft", "messages": [
                    {"role": "user", "content": str(record.get(field_map["instruction"]))},
                    {"role": "assistant", "content": out.upper()}],
                    "chosen": None, "rejected": None, "text": None, "tools": None,
                    "meta": {}}, None
        MAPPERS = [Shout()]
    '''))
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('plugin is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    proj = project.set_setting(proj.name, "mapper_plugins", ["good_plugin"])  # from settings
    result = data.map_rows(proj, dry_run=True, mapper="shout",
                           field_map='{"instruction": "instruction", "output": "output"}',
                           plugins=["broken_plugin"]).to_dict()
    assert result["status"] == "succeeded"
    assert result["preview"][0]["after"]["messages"][1]["content"] == "0"
    failed = query.events(proj, query.make_filter(code="extension_load_failed"))
    assert len(failed) == 1 and "broken_plugin" in failed[0]["summary"]
    sys.modules.pop("good_plugin", None)


def test_map_without_a_snapshot():
    with pytest.raises(InputError) as exc:
        data.map_rows(project.create("empty"), dry_run=True)
    assert exc.value.code == "snapshot_missing"
