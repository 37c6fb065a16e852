"""Stage 07 through the runner: GO on the sample job with every check passing, BLOCK (exit 3)
with the exact reason code for each gate (memory, QLoRA without CUDA, missing LoRA targets,
too few rows, context), --force recorded, the estimate equal to estimate_memory on the
manifest's token lengths, and the CLI's --json and exit codes.

One project (the bundled sample, prepared with builtin:tiny) is shared by the module: it lives
in the module's own BREWSLM_HOME, which every test points at. CUDA is hidden from every test,
so the verdicts are the same on a machine with a GPU.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from brewslm import artifacts, project
from brewslm.basemodels.reference import resolve_base_model
from brewslm.cli import app
from brewslm.cli_train import parse_size
from brewslm.demo import sample_path
from brewslm.errors import BlockedError, InputError, NotFoundError
from brewslm.events import query
from brewslm.preflight import architecture, estimate_memory, free_memory_bytes
from brewslm.stages import data
from brewslm.stages import preflight as pf
from brewslm.stages.outputs import latest_output
from brewslm.store import db
from brewslm.train import hardware, load_recipe, recipe_hash

pytestmark = pytest.mark.store

GIB = 1 << 30
ROOT = Path(__file__).resolve().parents[2]
ALL_CHECKS = ["dependencies", "device", "precision", "base_model", "architecture",
              "lora_targets", "train_rows", "eval_rows", "context", "memory", "disk"]


@pytest.fixture(scope="module")
def home(tmp_path_factory, models_dir):
    """A BREWSLM_HOME holding project `pf`: the sample ingested, mapped and prepared."""
    folder = tmp_path_factory.mktemp("preflight-home")
    with pytest.MonkeyPatch.context() as mp:
        _use(mp, folder, models_dir)
        info = project.create("pf", base_model="builtin:tiny")
        data.ingest(info, str(sample_path()))
        assert data.map_rows(info).status == "succeeded"
        assert data.prepare(info).status == "succeeded"
        db.reset_engines()
    return folder


def _use(mp: pytest.MonkeyPatch, folder: Path, models_dir: Path) -> None:
    # SQLite in this home even under `make test-postgres`: its per-test wipe would drop the
    # module's project.
    mp.setenv("BREWSLM_HOME", str(folder))
    mp.setenv("BREWSLM_MODELS_DIR", str(models_dir))
    mp.delenv("BREWSLM_DATABASE_URL", raising=False)
    db.reset_engines()


@pytest.fixture(autouse=True)
def shared(brewslm_home, home, models_dir, monkeypatch):
    """Each test in the module's home (after conftest set its own), with no CUDA visible."""
    _use(monkeypatch, home, models_dir)
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    yield
    db.reset_engines()


@pytest.fixture
def info():
    return project.get("pf")


def _manifest(info):
    return artifacts.get(info, latest_output(info, "prepare", "manifest"))


def _codes(result) -> list[str]:
    return [c["reason_code"] for c in result["blockers"]]


def _events(result) -> list[str]:
    return [e["reason_code"] for e in result["events"]]


# --- GO ----------------------------------------------------------------------------------------


def test_go_on_the_sample_job_with_every_check_passing(info):
    result = pf.preflight(info, memory_limit_bytes=8 * GIB)
    out = result.to_dict()
    assert (result.status, result.exit_code) == ("succeeded", 0), out.get("error")
    assert out["verdict"] == "GO" and out["blockers"] == [] and out["plan"] is None
    assert [c["name"] for c in out["checks"]] == ALL_CHECKS
    assert {(c["status"], c["reason_code"]) for c in out["checks"]} == {
        ("pass", "preflight_check_passed")}
    assert _events(out) == ["stage_started", "preflight_go", "stage_succeeded"]
    assert (out["device"], out["dtype"], out["forced"]) == ("cpu", "float32", False)
    assert out["recipe"] == load_recipe("lora")
    assert out["recipe_hash"] == recipe_hash(load_recipe("lora"))
    memory = out["memory"]
    assert memory["fits"] is True and memory["free_bytes"] == 8 * GIB
    assert memory["budget_bytes"] == int(8 * GIB * 0.85)
    assert sum(memory["breakdown"].values()) == memory["estimated_peak_bytes"] > 0
    report = Path(out["outputs"]["preflight_report"]["path"]) / "report.json"
    assert json.loads(report.read_text())["verdict"] == "GO"
    assert out["manifest_id"] == _manifest(info).id


