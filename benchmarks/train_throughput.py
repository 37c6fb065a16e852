"""Benchmark: tokens/s of stage 08 `train` against a bare transformers + peft script, and MFU.

The same model, the same prepared data, the same hyperparameters, in one run: tokens/s of both,
their ratio, and the achieved FLOP/s against this CPU's measured matmul peak (MFU).

    .venv/bin/python benchmarks/train_throughput.py               # 200 steps x 3 runs per arm
    .venv/bin/python benchmarks/train_throughput.py --threads 1   # one thread in every child
    .venv/bin/python benchmarks/train_throughput.py --steps 400 --repeats 5
    .venv/bin/python benchmarks/train_throughput.py --quick       # 10 steps, 1 repeat: a smoke run

Setup (one child process): R projects (R = --repeats) on base model builtin:tiny, each through
ingest of src/brewslm/samples/tickets.jsonl, map, clean and prepare. The prepared manifests are
content-addressed, so the same artifact id in every project proves the data is the same.
builtin:tiny is pretrained for 10 steps only (BREWSLM_TINY_PRETRAIN_STEPS=10; --full-pretrain
for the real 500): its weights do not change the work per step.

Then the arms alternate, one child process per run — platform, bare, bare_eval_save, platform,
bare, ... — so that drift in the machine's load hits all of them:

- platform: `brewslm.stages.train.train(project, recipe="lora", overrides=[max_steps=N,
  eval_every=100000, save_every=100000, logging_every=10])` through the stage runner (lock,
  events, preflight gate, run manifest, metrics rows, published artifact). Each run trains its
  own project: the runner reuses a succeeded run with identical parameters and inputs, and
  changing any parameter would change the training, so a fresh project (with the same manifest)
  is what makes every run a real one. Figure: trained tokens / train_seconds, where
  train_seconds is the wall time of trainer.train() inside the engine. The HF Trainer evaluates
  and saves a checkpoint at the last step whenever its strategies are step-based, so with the
  recipe's longest cadences that window still holds one evaluation (the eval split) and one
  full checkpoint. Tokens are the Trainer's own count of trained non-padding tokens
  (`include_num_input_tokens_seen="non_padding"`: evaluation batches are not in it), in both
  arms, so both divide the same number.
- bare: benchmarks/bare_train.py, the script an ML engineer would write: from_pretrained, peft
  LoraConfig (r 32, alpha 64, dropout 0, all-linear), the same train.parquet read with pyarrow,
  a pad collator counting the real tokens, the HF Trainer with the TrainingArguments values
  BrewSLM's engine uses (lr 1e-3, cosine, warm-up 10, micro-batch 16, seed 0, fp32 on the CPU,
  no eval, no saving). Figure: tokens / wall time of trainer.train(). It imports no brewslm.
- bare_eval_save (a diagnostic; --no-diagnostic skips it): bare_train.py
  --final-eval-and-save, the same script doing the platform's forced work at the last step (one
  evaluation of the eval split, one full checkpoint). platform / bare_eval_save is the cost of
  the spine alone; bare_eval_save / bare the cost of that final evaluation and checkpoint.

All arms draw the same batches (same data, seed and sampler): `same_tokens` and
`same_final_loss` check it. `same_hyperparameters` checks the platform's effective recipe
against bare_train.py's constants. Reported: each run (with the load averages before it and
the torch thread count), the median tokens/s per arm, and ratio = median platform / median bare
(target >= 0.97: the audit spine costs at most 3%); also the ratio within each round (platform
run i / bare run i, neighbours in time) and its median. Each run also reports the process CPU time
of trainer.train() (the platform child wraps transformers.Trainer.train to read
time.process_time() around it) and tokens per CPU second, with the same ratios: with one thread
per child, CPU time is far less disturbed than wall time by other processes on the machine
(with several threads, OpenMP's spinning while it waits for a descheduled thread is CPU time
too).

Threads: by default every child uses torch's default (one thread per core). On a machine where
another process keeps a core busy, a multi-threaded torch step waits for its slowest thread
and throughput collapses (here: 2 threads with one core taken ran ~9x slower than 1 thread);
--threads 1 sets OMP_NUM_THREADS=1 in every child (the peak's included) and measures the
arms on one core each, which another process's load disturbs far less.

MFU. Training FLOPs per token of LoRA on a Llama-style model, from the base model's config.json
(h hidden, L layers, a heads x d_head, k kv heads, i intermediate, V vocabulary, r LoRA rank):

    N      = L (h·a·d + 2·h·k·d + a·d·h + 3·h·i) + V·h      frozen matmul weights: q, k, v, o,
                                                           gate, up, down, and the lm_head (a
                                                           matmul even when tied; the embedding
                                                           lookup has no FLOPs)
    N_lora = L r (h + a·d + 2(h + k·d) + a·d + h + 3(h + i))   adapter weights, A and B
    T      = sum(len^2) / sum(len) over the train rows      the mean row length a token sees
    FLOPs/token = 2N (forward) + 2N (backward: input gradients only, the base is frozen)
                + 6 N_lora (forward, input and weight gradients)
                + 12 L T a·d (attention: QK^T and AV are 4 T a·d forward, twice that backward)

(Strictly, layer 0's q, k and v need no input gradient, since nothing below them trains: about
1% of the total here.) Padding tokens are not counted (their work is waste), nor norms,
activations, softmax, the loss and the optimizer (element-wise, small). The peak is a fp32
torch matmul (1024^2 and 2048^2, warm-up then timed repeats, the best rate) in a child with the
training children's torch thread count, measured before and after the arms; the larger is the
peak. MFU = tokens/s x FLOPs/token / peak.

Runs in a temporary BREWSLM_HOME it creates and removes. Progress on stderr; one JSON object on
stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from harness import child_env, run_child

from brewslm.train.hardware import cpu_model

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "brewslm" / "samples" / "tickets.jsonl"
BARE = Path(__file__).resolve().with_name("bare_train.py")
TARGET_RATIO = 0.97
NO_EVAL_OR_SAVE = 100_000  # steps between evaluations and checkpoints: never, in a bench run
MATMUL_SIZES = (1024, 2048)


def log(message: str) -> None:
    print(f"[train_throughput] {message}", file=sys.stderr, flush=True)


# --- children -------------------------------------------------------------------------------

def setup_child(projects: int) -> dict[str, Any]:
    """`projects` projects with the same prepared manifest; the base model's folder."""
    import pyarrow.parquet as pq

    from brewslm import project
    from brewslm.basemodels.reference import resolve_base_model
    from brewslm.stages import data

    made = []
    for i in range(projects):
        info = project.create(f"bench-{i + 1}", base_model="builtin:tiny")
        for name, fn, extra in (("ingest", data.ingest, (str(SAMPLE),)),
                                ("map", data.map_rows, ()), ("clean", data.clean, ()),
                                ("prepare", data.prepare, ())):
            result = fn(info, *extra)
            if result.status != "succeeded":
                raise SystemExit(f"{name} of {info.name} {result.status}: {result.error}")
        manifest = result.to_dict()["outputs"]["manifest"]
        made.append({"name": info.name, "manifest_id": manifest["id"],
                     "manifest_dir": manifest["path"]})
        log(f"project {info.name}: manifest {manifest['id'][:12]}")
    folder = Path(made[0]["manifest_dir"])
    lengths = [len(ids) for ids in pq.read_table(folder / "train.parquet", columns=["input_ids"])
               .column("input_ids").to_pylist()]
    evals = pq.read_table(folder / "eval.parquet", columns=["input_ids", "labels"]).to_pylist()
    return {"projects": made, "base_model": str(resolve_base_model("builtin:tiny").path),
            "train_parquet": str(folder / "train.parquet"),
            "eval_parquet": str(folder / "eval.parquet"), "eval_rows": len(evals),
            "eval_tokens": sum(len(row["input_ids"]) for row in evals),
            "eval_rows_without_trained_labels": sum(all(x == -100 for x in row["labels"])
                                                    for row in evals),
            "train_rows": len(lengths),
            "mean_length": round(sum(lengths) / len(lengths), 2),
            "token_weighted_length": round(sum(n * n for n in lengths) / sum(lengths), 2),
            "max_length": max(lengths)}


