"""Groundwork for stage 10: a merged export reproduces the trained model (parity passes), and
an export that is secretly the base model (the adapter never applied) is caught."""

from __future__ import annotations

import shutil

import pytest
from transformers import AutoTokenizer

from brewslm import artifacts
from brewslm.basemodels.reference import resolve_base_model
from brewslm.export.hf import CHECKSUMS, export_adapter, export_merged, load_candidate
from brewslm.export.parity import check_parity
from brewslm.stages.train import train

pytestmark = pytest.mark.store


@pytest.fixture
def trained(prepare_small):
    info = prepare_small("exported")
    result = train(info, overrides=["max_steps=8", "learning_rate=5e-3"])
    assert result.status == "succeeded", result.error
    model = artifacts.get(info, result.result["model_id"])
    return resolve_base_model("builtin:tiny").path, model.path


def test_merged_export_has_parity_and_a_base_in_disguise_does_not(trained, tmp_path):
    base, model_dir = trained
    reference = load_candidate(base, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    merged = export_merged(base, model_dir, tmp_path / "merged")
    report = check_parity(reference, tokenizer, merged, tolerance=1e-4)
    assert report["passed"], report
    assert report["tokenization_equal"] and report["chat_template_equal"]
    sums = (merged / CHECKSUMS).read_text().splitlines()
    assert any(line.endswith("  model.safetensors") for line in sums)

    disguised = tmp_path / "disguised"  # "merged" but really the base weights
    shutil.copytree(base, disguised)
    broken = check_parity(reference, tokenizer, disguised, tolerance=1e-4)
    assert not broken["passed"] and broken["max_abs_diff"] > 1e-3


def test_adapter_export_carries_the_adapter_and_tokenizer(trained, tmp_path):
    _, model_dir = trained
    out = export_adapter(model_dir, tmp_path / "adapter")
    names = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
            CHECKSUMS} <= names
