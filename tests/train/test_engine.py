"""The engine's pieces without a full training run: the CUDA out-of-memory retry, checkpoint
discovery and tags, and the Trainer arguments a recipe becomes."""

from __future__ import annotations

import json

import pytest
import torch

from brewslm.errors import InputError
from brewslm.train import engine
from brewslm.train.engine import (
    CHECKPOINT_TAG,
    FitOutcome,
    FitSpec,
    check_checkpoint,
    halved_batch,
    latest_checkpoint,
    training_arguments,
)
from brewslm.train.recipe import apply_overrides, load_recipe


def spec(tmp_path, device="cpu", **recipe_overrides) -> FitSpec:
    recipe = apply_overrides(load_recipe("lora"), [f"{k}={v}" for k, v in
                                                   recipe_overrides.items()])
    return FitSpec(base_model="unused", manifest_dir="unused", recipe=recipe,
                   work_dir=str(tmp_path), manifest_hash="m" * 64, recipe_hash="r" * 64,
                   run_id="run-1", device=device)


def outcome(**kw) -> FitOutcome:
    base = dict(steps=4, max_steps=4, epochs=1.0, final_loss=1.0, eval_losses=[], tokens=10,
                seconds=1.0, tokens_per_second=10.0, world_size=1, model_dir=None,
                last_checkpoint=None)
    return FitOutcome(**{**base, **kw})


def test_cuda_oom_is_retried_once_with_half_the_micro_batch(tmp_path, monkeypatch):
    seen = []

    def fake(spec, sink, stop):
        seen.append((spec.recipe["micro_batch"], spec.recipe["grad_accumulation"]))
        if len(seen) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return outcome()

    monkeypatch.setattr(engine, "_free_cuda", lambda: None)
    monkeypatch.setattr(engine, "_fit_once", fake)
    result = engine.fit(spec(tmp_path, device="cuda"))
    assert seen == [(16, 1), (8, 2)]
    assert result.retried_oom["micro_batch"] == 8 and "out of memory" in result.retried_oom[
        "error"]


def test_oom_on_cpu_or_twice_is_not_retried(tmp_path, monkeypatch):
    def always(spec, sink, stop):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(engine, "_free_cuda", lambda: None)
    monkeypatch.setattr(engine, "_fit_once", always)
    for device in ("cpu", "cuda"):  # cpu: never; cuda: once, then the error stands
        with pytest.raises(torch.cuda.OutOfMemoryError):
            engine.fit(spec(tmp_path, device=device))
    assert halved_batch({"micro_batch": 1, "grad_accumulation": 4}) is None


def test_latest_checkpoint_needs_a_tag(tmp_path):
    folder = tmp_path / "checkpoints"
    for step, tagged in ((10, True), (20, True), (30, False)):  # 30: killed while writing
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        if tagged:
            (folder / f"checkpoint-{step}" / CHECKPOINT_TAG).write_text(json.dumps(
                {"manifest_hash": "m" * 64, "recipe_hash": "r" * 64, "step": step}))
    assert latest_checkpoint(tmp_path) == str(folder / "checkpoint-20")
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_resume_refuses_a_checkpoint_of_other_data(tmp_path):
    checkpoint = tmp_path / "checkpoints" / "checkpoint-5"
    checkpoint.mkdir(parents=True)
    (checkpoint / CHECKPOINT_TAG).write_text(json.dumps(
        {"manifest_hash": "x" * 64, "recipe_hash": "r" * 64, "step": 5}))
    with pytest.raises(InputError) as caught:
        check_checkpoint(spec(tmp_path), checkpoint)
    assert caught.value.code == "train_checkpoint_mismatch"
    assert caught.value.details["key"] == "manifest_hash"


def test_recipe_becomes_trainer_arguments(tmp_path):
    args = training_arguments(spec(tmp_path, max_steps=7, eval_every=3, save_every=5,
                                   grad_accumulation=2, gradient_checkpointing="true"), 100)
    assert (args.max_steps, args.eval_steps, args.save_steps) == (7, 3, 5)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (16, 2)
    assert args.learning_rate == 1e-3 and args.seed == 0 and args.use_cpu
    assert args.report_to == [] and args.activation_checkpointing is True
    assert args.include_num_input_tokens_seen == "non_padding"  # eval batches not counted
    assert args.output_dir == str(tmp_path / "checkpoints")