def platform_child(name: str, steps: int, logging_every: int) -> dict[str, Any]:
    started = time.monotonic()
    import torch

    from brewslm import project
    from brewslm.stages.train import train

    # The process CPU time of trainer.train(): the engine's own clock is wall time only.
    cpu = _clock_trainer_train()
    overrides = [f"max_steps={steps}", f"eval_every={NO_EVAL_OR_SAVE}",
                 f"save_every={NO_EVAL_OR_SAVE}", f"logging_every={logging_every}"]
    result = train(project.get(name), recipe="lora", overrides=overrides)
    out = result.to_dict()
    if result.status != "succeeded":
        raise SystemExit(f"train {result.status}: {out.get('error')}")
    # The engine reports the Trainer's count of trained (non-padding) tokens, eval excluded.
    evaluations = [e for e in out["events"] if e["reason_code"] == "train_eval"]
    tokens = out["tokens"]
    return {"steps": out["steps"], "tokens": tokens, "train_seconds": out["train_seconds"],
            "tokens_per_second": round(tokens / out["train_seconds"], 1),
            "cpu_seconds": round(cpu["seconds"], 3),
            "tokens_per_cpu_second": round(tokens / cpu["seconds"], 1),
            "evaluations": len(evaluations), "checkpoints": _checkpoints(out["checkpoint"]),
            "reported_tokens": out["tokens"], "engine_tokens_per_second": out["tokens_per_second"],
            "final_loss": out["final_loss"], "trainable_parameters": out["trainable_parameters"],
            "total_parameters": out["total_parameters"], "recipe": out["recipe"],
            "stage_seconds": out["duration_s"],
            "process_seconds": round(time.monotonic() - started, 2),
            "torch_threads": torch.get_num_threads(), "run_id": out["run_id"]}