def test_the_estimate_is_estimate_memory_on_the_manifest_token_lengths(info):
    manifest = _manifest(info)
    found = pf.assess(info, manifest, load_recipe("lora"))  # free memory: this machine's
    lengths = pq.read_table(manifest.path / "train.parquet").column("n_tokens").to_pylist()
    config = json.loads((resolve_base_model("builtin:tiny").path / "config.json").read_text())
    direct = estimate_memory(config, method="lora", micro_batch=16, grad_accumulation=1,
                             seq_lens=lengths, grad_checkpointing=False, dtype="float32",
                             lora_r=32, lora_dropout=0.0, lora_targets=None, device="cpu",
                             max_length=512, runtime="trainer", cpu_allocator="glibc")
    assert found.memory["estimated_peak_bytes"] == direct.total_bytes
    assert found.memory["breakdown"] == direct.breakdown
    assert len(lengths) == json.loads((manifest.path / "manifest.json").read_text())[
        "splits"]["train"]["rows"]
    assert 0 < found.memory["free_bytes"] <= free_memory_bytes("cpu") * 1.1


# --- BLOCK -------------------------------------------------------------------------------------


def test_memory_that_does_not_fit_blocks_with_exit_3_and_a_plan(info):
    peak = pf.preflight(info, memory_limit_bytes=8 * GIB).result["memory"][
        "estimated_peak_bytes"]
    # Just too little: the budget (85% of the limit) is one byte under the job's peak.
    result = pf.preflight(info, memory_limit_bytes=int(peak / 0.85))
    out = result.to_dict()
    assert (result.status, result.exit_code) == ("blocked", 3)
    assert out["verdict"] == "BLOCK" and _codes(out) == ["preflight_memory_exceeded"]
    assert out["error"]["code"] == "preflight_blocked"
    assert out["memory"]["estimated_peak_bytes"] == peak and out["memory"]["fits"] is False
    plan = out["plan"]
    assert plan["fits"] is True and plan["estimated_peak_bytes"] <= plan["budget_bytes"]
    assert plan["changes"] == ["micro-batch 16 -> 8 with gradient accumulation 1 -> 2 (same "
                               "effective batch)"]
    assert plan["overrides"] == ["micro_batch=8", "grad_accumulation=2"]
    assert plan["changes"][0] in out["blockers"][0]["message"]
    assert "--set micro_batch=8 --set grad_accumulation=2" in out["error"]["message"]
    assert _events(out) == ["stage_started", "preflight_memory_exceeded", "preflight_blocked",
                            "stage_blocked"]
    run = query.get_run(info, result.run_id)
    assert run["status"] == "blocked" and run["result"]["verdict"] == "BLOCK"
    assert run["result"]["memory"]["estimated_peak_bytes"] == peak


def test_a_tiny_memory_limit_blocks_and_no_plan_fits(info):
    result = pf.preflight(info, memory_limit_bytes=1 << 20)
    out = result.to_dict()
    assert (out["status"], out["verdict"]) == ("blocked", "BLOCK")
    assert _codes(out) == ["preflight_memory_exceeded"]
    assert out["plan"]["fits"] is False and out["plan"]["changes"]  # the last plan tried
    assert "no plan tried fits" in out["blockers"][0]["message"]
    assert out["outputs"] == {} and query.get_run(info, result.run_id)["outputs"] == {}


def test_force_records_the_overridden_blockers_and_succeeds(info):
    result = pf.preflight(info, memory_limit_bytes=1 << 20, force=True)
    out = result.to_dict()
    assert (result.status, result.exit_code) == ("succeeded", 0)
    assert out["verdict"] == "BLOCK" and out["forced"] is True
    assert _codes(out) == ["preflight_memory_exceeded"]
    assert _events(out) == ["stage_started", "preflight_memory_exceeded", "preflight_forced",
                            "stage_succeeded"]
    (event,) = query.events(info, query.make_filter(code="preflight_forced",
                                                    run_id=result.run_id))
    assert event["severity"] == "warning"
    assert [b["reason_code"] for b in event["payload"]["blockers"]] == [
        "preflight_memory_exceeded"]
    report = Path(out["outputs"]["preflight_report"]["path"]) / "report.json"
    assert json.loads(report.read_text())["forced"] is True


def test_qlora_without_cuda_blocks_with_a_clear_reason(info):
    result = pf.preflight(info, recipe="qlora")
    out = result.to_dict()
    assert (result.status, result.exit_code) == ("blocked", 3)
    device = next(c for c in out["checks"] if c["name"] == "device")
    assert (device["status"], device["reason_code"]) == ("fail", "preflight_cuda_missing")
    assert device["message"] == ("QLoRA needs a CUDA GPU and bitsandbytes; this machine has no "
                                 "CUDA device: use --recipe lora")
    assert "bitsandbytes" in [c["name"] for c in out["checks"]]
    # No CUDA device to read free memory from: undecided, unless planning for a target machine.
    assert "preflight_memory_unknown" in _codes(out)
    planned = pf.preflight(info, recipe="qlora", memory_limit_bytes=24 * GIB).to_dict()
    assert "preflight_memory_unknown" not in _codes(planned)
    assert planned["memory"]["fits"] is True and planned["memory"]["device"] == "cuda"


