"""Stage 10 through the runner: only an evaluated, promotable candidate exports (or --force,
recorded); every format is loaded back by an independent reader and must reproduce the
candidate; a broken export is caught and nothing is published; each export carries its
tokenizer, generation config, model card and checksums."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from brewslm import artifacts
from brewslm.stages.evaluate import evaluate
from brewslm.stages.export import export
from brewslm.stages.train import train

pytestmark = pytest.mark.store

EVAL = ["limit=8", "generation.max_new_tokens=8"]


def codes(result) -> list[str]:
    return [e["reason_code"] for e in result.events]


@pytest.fixture
def trained(prepare_small):
    info = prepare_small("shipped")
    result = train(info, overrides=["max_steps=8", "learning_rate=5e-3"])
    assert result.status == "succeeded", result.error
    return info


@pytest.fixture
def promotable(trained):
    judged = evaluate(trained, pack="fast", overrides=EVAL)
    assert judged.result["promotable"] is True, judged.result.get("gates")
    return trained


def verify_checksums(folder) -> int:
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    for line in lines:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    return len(lines)


def test_an_unevaluated_candidate_is_refused_and_force_is_recorded(trained):
    refused = export(trained, fmt="hf")
    assert refused.status == "blocked" and refused.exit_code == 3
    assert refused.error["code"] == "export_not_evaluated"
    assert not [a for a in artifacts.list_artifacts(trained) if a.kind == "export"]

    forced = export(trained, fmt="hf", force=True)
    assert forced.status == "succeeded", forced.error
    assert "export_forced" in codes(forced) and forced.result["forced"] is True
    card = (artifacts.get(trained, forced.result["export_id"]).path / "README.md").read_text()
    assert "forced: true" in card and "Exported with --force" in card


def test_each_format_reproduces_the_candidate_and_carries_card_and_checksums(promotable):
    seen = {}
    for fmt, quant in (("hf", None), ("safetensors", "f16"), ("adapter", None),
                       ("vllm", None)):
        result = export(promotable, fmt=fmt, quant=quant)
        out = result.to_dict()
        assert out["status"] == "succeeded", out.get("error")
        assert out["parity"]["passed"] is True and out["promotable"] is True
        assert "export_parity_passed" in codes(result)
        reader = out["parity"]["readers"][0]
        assert reader["tokenization_equal"] and reader["chat_template_equal"]
        assert reader["argmax_agreement"] == 1.0 and reader["prompts"] == 6
        folder = artifacts.get(promotable, out["export_id"]).path
        assert verify_checksums(folder) >= 4
        for entry in out["artifacts"]:
            assert hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest() == \
                entry["sha256"]
        card = (folder / "README.md").read_text()
        assert out["manifest_hash"] in card and "beats_base_on_loss" in card
        seen[fmt] = (folder, out)

    hf, _ = seen["hf"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json",
            "README.md", "SHA256SUMS"} <= {p.name for p in hf.iterdir()}
    gen = json.loads((hf / "generation_config.json").read_text())
    assert gen["do_sample"] is False and gen["max_new_tokens"] == 8
    assert seen["safetensors"][1]["parity"]["max_abs_diff"] > 0  # f16 rounds the weights
    assert (seen["adapter"][0] / "adapter_model.safetensors").exists()
    vllm = seen["vllm"][0]
    assert (vllm / "model" / "config.json").exists() and (vllm / "adapter").is_dir()
    assert "vllm serve ./model" in (vllm / "serve.sh").read_text()

    again = export(promotable, fmt="hf")
    assert again.status == "reused"


def test_a_merged_export_that_is_really_the_base_fails_parity(promotable, monkeypatch):
    import shutil

    from brewslm.export import hf

    def base_in_disguise(base_path, model_dir, out_dir, **_):
        shutil.copytree(base_path, out_dir, dirs_exist_ok=True)
        return out_dir

    monkeypatch.setattr(hf, "export_merged", base_in_disguise)
    result = export(promotable, fmt="hf")
    assert result.status == "failed" and result.error["code"] == "export_parity_failed"
    parity = result.error["details"]["parity"][0]
    assert parity["passed"] is False and parity["max_abs_diff"] > parity["tolerance"]
    assert "stage_failed" in codes(result)
    assert not [a for a in artifacts.list_artifacts(promotable) if a.kind == "export"]


def test_gguf_exports_embed_tokenizer_and_template_and_a_template_mismatch_fails(
        promotable, monkeypatch):
    from brewslm.export import gguf

    for quant in ("f16", "q8_0"):
        result = export(promotable, fmt="gguf", quant=quant)
        out = result.to_dict()
        assert out["status"] == "succeeded", out.get("error")
        (file,) = out["artifacts"]
        assert file["path"].endswith(f"shipped-{quant}.gguf")
        reader = out["parity"]["readers"][0]
        assert reader["reader"] == "transformers-gguf" and reader["passed"]
        assert reader["tokenization_equal"] and reader["chat_template_equal"]
        info = gguf.read_gguf_info(Path(file["path"]))
        assert info["architecture"] == "llama" and info["quant"] == quant
        folder = artifacts.get(promotable, out["export_id"]).path
        assert verify_checksums(folder) >= 3 and "llama-server -m" in (
            folder / "README.md").read_text()

    # The most reported GGUF failure: a chat template other than the one trained on.
    monkeypatch.setattr(gguf, "_chat_template", lambda *_: "[INST] {{ messages[0].content }}")
    broken = export(promotable, fmt="gguf", quant="f32")
    assert broken.error["code"] == "export_parity_failed"
    assert broken.error["details"]["parity"][0]["chat_template_equal"] is False


def test_bad_requests_are_refused_before_any_compute(trained):
    unknown = export(trained, fmt="onnx", force=True)
    assert unknown.error["code"] == "export_format_unknown" and unknown.exit_code == 2
    quant = export(trained, fmt="hf", quant="q8_0", force=True)
    assert quant.error["code"] == "export_quant_unsupported"
    full = train(trained, recipe="full", overrides=["max_steps=2"])
    assert full.status == "succeeded", full.error
    adapter = export(trained, fmt="adapter", force=True)
    assert adapter.error["code"] == "export_format_unsupported"
    assert not [a for a in artifacts.list_artifacts(trained) if a.kind == "export"]


def test_a_candidate_that_is_not_promotable_is_refused(prepare_small):
    info = prepare_small("regressed")
    broken = train(info, recipe="full", overrides=["learning_rate=0.5", "max_steps=4",
                                                   "warmup_steps=0", "max_grad_norm=null"])
    assert broken.status == "succeeded", broken.error
    judged = evaluate(info, pack="fast", overrides=EVAL)
    assert judged.error["code"] == "eval_not_promotable"
    refused = export(info, fmt="hf")
    assert (refused.status, refused.exit_code) == ("blocked", 3)
    assert refused.error["code"] == "export_not_promotable"
    assert refused.error["details"]["evaluation_run"] == judged.run_id