def _clock_trainer_train() -> dict[str, float]:
    """Wrap transformers.Trainer.train to read time.process_time() around it (two clock reads;
    the engine imports Trainer from transformers, so it calls the wrapper)."""
    import transformers

    original, clock = transformers.Trainer.train, {"seconds": 0.0}

    def train(self, *args, **kwargs):
        start = time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            clock["seconds"] += time.process_time() - start

    transformers.Trainer.train = train
    return clock


def _checkpoints(last: str | None) -> int:
    return len(list(Path(last).parent.glob("checkpoint-*"))) if last else 0


def peak_child(repeats: int) -> dict[str, Any]:
    """fp32 matmul GFLOP/s: per size the best and the median of `repeats` timed products."""
    import torch

    out: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "sizes": {}}
    for n in MATMUL_SIZES:
        a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
        for _ in range(3):
            torch.mm(a, b, out=c)  # warm-up
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b, out=c)
            rates.append(2 * n ** 3 / (time.perf_counter() - start) / 1e9)
        out["sizes"][str(n)] = {"best_gflops": round(max(rates), 1),
                                "median_gflops": round(statistics.median(rates), 1)}
    out["gflops"] = max(s["best_gflops"] for s in out["sizes"].values())
    return out


# --- FLOPs ----------------------------------------------------------------------------------

def flops_per_token(config: dict[str, Any], r: int, tokens_length: float) -> dict[str, Any]:
    """The docstring's formula, with its terms."""
    h, layers, vocab = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    d = config.get("head_dim") or h // heads
    inter = config["intermediate_size"]
    q, kv_proj, o, mlp = h * heads * d, 2 * h * kv * d, heads * d * h, 3 * h * inter
    n_layers = layers * (q + kv_proj + o + mlp)
    n = n_layers + vocab * h
    n_lora = layers * r * ((h + heads * d) + 2 * (h + kv * d) + (heads * d + h) + 3 * (h + inter))
    attention = 12 * layers * tokens_length * heads * d
    total = 4 * n + 6 * n_lora + attention
    return {"frozen_matmul_params": n, "lm_head_params": vocab * h, "lora_params": n_lora,
            "attention_T": tokens_length, "forward_frozen": 2 * n, "backward_frozen": 2 * n,
            "lora": 6 * n_lora, "attention": round(attention), "total": round(total),
            "formula": "4*N + 6*N_lora + 12*L*T*heads*head_dim"}