@pytest.mark.parametrize(("options", "codes"), [
    ({"overrides": ["lora.target_modules=[q_proj, not_a_module]"]},
     ["preflight_lora_targets_missing", "preflight_memory_unknown"]),
    ({"min_train_rows": 1000}, ["preflight_too_few_train_rows"]),
    ({"overrides": ["max_length=1024"]}, ["preflight_max_length_exceeds_context"]),
    ({"overrides": ["device=cuda"]}, ["preflight_cuda_missing"]),  # memory: the limit
])
def test_each_gate_blocks_with_its_code(info, options, codes):
    result = pf.preflight(info, memory_limit_bytes=8 * GIB, **options)
    out = result.to_dict()
    assert (result.status, result.exit_code) == ("blocked", 3)
    assert _codes(out) == codes
    assert _events(out) == ["stage_started", *codes, "preflight_blocked", "stage_blocked"]


def test_missing_lora_targets_are_named_and_present_ones_pass(info):
    out = pf.preflight(info, memory_limit_bytes=8 * GIB,
                       overrides=["lora.target_modules=[q_proj, not_a_module]"]).to_dict()
    targets = next(c for c in out["checks"] if c["name"] == "lora_targets")
    assert targets["details"]["missing"] == ["not_a_module"]
    ok = pf.preflight(info, memory_limit_bytes=8 * GIB,
                      overrides=["lora.target_modules=[q_proj, v_proj]"]).to_dict()
    assert ok["verdict"] == "GO"
    assert ok["memory"]["job"]["lora_targets"] == ["q_proj", "v_proj"]


def test_warnings_do_not_block(info):
    out = pf.preflight(info, memory_limit_bytes=8 * GIB,
                       overrides=["max_length=32", "precision=bf16"]).to_dict()
    assert (out["status"], out["verdict"]) == ("succeeded", "GO")
    warned = {c["name"]: c["reason_code"] for c in out["checks"] if c["status"] == "warn"}
    assert warned == {"precision": "preflight_precision_slow",
                      "context": "preflight_rows_truncated"}
    assert out["dtype"] == "bfloat16"
    assert _events(out) == ["stage_started", "preflight_precision_slow",
                            "preflight_rows_truncated", "preflight_go", "stage_succeeded"]


def test_an_unusable_base_model_blocks_and_skips_the_model_checks(info):
    elsewhere = dataclasses.replace(info, base_model="/no/such/model")
    found = pf.assess(elsewhere, _manifest(info), load_recipe("lora"))
    assert [c["name"] for c in found.checks] == ["dependencies", "device", "precision",
                                                 "base_model", "train_rows", "eval_rows"]
    assert _codes(found.to_dict()) == ["preflight_base_model_unavailable"]
    assert found.memory["estimated_peak_bytes"] is None


def test_a_check_that_raises_is_a_failed_check_not_a_crash(info, monkeypatch):
    def broken(job):
        raise RuntimeError("disk probe exploded")

    checks = tuple((n, broken if n == "disk" else c) for n, c in pf.CHECKS)
    monkeypatch.setattr(pf, "CHECKS", checks)
    result = pf.preflight(info, memory_limit_bytes=8 * GIB)
    out = result.to_dict()
    assert (result.status, result.exit_code) == ("blocked", 3)
    (blocker,) = out["blockers"]
    assert (blocker["name"], blocker["reason_code"]) == ("disk", "preflight_check_crashed")
    assert "RuntimeError: disk probe exploded" in blocker["message"]


def test_no_manifest_is_refused_before_any_run():
    other = project.create("empty", base_model="builtin:tiny")
    with pytest.raises(NotFoundError) as err:
        pf.preflight(other)
    assert err.value.code == "manifest_missing"
    with pytest.raises(InputError) as bad:
        pf.preflight(project.get("pf"), overrides=["no_such_key=1"])
    assert bad.value.code == "recipe_invalid"


# --- the gate the train stage calls ------------------------------------------------------------


