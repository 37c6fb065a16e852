"""The preflight memory estimate: its terms scale as the formulas say, the plan shrinks the job
until it fits, and one real training step's peak RSS lands near the estimate.

All but the last test are arithmetic (no torch). The last runs one child process that trains
a model of builtin:tiny's shape for two steps and compares its peak RSS with the estimate
(~7 s on the 2-core machine when idle, 29 s when it was busy).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from brewslm.basemodels.builtin_tiny import TINY_CONFIG
from brewslm.preflight import architecture, estimate_memory, fits, free_memory_bytes
from brewslm.preflight import plan_that_fits as plan_for

TINY = {"vocab_size": TINY_CONFIG["vocab_target"], "hidden_size": TINY_CONFIG["hidden_size"],
        "intermediate_size": TINY_CONFIG["intermediate_size"],
        "num_hidden_layers": TINY_CONFIG["num_hidden_layers"],
        "num_attention_heads": TINY_CONFIG["num_attention_heads"],
        "num_key_value_heads": TINY_CONFIG["num_key_value_heads"],
        "tie_word_embeddings": TINY_CONFIG["tie_word_embeddings"]}
# A Llama-2-7B-shaped config: big enough for LoRA's and QLoRA's savings to show.
LLAMA_7B = {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
            "tie_word_embeddings": False}


def estimate(config=TINY, **overrides):
    job = {"method": "full", "micro_batch": 4, "seq_lens": [256, 200, 128, 64],
           "grad_checkpointing": False, "dtype": "float32", "runtime": "loop", "threads": 2,
           "cpu_allocator": "tuned"}
    return estimate_memory(config, **{**job, **overrides})


def peak_activations(est) -> int:
    return max(phase["activations"] for phase in est.phases.values())


def test_breakdown_sums_to_total_and_serialises():
    est = estimate()
    assert set(est.breakdown) == {"weights", "trainable_params", "gradients",
                                  "optimizer_states", "activations", "logits",
                                  "framework_overhead"}
    assert sum(est.breakdown.values()) == est.total_bytes
    assert est.breakdown == est.phases[est.peak_phase]
    assert all(sum(p.values()) <= est.total_bytes for p in est.phases.values())
    payload = json.loads(json.dumps(est.to_dict()))
    assert payload["estimated_peak_bytes"] == est.total_bytes


def test_weights_follow_parameter_count_and_dtype():
    params = architecture(TINY).parameter_count()
    assert estimate().breakdown["weights"] == params * 4
    assert estimate(dtype="bfloat16").breakdown["weights"] == params * 2
    # tied embeddings: one vocab x hidden matrix; untied: two
    untied = architecture({**TINY, "tie_word_embeddings": False}).parameter_count()
    assert untied - params == TINY["vocab_size"] * TINY["hidden_size"]


def test_architecture_reads_a_transformers_config_like_a_dict():
    from transformers import LlamaConfig

    assert architecture(LlamaConfig(**TINY)) == architecture(TINY)


def test_activations_are_linear_in_batch():
    lens = [256] * 3 + [128]
    small = estimate(micro_batch=4, seq_lens=lens).phases["backward_start"]
    large = estimate(micro_batch=8, seq_lens=lens).phases["backward_start"]
    assert large["activations"] / small["activations"] == pytest.approx(2.0, rel=0.01)
    assert large["logits"] == 2 * small["logits"]


def test_activations_grow_roughly_linearly_in_sequence_length():
    short = peak_activations(estimate(seq_lens=[256, 10]))
    long = peak_activations(estimate(seq_lens=[512, 10]))
    # linear per token, plus the per-layer seq x seq padding mask SDPA keeps
    assert 2.0 <= long / short <= 2.4


def test_the_longest_row_sets_the_batch_length_and_max_length_truncates():
    est = estimate(seq_lens=[40, 100, 300, 64])
    assert est.job["seq_len"] == 300
    cut = estimate(seq_lens=[40, 100, 300, 64], max_length=128)
    assert cut.job["seq_len"] == 128 and cut.job["rows_truncated"] == 1
    assert cut.total_bytes < est.total_bytes


def test_checkpointing_reduces_activations():
    for method in ("full", "lora"):
        plain = estimate(method=method, micro_batch=8, seq_lens=[512] * 8)
        ckpt = estimate(method=method, micro_batch=8, seq_lens=[512] * 8,
                        grad_checkpointing=True)
        assert peak_activations(ckpt) < 0.6 * peak_activations(plain)
        assert ckpt.total_bytes < plain.total_bytes


def test_lora_trains_a_small_fraction_of_full():
    full = estimate(LLAMA_7B, micro_batch=1, seq_lens=[512])
    lora = estimate(LLAMA_7B, method="lora", micro_batch=1, seq_lens=[512])
    assert full.trainable_parameters == architecture(LLAMA_7B).parameter_count()
    assert lora.trainable_parameters < 0.01 * full.trainable_parameters
    # r x (in + out) per target: q, k, v, o are 4096 x 4096; gate, up, down 4096 x 11008
    per_layer = 16 * (4 * (4096 + 4096) + 3 * (4096 + 11008))
    assert lora.trainable_parameters == 32 * per_layer
    only_qv = estimate(LLAMA_7B, method="lora", micro_batch=1, seq_lens=[512],
                       lora_targets=["q_proj", "v_proj"])
    assert only_qv.trainable_parameters == 32 * 16 * 2 * (4096 + 4096)


def test_adamw_keeps_two_states_per_trainable_parameter_in_its_dtype():
    # fp32 trainables: LoRA adapters always (peft upcasts them), a full fine-tune in fp32
    for method, dtype in (("full", "float32"), ("lora", "bfloat16"), ("qlora", "bfloat16")):
        est = estimate(LLAMA_7B, method=method, dtype=dtype, micro_batch=1, seq_lens=[256],
                       device="cuda")
        for phase in est.phases.values():
            assert phase["optimizer_states"] == 2 * 4 * est.trainable_parameters
        assert est.phases["optimizer_step"]["gradients"] == 4 * est.trainable_parameters
    # a full fine-tune of bf16 weights: torch keeps gradients and states in bf16
    est = estimate(method="full", dtype="bfloat16")
    assert est.breakdown["optimizer_states"] == 2 * 2 * est.trainable_parameters
    assert estimate(optimizer="sgd").breakdown["optimizer_states"] == 0


def test_qlora_stores_linear_weights_in_about_four_bits():
    arch = architecture(LLAMA_7B)
    est = estimate(LLAMA_7B, method="qlora", dtype="bfloat16", micro_batch=1, seq_lens=[256],
                   device="cuda")
    linear = arch.layers * arch.linear_params_per_layer()
    bits = (est.breakdown["weights"] - arch.other_params() * 4) * 8 / linear
    assert 4.0 <= bits <= 4.25
    lora = estimate(LLAMA_7B, method="lora", dtype="bfloat16", micro_batch=1, seq_lens=[256],
                    device="cuda")
    assert est.breakdown["weights"] < 0.35 * lora.breakdown["weights"]
    assert any("CUDA" in note for note in est.notes)


def test_gradient_accumulation_keeps_gradients_through_the_forward():
    once = estimate().phases["backward_start"]["gradients"]
    kept = estimate(grad_accumulation=4).phases["backward_start"]["gradients"]
    assert once == 0 and kept == 4 * architecture(TINY).parameter_count()


def test_plan_keeps_the_job_that_already_fits():
    est = estimate()
    plan = plan_for(TINY, method="full", micro_batch=4, seq_lens=[256, 200, 128, 64],
                    grad_checkpointing=False, dtype="float32", runtime="loop", threads=2,
                    cpu_allocator="tuned", free_bytes=est.total_bytes * 2)
    assert plan.fits and plan.changes == () and len(plan.tried) == 1
    assert plan.settings["micro_batch"] == 4


def test_plan_halves_the_micro_batch_when_memory_is_short():
    lens = [512] * 64
    want = estimate(micro_batch=8, seq_lens=lens, grad_accumulation=2)
    half = estimate(micro_batch=4, seq_lens=lens, grad_accumulation=4)
    free = int((half.total_bytes + 1) / 0.85) + 1  # room for b=4, not for b=8
    assert not fits(want, free) and fits(half, free)
    plan = plan_for(TINY, method="full", micro_batch=8, seq_lens=lens, grad_checkpointing=False,
                    dtype="float32", runtime="loop", threads=2, cpu_allocator="tuned",
                    free_bytes=free,
                    grad_accumulation=2)
    assert plan.fits
    assert plan.settings["micro_batch"] == 4 and plan.settings["grad_accumulation"] == 4
    assert [t["fits"] for t in plan.tried] == [False, True]
    assert plan.estimate.total_bytes <= plan.budget_bytes
    assert "micro-batch 8 -> 4" in plan.changes[0]


def test_plan_turns_on_checkpointing_then_shortens_the_max_length():
    lens = list(range(64, 1088, 16))  # p95 is well below the longest row
    tiny_b1 = estimate(micro_batch=1, seq_lens=lens)
    ckpt_b1 = estimate(micro_batch=1, seq_lens=lens, grad_checkpointing=True)
    free = int((ckpt_b1.total_bytes + tiny_b1.total_bytes) / 2 / 0.85)
    plan = plan_for(TINY, method="full", micro_batch=8, seq_lens=lens, grad_checkpointing=False,
                    dtype="float32", runtime="loop", threads=2, cpu_allocator="tuned",
                    free_bytes=free)
    assert plan.fits and plan.settings["grad_checkpointing"]
    assert plan.settings["max_length"] is None
    # Far less memory: only a shorter max length fits.
    free = int(estimate(micro_batch=1, seq_lens=lens, grad_checkpointing=True,
                        max_length=700).total_bytes / 0.85)
    plan = plan_for(TINY, method="full", micro_batch=8, seq_lens=lens, grad_checkpointing=False,
                    dtype="float32", runtime="loop", threads=2, cpu_allocator="tuned",
                    free_bytes=free)
    assert plan.fits and plan.settings["max_length"] is not None
    assert any("truncated" in change for change in plan.changes)


def test_plan_reports_no_fit_with_every_try():
    plan = plan_for(TINY, method="full", micro_batch=2, seq_lens=[64, 32],
                    grad_checkpointing=False, dtype="float32", free_bytes=1 << 20)
    assert not plan.fits and len(plan.tried) > 2
    assert not any(t["fits"] for t in plan.tried)
    assert all(t["method"] == "full" for t in plan.tried)  # QLoRA only on CUDA


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="method"):
        estimate(method="dora")
    with pytest.raises(ValueError, match="seq_lens"):
        estimate(seq_lens=[])
    with pytest.raises(ValueError, match="LoRA targets"):
        estimate(method="lora", lora_targets=["lm_head"])


def test_an_untuned_allocator_gets_an_allowance():
    for method, share in (("full", 0.8), ("lora", 1.2)):
        tuned = estimate(method=method, micro_batch=8, seq_lens=[512] * 8)
        glibc = estimate(method=method, micro_batch=8, seq_lens=[512] * 8,
                         cpu_allocator="glibc")
        dynamic = peak_activations(tuned) + max(p["logits"] for p in tuned.phases.values())
        extra = glibc.total_bytes - tuned.total_bytes
        assert extra == pytest.approx(share * dynamic + (32 << 20), rel=0.01)


def test_free_memory_on_cpu_is_positive():
    assert free_memory_bytes("cpu") > 0


CHILD = textwrap.dedent("""
    import json, sys
    from brewslm.preflight.memory import peak_rss_bytes, tune_cpu_allocator
    assert tune_cpu_allocator()
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**json.loads(sys.argv[1]))).train()
    ids = torch.randint(4, 2048, (2, 64))
    mask = torch.ones(2, 64, dtype=torch.long)
    mask[-1, 32:] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    for _ in range(2):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    print(json.dumps({"peak": peak_rss_bytes(), "threads": torch.get_num_threads()}))
""")


def test_estimate_is_close_to_a_measured_training_step():
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(TINY)], check=True,
                          stdout=subprocess.PIPE, text=True, timeout=300)
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    est = estimate(micro_batch=2, seq_lens=[64, 32], threads=measured["threads"])
    assert 0.8 <= est.total_bytes / measured["peak"] <= 1.2