# --- the parent -----------------------------------------------------------------------------

def compare_hyperparameters(recipe: dict[str, Any], bare: dict[str, Any]) -> list[str]:
    """Names of the knobs where the platform's effective recipe and bare_train.py differ."""
    differ = [f"lora.{k}" for k in bare["lora"] if recipe["lora"][k] != bare["lora"][k]]
    differ += [k for k in bare if k != "lora" and recipe[k] != bare[k]]
    # What bare_train.py does not do at all, the recipe must not do either.
    differ += [k for k in ("packing", "gradient_checkpointing") if recipe[k]]
    if recipe["precision"] not in ("auto", "fp32"):  # auto is fp32 on a CPU
        differ.append("precision")
    return differ


def summarise(runs: list[dict[str, Any]], flops: int, peak_gflops: float) -> dict[str, Any]:
    rates = [run["tokens_per_second"] for run in runs]
    median = statistics.median(rates)
    achieved = median * flops / 1e9
    return {"median_tokens_per_second": round(median, 1), "min_tokens_per_second": min(rates),
            "max_tokens_per_second": max(rates),
            "median_tokens_per_cpu_second": round(statistics.median(
                run["tokens_per_cpu_second"] for run in runs), 1),
            "achieved_gflops": round(achieved, 2),
            "mfu": round(achieved / peak_gflops, 4), "runs": runs}