def test_gate_raises_on_block_and_records_force(info):
    recipe = load_recipe("lora")
    assert pf.gate(info, _manifest(info), recipe, force=False,
                   memory_limit_bytes=8 * GIB).verdict == "GO"
    with pytest.raises(BlockedError) as err:
        pf.gate(info, _manifest(info), recipe, force=False, memory_limit_bytes=1 << 20)
    assert err.value.code == "preflight_blocked" and err.value.exit_code == 3
    assert err.value.result["verdict"] == "BLOCK"
    assert err.value.result["recipe_hash"] == recipe_hash(recipe)
    emitted = []
    found = pf.gate(info, _manifest(info), recipe, force=True, memory_limit_bytes=1 << 20,
                    emit=lambda code, summary, **kw: emitted.append((code, kw["severity"])))
    assert found.verdict == "BLOCK" and emitted == [("preflight_forced", "warning")]


# --- hardware, versions, sizes -----------------------------------------------------------------


def test_device_and_dtype_resolution(monkeypatch):
    assert hardware.resolve_device({"device": "auto"}) == "cpu"
    assert hardware.resolve_device({"device": "cuda"}) == "cuda"  # asked for: preflight blocks
    assert hardware.resolve_dtype({"precision": "auto"}, "cpu") == "float32"
    assert hardware.resolve_dtype({"precision": "bf16"}, "cpu") == "bfloat16"
    assert hardware.resolve_dtype({"precision": "fp16"}, "cuda") == "float16"
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    monkeypatch.setattr(hardware, "cuda_bf16_supported", lambda: True)
    assert hardware.resolve_device({"device": "auto"}) == "cuda"
    assert hardware.resolve_device({"device": "cpu"}) == "cpu"
    assert hardware.resolve_dtype({"precision": "auto"}, "cuda") == "bfloat16"
    monkeypatch.setattr(hardware, "cuda_bf16_supported", lambda: False)
    assert hardware.resolve_dtype({"precision": "auto"}, "cuda") == "float32"


def test_minimum_versions_are_pyprojects_lower_bounds():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bounds = dict(d.split(" ")[0].split(">=") for d in deps if ">=" in d)
    assert {k: bounds[k] for k in pf.MIN_VERSIONS} == pf.MIN_VERSIONS
    assert pf._version("2.13.0+cpu") == (2, 13, 0) and pf._version("5.0.0rc1") == (5, 0, 0)


def test_checkpoint_bytes():
    config = {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
              "num_attention_heads": 2, "vocab_size": 10, "tie_word_embeddings": True}
    # LoRA r=1 on q_proj (8 -> 8): 16 adapter values per layer, fp32 plus two fp32 states.
    assert pf.checkpoint_bytes(config, method="lora", dtype="float32", lora_r=1,
                               lora_targets=["q_proj"]) == 2 * 16 * 12
    # Full: every weight in bf16 (2 bytes) plus two fp32 AdamW states (8 bytes).
    params = architecture(config).parameter_count()
    assert pf.checkpoint_bytes(config, method="full", dtype="bfloat16") == params * 10


@pytest.mark.parametrize(("text", "size"), [("2GiB", 2 * GIB), ("500MB", 500_000_000),
                                            ("1.5G", int(1.5 * GIB)), ("1048576", 1 << 20),
                                            ("64 MiB", 64 << 20)])
def test_memory_limit_sizes(text, size):
    assert parse_size(text) == size


def test_memory_limit_that_is_not_a_size_is_refused():
    with pytest.raises(InputError) as err:
        parse_size("2 bananas")
    assert err.value.code == "stage_params_invalid"


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_preflight_json_and_exit_codes():
    runner = CliRunner()
    go = runner.invoke(app, ["preflight", "-p", "pf", "--memory-limit", "8GiB", "--json"])
    assert go.exit_code == 0, go.stderr
    out = json.loads(go.stdout)  # exactly one JSON object on stdout
    assert (out["stage"], out["status"], out["verdict"]) == ("preflight", "succeeded", "GO")
    assert out["memory"]["estimated_peak_bytes"] > 0 and out["blockers"] == []
    blocked = runner.invoke(app, ["preflight", "-p", "pf", "--memory-limit", "1MB", "--json"])
    assert blocked.exit_code == 3, blocked.stderr
    out = json.loads(blocked.stdout)
    assert (out["status"], out["verdict"]) == ("blocked", "BLOCK")
    assert _codes(out) == ["preflight_memory_exceeded"]
    human = runner.invoke(app, ["preflight", "-p", "pf", "--memory-limit", "1MB",
                                "--set", "micro_batch=4"])
    assert human.exit_code == 3
    for text in ("preflight checks", "framework overhead", "BLOCK", "preflight_memory_exceeded"):
        assert text in human.stdout
    refused = runner.invoke(app, ["preflight", "-p", "pf", "--memory-limit", "lots", "--json"])
    assert refused.exit_code == 2
    assert json.loads(refused.stdout)["error"]["code"] == "stage_params_invalid"
