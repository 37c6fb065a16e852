"""Stage 08 through the runner: real LoRA and full training on the pretrained builtin:tiny
(10 pretraining steps in tests), traces in the metrics table, tagged checkpoints, the run
manifest, reuse, the simulate backend, coded stops and preflight's gate.

Kill -9 / resume, Ctrl-C and 2-process DDP run the CLI in child processes: tests/e2e/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brewslm import artifacts
from brewslm.stages.train import train
from brewslm.train import metrics
from brewslm.train.engine import CHECKPOINT_TAG

pytestmark = pytest.mark.store

QUICK = ["max_steps=12", "eval_every=4", "save_every=6", "logging_every=2"]


@pytest.fixture
def prepared(prepare_sample):
    return prepare_sample("trainee")


def codes(result) -> list[str]:
    return [e["reason_code"] for e in result.events]


def test_lora_trains_with_falling_eval_loss_and_records_everything(prepared):
    result = train(prepared, overrides=QUICK)
    out = result.to_dict()
    assert out["status"] == "succeeded", out.get("error")
    assert (out["steps"], out["max_steps"], out["world_size"]) == (12, 12, 1)
    assert out["last_eval_loss"] < out["first_eval_loss"]
    assert out["final_loss"] == pytest.approx(out["last_loss"], abs=1e-4)
    assert out["recipe"]["max_steps"] == 12 and out["recipe"]["method"] == "lora"
    assert 0 < out["trainable_parameters"] < out["total_parameters"]
    assert out["tokens_per_second"] > 0
    assert out["memory"]["estimated_peak_bytes"] > 0 and out["memory"]["measured_peak_bytes"] > 0
    assert codes(result).count("train_eval") == 3  # steps 4, 8, 12
    assert "train_started" in codes(result) and "train_completed" in codes(result)

    model = artifacts.get(prepared, out["model_id"])
    assert model.kind == "model"
    files = {p.name for p in model.path.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
            "run_manifest.json", "metrics.jsonl", "loss.png", "loss.html"} <= files
    run_manifest = json.loads((model.path / "run_manifest.json").read_text())
    assert run_manifest["manifest_hash"] == out["manifest_hash"]
    assert run_manifest["recipe"] == out["recipe"]
    assert run_manifest["seed"] == 0 and run_manifest["libraries"]["peft"]
    assert run_manifest["hardware"]["cpus"] >= 1

    trace = metrics.read(prepared, out["run_id"])
    steps = [r["step"] for r in trace if "loss" in r]
    assert steps == [1, 2, 4, 6, 8, 10, 12]
    assert [r["step"] for r in trace if "eval_loss" in r] == [4, 8, 12]
    checkpoints = Path(out["checkpoint"]).parent
    tags = sorted(json.loads((p / CHECKPOINT_TAG).read_text())["step"]
                  for p in checkpoints.iterdir())
    assert tags == [6, 12]
    tag = json.loads((Path(out["checkpoint"]) / CHECKPOINT_TAG).read_text())
    assert tag["manifest_hash"] == out["manifest_hash"] and tag["run_id"] == out["run_id"]

    again = train(prepared, overrides=QUICK)  # same manifest and recipe: reproducible, reused
    assert again.status == "reused" and again.reused_from == out["run_id"]


def test_full_fine_tune_and_a_user_recipe_file(prepared, tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("method: full\nlearning_rate: 3.0e-4\nmax_steps: 4\nlogging_every: 1\n"
                    "eval_every: 2\nsave_every: 4\n")
    out = train(prepared, recipe=str(mine)).to_dict()
    assert out["status"] == "succeeded", out.get("error")
    assert out["steps"] == 4 and out["recipe"]["learning_rate"] == 3e-4
    assert out["trainable_parameters"] == out["total_parameters"]
    model = artifacts.get(prepared, out["model_id"])
    assert (model.path / "model.safetensors").exists()
    assert not (model.path / "adapter_config.json").exists()


def test_simulate_backend_says_simulated_everywhere(prepared):
    result = train(prepared, backend="simulate")
    out = result.to_dict()
    assert out["status"] == "succeeded" and out["simulated"] is True
    assert out["steps"] == 220  # 10 epochs x ceil(347 / 16)
    assert "SIMULATED" in out["notice"]
    model = artifacts.get(prepared, out["model_id"])
    assert model.kind == "simulated_model" and model.meta["simulated"] is True
    assert "SIMULATED" in (model.path / "SIMULATED.txt").read_text()
    assert not list(model.path.glob("*.safetensors"))
    for event in result.events:
        if event["reason_code"] in ("train_started", "train_eval", "train_completed"):
            assert "SIMULATED" in event["summary"], event
    manifest = json.loads((model.path / "run_manifest.json").read_text())
    assert "SIMULATED" in manifest["backend"]


def test_wall_clock_budget_stops_with_a_checkpoint(prepared):
    result = train(prepared, overrides=["max_steps=500", "wall_clock_budget_s=0.5",
                                        "save_every=100"])
    assert (result.status, result.exit_code) == ("failed", 1)
    assert result.error["code"] == "train_budget_exceeded"
    checkpoint = Path(result.error["details"]["checkpoint"])
    assert (checkpoint / CHECKPOINT_TAG).exists()  # saved at the stop, not at step 100
    resumed = train(prepared, overrides=["max_steps=500", "wall_clock_budget_s=0.5",
                                         "save_every=100"], resume=True)
    assert resumed.error["code"] == "train_budget_exceeded"  # a new budget, more steps
    assert resumed.error["details"]["step"] > result.error["details"]["step"]


def test_resume_needs_a_matching_unfinished_run(prepared):
    result = train(prepared, overrides=QUICK, resume=True)
    assert (result.status, result.exit_code) == ("failed", 2)
    assert result.error["code"] == "train_resume_unavailable"


def test_preflight_block_stops_before_any_compute(prepared):
    result = train(prepared, recipe="qlora")
    assert (result.status, result.exit_code) == ("blocked", 3)
    assert result.error["code"] == "preflight_blocked"
    assert not (prepared.dir / "train").exists() or not any((prepared.dir / "train").iterdir())
    assert "train_started" not in codes(result)
