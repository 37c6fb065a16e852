"""Benchmark: the preflight memory estimate against the real peak memory of training.

    .venv/bin/python benchmarks/preflight_memory.py                    # the grid, tuned malloc
    .venv/bin/python benchmarks/preflight_memory.py --allocator glibc  # the grid, malloc defaults
    .venv/bin/python benchmarks/preflight_memory.py --quick            # two rows, a smoke run
    .venv/bin/python benchmarks/preflight_memory.py --overhead         # re-measure CPU constants

For each configuration of a grid of small Llama models built locally (no download) — two sizes,
full fine-tune and LoRA (peft), micro-batch 1/4/8, sequence length 64/256/512, gradient
checkpointing on and off, two bfloat16 and two HF Trainer rows — a fresh child process builds
the model and runs real optimizer steps (forward with labels, backward, fused AdamW step,
gradients set to None), then reports its own peak RSS (VmHWM). Every batch but a batch
of one pads its last row to half the length, as real batches are padded to their longest row.
The parent asks `brewslm.preflight.estimate_memory` for the same job and prints one JSON
object: a row per configuration with predicted and measured bytes and their ratio, and a
summary (min / max ratio, share within 0.85-1.15).

`--allocator tuned` (the default) has the child call `tune_cpu_allocator()` before importing
torch, so that RSS follows the live tensors; `--allocator glibc` leaves malloc's defaults and
checks the estimate's `cpu_allocator="glibc"` allowance, an upper bound.

`--overhead` measures what the constants `CPU_OVERHEAD_*` in src/brewslm/preflight/memory.py
hold: the peak RSS of the same training step on a model of (almost) zero size, per runtime
(plain loop or HF Trainer), with and without peft, on 1 and 2 threads.

Progress goes to stderr; one JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

# Two Llama sizes: builtin:tiny's shape, and a larger one with an untied lm_head so that both
# embedding layouts are exercised.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"vocab_size": 2048, "hidden_size": 128, "intermediate_size": 344,
             "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
             "tie_word_embeddings": True},
    "small": {"vocab_size": 8192, "hidden_size": 256, "intermediate_size": 688,
              "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 2,
              "tie_word_embeddings": False},
}
# A model of (almost) zero size: what remains of its peak RSS is the framework.
ZERO_SIZE = {"vocab_size": 16, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
             "num_attention_heads": 1, "num_key_value_heads": 1, "tie_word_embeddings": True}
STEPS = 2  # step 1 allocates the optimizer states, step 2 runs with them
BAND = (0.85, 1.15)


def log(message: str) -> None:
    print(f"[preflight_memory] {message}", file=sys.stderr, flush=True)


def job(size: str, method: str, batch: int, seq: int, ckpt: bool, *, dtype: str = "float32",
        runtime: str = "loop", allocator: str = "tuned") -> dict[str, Any]:
    return {"size": size, "method": method, "micro_batch": batch, "seq": seq, "ckpt": ckpt,
            "dtype": dtype, "runtime": runtime, "allocator": allocator}


def grid(quick: bool = False, allocator: str = "tuned") -> list[dict[str, Any]]:
    """The configurations: (batch, seq, checkpointing) points per size and method, chosen to
    cover small and large activations and logits, plus bfloat16 and HF Trainer rows."""
    rows = _grid(quick)
    return [{**row, "allocator": allocator} for row in rows]


def _grid(quick: bool) -> list[dict[str, Any]]:
    if quick:
        return [job("tiny", "full", 1, 64, False), job("small", "lora", 8, 512, True)]
    points = [(1, 64, False), (4, 256, False), (4, 256, True), (8, 512, False), (8, 512, True),
              (1, 512, False)]
    rows = [job(size, method, b, s, ckpt) for size in SIZES for method in ("full", "lora")
            for b, s, ckpt in points]
    rows += [job("small", "full", 4, 256, False, dtype="bfloat16"),
             job("small", "lora", 4, 256, False, dtype="bfloat16"),
             job("small", "lora", 8, 256, False, runtime="trainer"),
             job("small", "full", 4, 512, True, runtime="trainer")]
    return rows


# --- the child: build, train, report --------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Build the model, run STEPS optimizer steps, return the peak RSS of this process."""
    if spec.get("allocator", "tuned") == "tuned":
        from brewslm.preflight.memory import tune_cpu_allocator

        tune_cpu_allocator()  # first, before torch, as a training process should
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    model = build_model(spec)
    batch = make_batch(spec, model.config.vocab_size)
    start = time.perf_counter()
    if spec["runtime"] == "trainer":
        train_with_trainer(model, batch, spec)
    else:
        train_loop(model, batch, spec.get("steps", STEPS))
    from brewslm.preflight.memory import peak_rss_bytes

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_bytes": peak_rss_bytes(),  # VmHWM: ru_maxrss can be the parent's
            "seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "minor_faults": usage.ru_minflt, "threads": torch.get_num_threads()}


def build_model(spec: dict[str, Any]) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dims = ZERO_SIZE if spec["size"] == "zero" else SIZES[spec["size"]]
    config = LlamaConfig(max_position_embeddings=1024, **dims)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(getattr(torch, spec["dtype"]))
    if spec["ckpt"] and spec["runtime"] == "loop":
        model.gradient_checkpointing_enable()  # the Trainer does this itself from its args
    if spec["method"] == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    model.train()
    return model