def run_arm(arm: str, i: int, args: argparse.Namespace, setup: dict[str, Any],
            env: dict[str, str]) -> dict[str, Any]:
    """One run of one arm in its own child process."""
    steps = ["--steps", str(args.steps)]
    if arm == "platform":
        return run_child(__file__, ["--child", "platform", "--project",
                                    setup["projects"][i]["name"], "--logging-every",
                                    str(args.logging_every), *steps], env)[0]
    extra = ["--final-eval-and-save", setup["eval_parquet"]] if arm == "bare_eval_save" else []
    return run_child(str(BARE), ["--model", setup["base_model"], "--data", setup["train_parquet"],
                                 "--logging-steps", str(args.logging_every), *steps, *extra],
                     env)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm, alternating")
    parser.add_argument("--logging-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0,
                        help="OMP_NUM_THREADS for every child (default: torch's, all cores)")
    parser.add_argument("--no-diagnostic", action="store_true",
                        help="skip the third arm (bare + the final evaluation and checkpoint)")
    parser.add_argument("--quick", action="store_true", help="10 steps, 1 repeat: a smoke run")
    parser.add_argument("--full-pretrain", action="store_true",
                        help="pretrain builtin:tiny for its full 500 steps (~3 min)")
    parser.add_argument("--child", choices=("setup", "platform", "peak"), help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 10, 1
    if args.child == "setup":
        print(json.dumps(setup_child(args.repeats)))
        return
    if args.child == "platform":
        print(json.dumps(platform_child(args.project, args.steps, args.logging_every)))
        return
    if args.child == "peak":
        print(json.dumps(peak_child(5 if args.quick else 20)))
        return

    started = time.monotonic()
    names = ("platform", "bare") + (() if args.no_diagnostic else ("bare_eval_save",))
    load_start = [round(x, 2) for x in os.getloadavg()]
    with child_env("brewslm-bench-tt-") as (_home, env):
        if not args.full_pretrain:
            env["BREWSLM_TINY_PRETRAIN_STEPS"] = "10"
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        log(f"setup: {args.repeats} project(s) through ingest, map, clean, prepare")
        setup, _ = run_child(__file__, ["--child", "setup", "--repeats", str(args.repeats)], env)
        if len({p["manifest_id"] for p in setup["projects"]}) != 1:
            raise SystemExit("the projects' manifests differ: not the same data")
        peak_args = ["--child", "peak", *(["--quick"] * args.quick)]
        log("peak: fp32 matmul")
        peak_before, _ = run_child(__file__, peak_args, env)
        log(f"  {peak_before['gflops']} GFLOP/s on {peak_before['torch_threads']} threads")
        arms: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for i in range(args.repeats):
            for arm in names:
                load = [round(x, 2) for x in os.getloadavg()]
                log(f"run {i + 1}/{args.repeats} {arm}: {args.steps} steps (load {load[0]})")
                fig = run_arm(arm, i, args, setup, env)
                fig["loadavg_before"] = load
                arms[arm].append(fig)
                log(f"  {fig['tokens_per_second']:,.0f} tokens/s ({fig['tokens']:,} tokens in "
                    f"{fig['train_seconds']} s; {fig['tokens_per_cpu_second']:,.0f} per CPU s)")
        log("peak again: fp32 matmul")
        peak_after, _ = run_child(__file__, peak_args, env)
        log(f"  {peak_after['gflops']} GFLOP/s")
        config = json.loads((Path(setup["base_model"]) / "config.json").read_text())

    recipe = arms["platform"][0]["recipe"]
    bare = arms["bare"][0]
    flops = flops_per_token(config, recipe["lora"]["r"], setup["token_weighted_length"])
    peak = max(peak_before["gflops"], peak_after["gflops"])
    summary = {name: summarise(runs, flops["total"], peak) for name, runs in arms.items()}
    median = {name: arm["median_tokens_per_second"] for name, arm in summary.items()}
    ratio = round(median["platform"] / median["bare"], 4)
    per_cpu = {name: arm["median_tokens_per_cpu_second"] for name, arm in summary.items()}
    ratios = {"platform_over_bare": ratio,
              "cpu_platform_over_bare": round(per_cpu["platform"] / per_cpu["bare"], 4)}
    if "bare_eval_save" in median:
        ratios["platform_over_bare_eval_save"] = round(
            median["platform"] / median["bare_eval_save"], 4)
        ratios["bare_eval_save_over_bare"] = round(median["bare_eval_save"] / median["bare"], 4)
        ratios["cpu_platform_over_bare_eval_save"] = round(
            per_cpu["platform"] / per_cpu["bare_eval_save"], 4)
        ratios["cpu_bare_eval_save_over_bare"] = round(
            per_cpu["bare_eval_save"] / per_cpu["bare"], 4)
    # Runs next to each other in time share the machine's load: the ratio per round, too.
    paired = [round(p["tokens_per_second"] / b["tokens_per_second"], 4)
              for p, b in zip(arms["platform"], arms["bare"], strict=True)]
    ratios["paired_platform_over_bare"] = paired
    ratios["median_paired_platform_over_bare"] = round(statistics.median(paired), 4)
    mismatched = compare_hyperparameters(recipe, bare["hyperparameters"])
    threads = {run["torch_threads"] for runs in arms.values() for run in runs}
    threads |= {peak_before["torch_threads"], peak_after["torch_threads"]}
    trainable = {run["trainable_parameters"] for runs in arms.values() for run in runs}
    for runs in arms.values():
        for run in runs:
            run.pop("recipe", None)
            run.pop("hyperparameters", None)
    print(json.dumps({
        "steps": args.steps, "repeats": args.repeats, "logging_every": args.logging_every,
        "micro_batch": recipe["micro_batch"], "lora_r": recipe["lora"]["r"],
        "ratio_platform_over_bare": ratio, "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO, "ratios": ratios,
        "peak_gflops": peak, "flops_per_token": flops, **summary,
        "same_tokens": len({run["tokens"] for runs in arms.values() for run in runs}) == 1,
        "same_final_loss": len({run["final_loss"] for runs in arms.values()
                                for run in runs}) == 1,
        "same_hyperparameters": not mismatched, "mismatched_hyperparameters": mismatched,
        "lora_params_match": trainable == {flops["lora_params"]},
        "peak_before": peak_before, "peak_after": peak_after,
        "torch_threads": sorted(threads), "omp_num_threads": args.threads or None,
        "cpu_count": os.cpu_count(), "cpu": cpu_model(),
        "loadavg_start": load_start, "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "data": {k: v for k, v in setup.items()
                 if k not in ("projects", "base_model", "train_parquet", "eval_parquet")},
        "manifest_id": setup["projects"][0]["manifest_id"],
        "pretrain_steps": 500 if args.full_pretrain else 10,
        "seconds": round(time.monotonic() - started, 1)}, indent=2))


if __name__ == "__main__":
    main()
