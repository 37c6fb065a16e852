"""The audit explorer: `why` a model was promoted or refused, `lineage` back to the source file,
a row's story with its eval results, and the filtered search over events, runs, ledger and
decisions.

Most tests run a whole lineage through the real runner with stand-in train / evaluate / export
stages (observe_fakes.py, milliseconds); one runs the real train and evaluate (~10 s) so that
the stand-ins cannot drift from what those stages record.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import observe_fakes as fakes
import pytest

from brewslm import artifacts
from brewslm.errors import InputError, NotFoundError
from brewslm.events import emit_event
from brewslm.observe import audit, lineage, why
from brewslm.stages import data

pytestmark = pytest.mark.store


@pytest.fixture
def small(prepare_small):
    return prepare_small("audited")


@pytest.fixture
def row_ids(small):
    return [r["row_id"] for r in data.dataset_rows(small, limit=2)["rows"]]


@pytest.fixture
def story(small, row_ids):
    return fakes.lifecycle(small, row_ids)


def kinds(traced):
    return [n["kind"] for n in traced["nodes"]]


# --- the real stages ------------------------------------------------------------------------
def test_real_train_and_evaluate_answer_why_lineage_and_row(small, tmp_path):
    from brewslm.stages.evaluate import evaluate
    from brewslm.stages.train import train

    trained = train(small, overrides=["max_steps=2", "logging_every=1"])
    assert trained.status == "succeeded", trained.error
    judged = evaluate(small, pack="fast", overrides=["limit=3", "generation.max_new_tokens=4"])
    assert judged.status in ("succeeded", "blocked"), judged.error
    res = judged.result

    answer = why.explain(small, trained.run_id)
    assert answer["candidate_id"] == res["candidate_id"] == trained.outputs["model"]["id"]
    assert answer["training_run"] == trained.run_id
    assert answer["decided_by"] == judged.run_id
    assert answer["verdict"] == ("promotable" if res["promotable"] else "not promotable")
    (seen,) = answer["evaluations"]
    assert seen["promotable"] is res["promotable"]
    assert seen["required_failed"] == res["required_failed"]
    assert [(g["id"], g["passed"], g["evidence"]) for g in seen["gates"]] == [
        (g["id"], g["passed"], g["evidence"]) for g in res["gates"]]
    assert seen["report_id"] == res["report_id"]
    assert answer["forced"] == []

    traced = lineage.trace(small, res["report_id"][:12])
    assert kinds(traced) == ["eval_report", "manifest", "model", "dataset", "snapshot",
                             "introspection"]
    (source,) = traced["sources"]
    src = Path(source["source"])
    assert src.name == "audited.jsonl"
    assert source["files"][0]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    model_file = next(p for p in Path(traced["nodes"][2]["path"]).rglob("*") if p.is_file())
    assert lineage.trace(small, str(model_file))["target"] == res["candidate_id"]

    scored = audit.search(small, audit.make_query(code="eval_scored"))
    (hits,) = scored["ledger"]
    assert (hits["run_id"], hits["rows"], len(hits["row_ids"])) == (judged.run_id, 3, 3)
    row = audit.row_story(small, hits["row_ids"][0])
    (ev,) = row["evaluations"]
    step = row["steps"][-1]
    assert step["reason_code"] == "eval_scored"
    assert (ev["run_id"], ev["candidate_id"]) == (judged.run_id, res["candidate_id"])
    assert ev["base"] == step["detail"]["base"] and ev["candidate"] == step["detail"]["candidate"]
    assert set(ev["candidate"]["scores"]) >= {"exact_match", "token_f1"}


# --- why ----------------------------------------------------------------------------------------
def test_why_a_promoted_model(small, story):
    answer = why.explain(small, story["good_model"][:10])
    assert answer["candidate_id"] == story["good_model"]
    assert answer["training_run"] == story["good_train"]
    assert (answer["verdict"], answer["decided_by"]) == ("promotable", story["good_eval"])
    assert answer["forced"] == []
    assert [(r["stage"], r["run_id"]) for r in answer["used_by"]] == [
        ("export", story["export_run"])]
    (gate,) = answer["evaluations"][0]["gates"]
    assert (gate["id"], gate["required"], gate["passed"], gate["value"], gate["base_value"]) == (
        "beats_base_on_loss", True, True, 1.0, 2.0)
    assert answer["explanation"][0].endswith("found it PROMOTABLE: every required gate passed.")


def test_why_a_refused_model_that_was_forced_through(small, story):
    answer = why.explain(small, story["bad_model"])
    assert (answer["verdict"], answer["decided_by"]) == ("not promotable", story["bad_eval"])
    assert answer["evaluations"][0]["required_failed"] == ["beats_base_on_loss"]
    assert answer["evaluations"][0]["error_code"] == "eval_not_promotable"
    assert [(f["code"], f["run_id"]) for f in answer["forced"]] == [
        ("preflight_forced", story["bad_train"]), ("export_forced", story["forced_export_run"])]
    assert all(f["by"] and " pid " in f["by"] for f in answer["forced"])
    assert answer["forced"][1]["payload"] == {"overridden": "export_not_promotable",
                                              "by": "tester"}
    assert sum(line.startswith("forced: ") for line in answer["explanation"]) == 2


def test_why_accepts_runs_and_artifacts_made_from_the_model(small, story):
    assert why.explain(small, story["good_train"])["candidate_id"] == story["good_model"]
    assert why.explain(small, story["good_eval"])["candidate_id"] == story["good_model"]
    assert why.explain(small, story["good_report"])["candidate_id"] == story["good_model"]
    assert why.explain(small, story["forced_export"])["candidate_id"] == story["bad_model"]
    refused = why.explain(small, story["refused_model"])
    assert refused["verdict"] == "not promotable" and refused["used_by"] == []


def test_why_refuses_what_is_not_a_model(small, story):
    dataset = data.dataset_versions(small)[-1]["dataset_id"]
    with pytest.raises(NotFoundError) as caught:
        why.explain(small, dataset)
    assert caught.value.code == "audit_candidate_unknown"
    with pytest.raises(NotFoundError) as caught:
        why.explain(small, "run-0000000000000000")
    assert caught.value.code == "run_not_found"
    with pytest.raises(NotFoundError) as caught:
        why.explain(small, "zzzz")
    assert caught.value.code == "artifact_not_found"


def test_a_model_never_evaluated(small):
    model = fakes.train(small, "lonely").outputs["model"]["id"]
    answer = why.explain(small, model)
    assert (answer["verdict"], answer["decided_by"], answer["evaluations"]) == (
        "not evaluated", None, [])
    assert answer["explanation"] == [f"model {model[:12]} has never been evaluated."]


# --- lineage --------------------------------------------------------------------------------
def test_lineage_of_an_export_back_to_the_source_file(small, story):
    traced = lineage.trace(small, story["forced_export"])
    assert kinds(traced) == ["export", "model", "eval_report", "manifest", "dataset",
                             "snapshot", "introspection"]
    assert len(traced["edges"]) == 9  # map reads the snapshot directly and via introspection
    assert {(e["slot"], e["to"]) for e in traced["edges"] if e["from"] == story["bad_model"]} == {
        ("model", story["forced_export"]),
        ("model", traced["nodes"][2]["id"])}
    assert [n["run"]["stage"] for n in traced["nodes"]] == [
        "export", "train", "evaluate", "prepare", "map", "ingest", "introspect"]
    assert traced["nodes"][1]["facts"] == {"final_loss": 1.25, "steps": 2, "simulated": False}
    (source,) = traced["sources"]
    assert Path(source["source"]).name == "audited.jsonl"
    assert [f["name"] for f in source["files"]] == ["audited.jsonl"]
    assert traced["used_by"] == []


def test_lineage_accepts_a_file_inside_an_artifact_or_an_exported_copy(small, story, tmp_path):
    export = artifacts.get(small, story["export"])
    gguf = export.path / "model.gguf"
    assert lineage.trace(small, str(gguf))["target"] == story["export"]
    copy = tmp_path / "shipped" / "model.gguf"
    copy.parent.mkdir()
    shutil.copy(gguf, copy)  # the user's copy, outside the store: found by its SHA256SUMS line
    assert lineage.trace(small, str(copy))["target"] == story["export"]
    stranger = tmp_path / "other.gguf"
    stranger.write_bytes(b"not an export")
    for path in (stranger, tmp_path / "missing" / "x.gguf"):
        with pytest.raises(NotFoundError) as caught:
            lineage.trace(small, str(path))
        assert caught.value.code == "audit_path_unknown"
    with pytest.raises(NotFoundError) as caught:
        lineage.trace(small, "")  # every id starts with "": ambiguous
    assert caught.value.code == "artifact_not_found"


# --- search -------------------------------------------------------------------------------------
def failing_ingests(small, tmp_path):
    for name in ("gone-1.jsonl", "gone-2.jsonl"):
        assert data.ingest(small, str(tmp_path / name)).status == "failed"


def test_search_by_severity_code_stage_and_run(small, story, tmp_path):
    failing_ingests(small, tmp_path)
    errors = audit.search(small, audit.make_query(severity="error"))
    assert [(e["stage"], e["reason_code"]) for e in errors["events"]] == [
        ("evaluate", "eval_gate_failed"), ("evaluate", "eval_gate_failed"),
        ("ingest", "stage_failed"), ("ingest", "stage_failed")]
    assert [r["stage"] for r in errors["runs"]] == ["evaluate", "evaluate", "ingest", "ingest"]

    failed = audit.search(small, audit.make_query(code="ingest_source_not_found"))
    assert [r["error_code"] for r in failed["runs"]] == ["ingest_source_not_found"] * 2
    assert failed["events"] == [] and failed["decisions"] == []

    trains = audit.search(small, audit.make_query(stage="train"))
    assert [r["run_id"] for r in trains["runs"]] == [
        story["refused_train"], story["good_train"], story["bad_train"]]
    assert {e["stage"] for e in trains["events"]} == {"train"}
    assert [(d["kind"], d["code"]) for d in trains["decisions"]] == [
        ("forced", "preflight_forced")]

    one = audit.search(small, audit.make_query(run=story["forced_export_run"]))
    assert [r["run_id"] for r in one["runs"]] == [story["forced_export_run"]]
    assert [e["reason_code"] for e in one["events"]] == [
        "stage_started", "export_forced", "stage_succeeded"]


def test_search_decisions_say_who_decided_what(small, story):
    found = audit.search(small, audit.make_query())["decisions"]
    assert [(d["kind"], d["stage"], d["decision"]) for d in found] == [
        ("setting", "project", "project audited created"),
        ("promotion", "evaluate", "not promotable"),
        ("promotion", "evaluate", "promotable"),
        ("forced", "train", "--force: training although preflight blocked (memory)"),
        ("promotion", "evaluate", "not promotable"),
        ("forced", "export", "--force: exporting although the latest evaluation was not "
                             "promotable")]
    assert all(d["by"] for d in found if d["kind"] != "setting")
    assert found[2]["detail"]["candidate_id"] == story["good_model"]


def test_search_by_artifact_row_and_time(small, story, row_ids):
    by_model = audit.search(small, audit.make_query(artifact=story["good_model"][:12]))
    assert by_model["artifact_id"] == story["good_model"]
    assert [r["stage"] for r in by_model["runs"]] == ["train", "evaluate", "export"]
    assert [d["decision"] for d in by_model["decisions"]] == ["promotable"]

    by_row = audit.search(small, audit.make_query(row=row_ids[0]))
    assert [r["stage"] for r in by_row["runs"]] == [
        "ingest", "map", "prepare", "evaluate", "evaluate", "evaluate"]
    assert [s["stage"] for s in by_row["ledger"]] == [
        "ingest", "map", "prepare", "evaluate", "evaluate", "evaluate"]
    with pytest.raises(NotFoundError) as caught:
        audit.search(small, audit.make_query(row="r0000000000000000"))
    assert caught.value.code == "row_not_found"

    later = audit.search(small, audit.make_query(since="2999-01-01T00:00:00Z"))
    assert later["counts"] == {"events": 0, "runs": 0, "ledger": 0, "decisions": 0}
    earlier = audit.search(small, audit.make_query(until="2000-01-01T00:00:00Z"))
    assert earlier["counts"] == {"events": 0, "runs": 0, "ledger": 0, "decisions": 0}


def test_search_limit_and_bad_filters(small, story):
    everything = audit.search(small, audit.make_query())
    newest = audit.search(small, audit.make_query(limit=3))
    assert newest["truncated"] is True and newest["counts"]["events"] == everything[
        "counts"]["events"]
    assert [e["id"] for e in newest["events"]] == [e["id"] for e in everything["events"][-3:]]
    for bad in ({"severity": "loud"}, {"stage": "nope"}, {"since": "soon"}, {"limit": 0}):
        with pytest.raises(InputError) as caught:
            audit.make_query(**bad)
        assert caught.value.code == "filter_invalid"


def test_search_finds_events_that_name_an_artifact(small, story):
    emit_event("project_updated", "note", project_id=small.id,
               payload={"key": "clean", "value": {"about": story["export"]}})
    found = audit.search(small, audit.make_query(artifact=story["export"]))
    assert "project_updated" in [e["reason_code"] for e in found["events"]]


def test_row_story_lists_every_evaluation_of_the_row(small, story, row_ids):
    told = audit.row_story(small, row_ids[1])
    assert [e["candidate_id"] for e in told["evaluations"]] == [
        story["refused_model"], story["good_model"], story["bad_model"]]
    assert [e["promotable"] for e in told["evaluations"]] == [False, True, False]
    assert told["evaluations"][1]["candidate"] == {"prediction": "category 1",
                                                   "scores": {"exact_match": 1.0}}
    assert told["final"] == "kept at evaluate"