def make_batch(spec: dict[str, Any], vocab: int) -> dict[str, Any]:
    """Random ids; every row but a lone one has its last row padded to half the length."""
    import torch

    b, s = spec["micro_batch"], spec["seq"]
    ids = torch.randint(4, vocab, (b, s), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(b, s, dtype=torch.long)
    if b > 1:
        mask[-1, s // 2:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train_loop(model: Any, batch: dict[str, Any], steps: int = STEPS) -> None:
    """The HF Trainer's step without the Trainer: the model output (and its logits) is dropped
    before backward, fused AdamW (the Trainer's default optimizer), gradients set to None."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def train_with_trainer(model: Any, batch: dict[str, Any], spec: dict[str, Any]) -> None:
    from transformers import Trainer, TrainingArguments

    rows = [{k: v[i] for k, v in batch.items()} for i in range(spec["micro_batch"])]
    with tempfile.TemporaryDirectory(prefix="brewslm-bench-pf-") as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=spec["micro_batch"], max_steps=STEPS,
            learning_rate=1e-4, use_cpu=True, report_to=[], save_strategy="no",
            logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
            gradient_checkpointing=spec["ckpt"], bf16=spec["dtype"] == "bfloat16",
            remove_unused_columns=False)
        Trainer(model=model, args=args, train_dataset=rows).train()


# --- the parent: run children, compare with the estimate ------------------------------------


def run_child(spec: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        spec = {**spec, "threads": threads}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                          env=env, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child {spec} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def predict(spec: dict[str, Any], threads: int) -> Any:
    from brewslm.preflight import estimate_memory

    dims = SIZES[spec["size"]]
    b, s = spec["micro_batch"], spec["seq"]
    # The lengths the batch really holds: the longest row at s, the padded one at s // 2.
    seq_lens = [s] * (b - 1) + [s // 2] if b > 1 else [s]
    return estimate_memory(dims, method=spec["method"], micro_batch=b, seq_lens=seq_lens,
                           grad_checkpointing=spec["ckpt"], dtype=spec["dtype"], device="cpu",
                           runtime=spec["runtime"], threads=threads,
                           cpu_allocator=spec["allocator"])


def compare(spec: dict[str, Any]) -> dict[str, Any]:
    measured = run_child(spec)
    estimate = predict(spec, measured["threads"])
    ratio = estimate.total_bytes / measured["peak_rss_bytes"]
    row = {**spec, "predicted_bytes": estimate.total_bytes,
           "measured_bytes": measured["peak_rss_bytes"], "ratio": round(ratio, 3),
           "predicted_mib": round(estimate.total_bytes / 2**20, 1),
           "measured_mib": round(measured["peak_rss_bytes"] / 2**20, 1),
           "peak_phase": estimate.peak_phase, "seconds": measured["seconds"]}
    log(f"{label(spec)}: predicted {row['predicted_mib']} MiB, measured "
        f"{row['measured_mib']} MiB, ratio {row['ratio']}")
    return row


def label(spec: dict[str, Any]) -> str:
    return (f"{spec['size']} {spec['method']} b{spec['micro_batch']} s{spec['seq']} "
            f"ckpt={'on' if spec['ckpt'] else 'off'} {spec['dtype']} {spec['runtime']} "
            f"{spec['allocator']}")


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [row["ratio"] for row in rows]
    inside = [r for r in ratios if BAND[0] <= r <= BAND[1]]
    return {"configs": len(rows), "min_ratio": min(ratios), "max_ratio": max(ratios),
            "within_band": len(inside), "share_within_band": round(len(inside) / len(rows), 3),
            "band": list(BAND)}


def measure_overhead() -> dict[str, Any]:
    """Peak RSS of the training loop on the zero-size model, per runtime, method and threads."""
    figures: dict[str, Any] = {}
    for runtime in ("loop", "trainer"):
        for method in ("full", "lora"):
            for threads in (1, 2):
                spec = job("zero", method, 1, 8, False, runtime=runtime)
                peak = run_child(spec, threads=threads)["peak_rss_bytes"]
                key = f"{runtime}/{method}/threads={threads}"
                figures[key] = peak
                log(f"{key}: {peak / 2**20:.1f} MiB")
    return {"zero_size_peak_rss_bytes": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two configurations only")
    parser.add_argument("--overhead", action="store_true", help="measure the CPU constants")
    parser.add_argument("--allocator", choices=("tuned", "glibc"), default="tuned",
                        help="tuned: the child calls tune_cpu_allocator() first (as the train "
                        "stage should); glibc: malloc's defaults")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.overhead:
        print(json.dumps(measure_overhead(), indent=2))
        return
    start = time.perf_counter()
    rows = [compare(spec) for spec in grid(args.quick, args.allocator)]
    print(json.dumps({"rows": rows, "summary": summary(rows),
                      "seconds": round(time.perf_counter() - start, 1)}, indent=2))


if __name__ == "__main__":
    main()
