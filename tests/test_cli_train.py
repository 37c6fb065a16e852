"""`brewslm train` and `brewslm metrics` on the CLI: one JSON object with --json, the loss
curve in the terminal without it, and refusals with their exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from brewslm.cli import app

pytestmark = pytest.mark.store
runner = CliRunner()


@pytest.fixture
def prepared(prepare_small):
    return prepare_small("clitrain")


def invoke(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def test_train_json_then_metrics(prepared):
    out = json.loads(invoke("train", "-p", "clitrain", "--backend", "simulate", "--set",
                            "max_steps=20", "--json").stdout)
    assert out["status"] == "succeeded" and out["simulated"] is True and out["steps"] == 20
    assert out["recipe"]["max_steps"] == 20
    found = json.loads(invoke("metrics", "-p", "clitrain", "--json").stdout)
    assert found["run_id"] == out["run_id"]
    assert [r["step"] for r in found["rows"] if "loss" in r][:3] == [1, 10, 20]
    text = invoke("metrics", "-p", "clitrain").stdout
    assert "step" in text and out["run_id"] in text


def test_train_human_output_shows_the_curve(prepared):
    text = invoke("train", "-p", "clitrain", "--backend", "simulate", "--set",
                  "max_steps=15").stdout
    assert "SIMULATED" in text and "loss" in text and "┤" in text


def test_train_refusals(prepared):
    bad = json.loads(invoke("train", "-p", "clitrain", "--set", "lora.r=zero", "--json",
                            code=2).stdout)
    assert bad["error"]["code"] == "recipe_invalid"
    unknown = json.loads(invoke("train", "-p", "clitrain", "--backend", "magic", "--json",
                                code=2).stdout)
    assert unknown["error"]["code"] == "train_backend_unknown"
    blocked = json.loads(invoke("train", "-p", "clitrain", "--recipe", "qlora", "--json",
                                code=3).stdout)
    assert blocked["status"] == "blocked" and blocked["error"]["code"] == "preflight_blocked"
    missing = json.loads(invoke("metrics", "-p", "clitrain", "--json", code=2).stdout)
    assert missing["error"]["code"] == "model_missing"  # blocked runs trained nothing


def test_accelerate_launcher_is_refused_on_cpu(prepared, tmp_path, monkeypatch):
    from brewslm.train import hardware

    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    config = tmp_path / "multi_gpu.yaml"
    config.write_text("distributed_type: MULTI_GPU\nnum_processes: 2\n")
    for path in (str(config), str(tmp_path / "missing.yaml")):
        out = json.loads(invoke("train", "-p", "clitrain", "--accelerate-config", path,
                                "--json", code=2).stdout)
        assert out["error"]["code"] == "train_launcher_unsupported"


def test_evaluate_json_and_table(prepared):
    from brewslm.stages.train import train

    assert train(prepared, overrides=["max_steps=20", "learning_rate=3e-3"]).status == "succeeded"
    out = json.loads(invoke("evaluate", "-p", "clitrain", "--pack", "fast", "--set", "limit=4",
                            "--set", "generation.max_new_tokens=8", "--json").stdout)
    assert out["stage"] == "evaluate" and out["status"] == "succeeded" and out["rows"] == 4
    assert {"promotable", "gates", "metrics", "comparison", "report_html"} <= set(out)
    text = invoke("evaluate", "-p", "clitrain", "--pack", "fast", "--set", "limit=4",
                  "--set", "generation.max_new_tokens=8").stdout
    assert "PROMOTABLE" in text and "beats_base_on_loss" in text
    bad = json.loads(invoke("evaluate", "-p", "clitrain", "--pack", "nightly", "--json",
                            code=2).stdout)
    assert bad["error"]["code"] == "eval_pack_invalid"
