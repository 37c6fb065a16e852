"""Failure clusters: signatures normalize what varies; error and critical events group by
(stage, reason code, cause, signature) with exact counts, first / last seen, three exemplars and
the taxonomy's hint; recomputing gives the same clusters, ids included."""

from __future__ import annotations

import pytest

from brewslm import project
from brewslm.events import emit_event, taxonomy
from brewslm.observe import clusters
from brewslm.observe.clusters import signature
from brewslm.stages import data


@pytest.mark.parametrize("summary, expected", [
    ("ingest failed [ingest_source_not_found]: /tmp/a/x.jsonl: no such file or folder",
     "ingest failed [ingest_source_not_found]: <path>: no such file or folder"),
    ("run run-1a2b3c4d5e6f7a8b at 2026-01-02T10:00:00.123+00:00 took 2.31s for 3 rows",
     "run <id> at <time> took <n>s for <n> rows"),
    ("row r0123456789abcdef of model 9f86d081884c7d65 at 10:01:02",
     "row <id> of model <id> at <time>"),
    ("fetch https://user:pw@example.com/x?y=1 failed; uuid 550e8400-e29b-41d4-a716-446655440000",
     "fetch <url> failed; uuid <id>"),
    ("cannot read C:\\data\\x.csv: fp16 unsupported in owner/name v1.2",
     "cannot read <path>: fp16 unsupported in owner/name v1.2"),
    ("  CUDA out of memory:   tried 20.00 MiB  ", "CUDA out of memory: tried <n> MiB"),
])
def test_signature_normalizes_what_varies(summary, expected):
    assert signature(summary) == expected


def error(info, summary, *, stage="train", code="stage_failed", cause="train_out_of_memory",
          run=None, severity=None):
    emit_event(code, summary, project_id=info.id, stage=stage, run_id=run, severity=severity,
               payload={"cause": cause} if cause else {})


@pytest.mark.store
def test_errors_group_by_stage_code_cause_and_signature(tmp_path):
    info = project.create("clustered")
    for i in range(5):
        error(info, f"train failed [train_out_of_memory]: tried {i + 1}.00 GiB on run-{i:016x}",
              run=f"run-{i:016x}")
    error(info, "train failed [train_out_of_memory]: tried 9.00 GiB", stage="evaluate")
    error(info, "train failed [train_out_of_memory]: tried 9.00 GiB", cause="stage_crashed")
    error(info, "disk gone", code="event_write_failed", cause=None, stage="system",
          severity="critical")
    emit_event("stage_started", "train started", project_id=info.id, stage="train")
    emit_event("stage_failed", "a warning is not a failure cluster", project_id=info.id,
               stage="train", severity="warning")
    for name in ("gone-1.jsonl", "gone-2.jsonl"):  # real failures through the runner
        assert data.ingest(info, str(tmp_path / name)).status == "failed"

    found = clusters.compute(info)
    assert found["events"] == 10
    shapes = [(c["stage"], c["reason_code"], c["cause"], c["count"], c["runs"])
              for c in found["clusters"]]
    assert shapes == [("train", "stage_failed", "train_out_of_memory", 5, 5),  # most first,
                      ("ingest", "stage_failed", "ingest_source_not_found", 2, 2),
                      ("system", "event_write_failed", None, 1, 0),  # then the most recent
                      ("train", "stage_failed", "stage_crashed", 1, 0),
                      ("evaluate", "stage_failed", "train_out_of_memory", 1, 0)]
    oom = found["clusters"][0]
    assert oom["signature"] == "train failed [train_out_of_memory]: tried <n> GiB on <id>"
    assert oom["hint"] == taxonomy.lookup("train_out_of_memory").hint
    assert oom["meaning"] == taxonomy.lookup("train_out_of_memory").meaning
    assert [e["summary"][-20:] for e in oom["exemplars"]] == [
        f"on run-{i:016x}"[-20:] for i in (4, 3, 2)]  # the three most recent
    assert oom["first_seen"] < oom["last_seen"]
    ingest = found["clusters"][1]
    assert ingest["signature"] == ("ingest failed [ingest_source_not_found]: <path>: no such "
                                   "file or folder")
    assert ingest["hint"] == taxonomy.lookup("ingest_source_not_found").hint
    critical = next(c for c in found["clusters"] if c["reason_code"] == "event_write_failed")
    assert (critical["severity"], critical["hint"]) == (
        "critical", taxonomy.lookup("event_write_failed").hint)


@pytest.mark.store
def test_recompute_is_idempotent_and_ids_are_stable():
    info = project.create("again")
    for i in range(3):
        error(info, f"train failed [train_out_of_memory]: tried {i}.5 GiB")
    first = clusters.compute(info)
    assert clusters.compute(info) == first
    error(info, "train failed [train_out_of_memory]: tried 7.5 GiB")
    error(info, "something new")
    later = clusters.compute(info)
    assert later["clusters"][0]["id"] == first["clusters"][0]["id"]
    assert [c["count"] for c in later["clusters"]] == [4, 1]
    assert later["as_of_event_id"] > first["as_of_event_id"]


@pytest.mark.store
def test_filters_and_an_empty_project():
    info = project.create("quiet")
    assert clusters.compute(info)["clusters"] == []
    error(info, "train failed", stage="train")
    error(info, "evaluate failed", stage="evaluate", cause="eval_split_empty")
    assert [c["stage"] for c in clusters.compute(info, stage="evaluate")["clusters"]] == [
        "evaluate"]
    assert clusters.compute(info, since="2999-01-01")["clusters"] == []
    assert len(clusters.compute(info, until="2999-01-01")["clusters"]) == 2
