"""The autopilot (`brewslm run`): every stage from a source file to a deployed version, reused
when run again; a memory block repaired from preflight's own plan with a decision event per
change (refused under --strict); data it cannot map confidently stops it before map."""

from __future__ import annotations

import json

import pytest

from brewslm import project
from brewslm.autopilot import run_project
from brewslm.events import query
from brewslm.stages import preflight as preflight_stage

pytestmark = pytest.mark.store

FAST = {"overrides": ["max_steps=8", "learning_rate=5e-3"], "pack": "fast",
        "eval_overrides": ["limit=8", "generation.max_new_tokens=8"]}


def codes(info) -> list[str]:
    return [e["reason_code"] for e in query.events(info)]


def test_from_a_file_to_a_deployed_version_and_reused_when_run_again(rows_file):
    info = project.create("piloted", base_model="builtin:tiny")
    summary = run_project(info, data=str(rows_file), **FAST)
    assert summary["status"] == "done", summary
    stages = [s["stage"] for s in summary["steps"]]
    assert stages == ["ingest", "introspect", "map --dry-run", "map", "clean", "prepare",
                      "preflight", "train", "evaluate", "export gguf", "export safetensors",
                      "deploy"]
    assert summary["steps"][0]["counts"] == {"in": 40, "out": 40, "rejected": 0}
    assert summary["steps"][-1]["deployment_status"] == "promoted"
    assert {"autopilot_started", "autopilot_finished"} <= set(codes(info))

    again = run_project(info, data=str(rows_file), **FAST)
    assert again["status"] == "done"
    assert {s["stage"]: s["status"] for s in again["steps"]}["train"] == "reused"
    assert again["steps"][-1] == {**again["steps"][-1], "stage": "deploy", "status": "reused",
                                  "version": 1}


def test_a_memory_block_is_repaired_from_the_plan_unless_strict(rows_file, monkeypatch):
    from brewslm.stages import data

    info = project.create("squeezed", base_model="builtin:tiny")
    data.ingest(info, str(rows_file))
    data.map_rows(info)
    data.prepare(info)
    # The smallest plan preflight can make (asked to fit in 1 MiB), and room just for it.
    tight = preflight_stage.preflight(info, overrides=FAST["overrides"],
                                      memory_limit_bytes=2**20)
    smallest = tight.result["plan"]["estimated_peak_bytes"]
    assert smallest < tight.result["memory"]["estimated_peak_bytes"]
    free = int(smallest / (1 - preflight_stage.SAFETY_MARGIN) * 1.02)
    monkeypatch.setattr(preflight_stage, "free_memory_bytes", lambda *_: free)

    strict = run_project(info, data=str(rows_file), strict=True, **FAST)
    assert (strict["status"], strict["stopped_at"], strict["cause"]) == (
        "stopped", "preflight", "preflight_blocked")
    assert "--strict refuses repairs" in strict["why"]
    assert "autopilot_repair" not in codes(info)

    repaired = run_project(info, data=str(rows_file), deploy=False, **FAST)
    assert repaired["status"] == "done", repaired
    repairs = [e for e in query.events(info) if e["reason_code"] == "autopilot_repair"]
    assert repairs and all(e["payload"]["reason"] == "preflight_blocked" for e in repairs)
    assert all(e["payload"]["planned_peak_bytes"] < e["payload"]["estimated_peak_bytes"]
               for e in repairs)
    assert {s["stage"]: s.get("verdict") for s in repaired["steps"]}["preflight"] == "GO"


def test_data_it_cannot_map_confidently_stops_before_map(tmp_path):
    odd = tmp_path / "odd.jsonl"
    odd.write_text("".join(json.dumps({"alpha": f"x{i}", "beta": i}) + "\n" for i in range(20)))
    info = project.create("puzzled", base_model="builtin:tiny")
    stopped = run_project(info, data=str(odd))
    assert (stopped["status"], stopped["stopped_at"], stopped["cause"]) == (
        "stopped", "map", "autopilot_mapping_unsure")
    assert [s["stage"] for s in stopped["steps"]] == ["ingest", "introspect"]
    assert "--field-map" in stopped["why"]
