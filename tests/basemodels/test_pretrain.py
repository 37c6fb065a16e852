"""Pretrained builtin:tiny: a short run trains, is deterministic, cached by its own key, and
`builtin:tiny` resolves to it while `builtin:tiny-random` stays the random init."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest

from brewslm.basemodels import builtin_tiny, pretrain
from brewslm.basemodels.builtin_tiny import SIDECAR
from brewslm.basemodels.pretrain import (
    STEPS_ENV,
    cache_key,
    default_pretrained_dir,
    pretrain_builtin_tiny,
    pretrain_steps,
)
from brewslm.basemodels.reference import resolve_base_model

STEPS = 3  # a few real optimizer steps: enough to change every weight, a few seconds


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def short_runs(models, monkeypatch):
    monkeypatch.setenv("BREWSLM_MODELS_DIR", str(models))
    monkeypatch.setenv(STEPS_ENV, str(STEPS))


@pytest.fixture(scope="module")
def built(models) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BREWSLM_MODELS_DIR", str(models))
        mp.setenv(STEPS_ENV, str(STEPS))
        return pretrain_builtin_tiny()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_writes_a_complete_folder_with_its_sidecar(built, models):
    assert built == default_pretrained_dir() == models / f"builtin-tiny-pretrained-{cache_key()}"
    for name in ("config.json", "generation_config.json", "model.safetensors",
                 "tokenizer.json", "tokenizer_config.json", SIDECAR):
        assert (built / name).is_file(), name
    sidecar = json.loads((built / SIDECAR).read_text())
    assert sidecar["key"] == cache_key(STEPS)
    assert sidecar["base_key"] == builtin_tiny.cache_key()
    assert sidecar["steps"] == STEPS
    assert sidecar["tokens"] == STEPS * pretrain.PRETRAIN_CONFIG["batch_size"] * \
        pretrain.PRETRAIN_CONFIG["block_size"]
    assert math.isfinite(sidecar["final_loss"]) and sidecar["seconds"] >= 0
    assert sidecar["sha256"] == {name: sha256(built / name)
                                 for name in ("tokenizer.json", "model.safetensors")}
    assert not list(built.parent.glob(".*.tmp-*"))


def test_trains_the_random_weights_and_keeps_the_tokenizer(built):
    random_dir = builtin_tiny.default_builtin_dir()
    assert (built / "tokenizer.json").read_bytes() == (random_dir / "tokenizer.json").read_bytes()
    assert sha256(built / "model.safetensors") != sha256(random_dir / "model.safetensors")


def test_loads_and_generates(built):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built)
    ids = tokenizer("A billing ticket", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] <= ids.shape[1] + 3
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_same_steps_give_identical_weights(built):
    first = (built / "model.safetensors").read_bytes()
    shutil.rmtree(built)
    again = pretrain_builtin_tiny()
    assert again == built
    assert (again / "model.safetensors").read_bytes() == first


def test_complete_folder_is_reused(built, monkeypatch):
    def must_not_train(*args, **kwargs):
        raise AssertionError("retrained a complete folder")

    monkeypatch.setattr(pretrain, "_pretrain_into", must_not_train)
    assert pretrain_builtin_tiny() == built
    assert pretrain_builtin_tiny(steps=STEPS) == built


def test_restores_threads_and_determinism_settings(models, monkeypatch):
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    pretrain_builtin_tiny(steps=1)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_step_count_comes_from_argument_env_or_default(monkeypatch):
    assert pretrain_steps() == STEPS
    assert pretrain_steps(7) == 7
    monkeypatch.delenv(STEPS_ENV)
    assert pretrain_steps() == pretrain.PRETRAIN_CONFIG["steps"]
    keys = {cache_key(), cache_key(STEPS), cache_key(STEPS + 1)}
    assert len(keys) == 3  # the step count is part of the key


@pytest.mark.parametrize("raw", ["ten", "-1", "2.5"])
def test_bad_step_count_is_refused(raw, monkeypatch):
    monkeypatch.setenv(STEPS_ENV, raw)
    with pytest.raises(ValueError, match="whole number"):
        pretrain_steps()


def test_key_follows_the_random_build(monkeypatch):
    before = cache_key()
    monkeypatch.setitem(builtin_tiny.TINY_CONFIG, "seed", 1)
    assert cache_key() != before


def test_builtin_refs_resolve_to_pretrained_and_random(built):
    assert resolve_base_model("builtin:tiny").path == built
    assert resolve_base_model("builtin:tiny-random").path == builtin_tiny.default_builtin_dir()
    assert resolve_base_model("builtin:tiny", build=False).path == default_pretrained_dir()


def test_build_false_does_not_pretrain(monkeypatch):
    monkeypatch.setenv(STEPS_ENV, "2")
    resolved = resolve_base_model("builtin:tiny", build=False)
    assert resolved.path == default_pretrained_dir(2) and not resolved.path.exists()
