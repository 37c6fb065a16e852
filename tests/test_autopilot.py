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


def bigger_sibling(tmp_path):
    """A wider copy of builtin:tiny (same tokenizer and chat template): a family of two."""
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM

    tiny = project.resolve_base_model(project.create("probe", base_model="builtin:tiny"))
    big = tmp_path / "tiny-wide"
    shutil.copytree(tiny["path"], big, ignore=shutil.ignore_patterns("*.safetensors",
                                                                     "brewslm-model.json"))
    config = AutoConfig.from_pretrained(tiny["path"])
    config.hidden_size, config.intermediate_size = 768, 3072
    AutoModelForCausalLM.from_config(config).save_pretrained(big)
    return str(big), tiny["path"]


def test_a_block_no_recipe_change_fits_falls_back_to_a_smaller_sibling(rows_file, tmp_path,
                                                                       monkeypatch):
    from brewslm.basemodels import families
    from brewslm.stages import data

    big, small = bigger_sibling(tmp_path)
    monkeypatch.setattr(families, "FAMILIES", ((big, small),))
    info = project.create("shrunk", base_model=big)
    data.ingest(info, str(rows_file))
    data.map_rows(info)
    data.prepare(info)
    # Room for the small sibling as it is, not for the wide one even at its smallest plan.
    wide = preflight_stage.preflight(info, overrides=FAST["overrides"], memory_limit_bytes=2**20)
    narrow = preflight_stage.preflight(project.set_base_model("shrunk", small, reason="probe"),
                                       overrides=FAST["overrides"])
    project.set_base_model("shrunk", big, reason="probe")
    need = narrow.result["memory"]["estimated_peak_bytes"]
    assert need < wide.result["plan"]["estimated_peak_bytes"]
    free = int(need / (1 - preflight_stage.SAFETY_MARGIN) * 1.02)
    monkeypatch.setattr(preflight_stage, "free_memory_bytes", lambda *_: free)

    strict = run_project(project.get("shrunk"), data=str(rows_file), strict=True, **FAST)
    assert (strict["status"], strict["stopped_at"]) == ("stopped", "preflight")
    assert project.get("shrunk").base_model == big

    repaired = run_project(project.get("shrunk"), data=str(rows_file), deploy=False, **FAST)
    assert repaired["status"] == "done", repaired["why"]
    assert project.get("shrunk").base_model == small
    stages = [(s["stage"], s["status"]) for s in repaired["steps"]][5:9]
    # the sibling shares the tokenizer: the manifest stands (prepare is reused, not redone)
    assert stages == [("prepare", "reused"), ("preflight", "blocked"), ("prepare", "reused"),
                      ("preflight", "succeeded")]
    repair = [e for e in query.events(info) if e["reason_code"] == "autopilot_repair"][-1]
    assert repair["payload"]["change"] == f"base_model={small}"
    assert repair["payload"]["from"] == big and repair["payload"]["estimated_peak_bytes"] > free


def test_families_name_only_smaller_members():
    from brewslm.basemodels.families import available_locally, smaller_siblings

    assert smaller_siblings("HuggingFaceTB/SmolLM2-1.7B-Instruct") == [
        "HuggingFaceTB/SmolLM2-360M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert smaller_siblings("Qwen/Qwen2.5-0.5B-Instruct") == []
    assert smaller_siblings("builtin:tiny") == []
    assert not available_locally("HuggingFaceTB/SmolLM2-135M-Instruct")  # nothing cached here
