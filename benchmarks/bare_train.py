"""The baseline of train_throughput.py: LoRA fine-tuning written by hand with transformers + peft,
as an ML engineer would write it without BrewSLM (it imports nothing from brewslm).

    .venv/bin/python benchmarks/bare_train.py --model MODEL_DIR --data TRAIN_PARQUET --steps 200
    .venv/bin/python benchmarks/bare_train.py ... --final-eval-and-save EVAL_PARQUET

Reads the tokenized rows (input_ids, labels with -100 where the loss is masked) from a Parquet
file, pads each batch to its longest row (input_ids with the pad id, labels with -100, an
attention mask) and counts the real tokens in the collator, wraps the model in LoRA adapters on
all linear layers and runs the HF Trainer with the hyperparameters below: the values of
BrewSLM's lora recipe (src/brewslm/train/recipes/lora.yaml) written out as constants, and the
TrainingArguments BrewSLM's engine builds from them — no evaluation, no checkpoints. Prints the
Trainer's log lines, then one JSON object as the last line of stdout: tokens trained on, the
wall time of trainer.train(), tokens per second, and the process CPU time of trainer.train().

--final-eval-and-save EVAL_PARQUET is a diagnostic: step-based evaluation and saving with
cadences longer than the run, which makes the Trainer evaluate once on that split and save a
full checkpoint (adapter, optimizer, scheduler, RNG) at the last step, inside trainer.train() —
what BrewSLM's engine always does, since its recipe has no "never" for either. The collator
also batches the evaluation rows; their tokens are not counted as trained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import pyarrow.parquet as pq
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

HYPERPARAMETERS = {
    "lora": {"r": 32, "alpha": 64, "dropout": 0.0, "target_modules": "all-linear"},
    "learning_rate": 1e-3, "lr_scheduler": "cosine", "warmup_steps": 10, "weight_decay": 0.0,
    "max_grad_norm": 1.0, "micro_batch": 16, "grad_accumulation": 1, "seed": 0,
}


class Collator:
    """Right-pads a batch to its longest row and counts the real (non-padding) tokens."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id
        self.tokens = 0

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        input_ids, labels, mask = [], [], []
        for row in rows:
            pad = width - len(row["input_ids"])
            input_ids.append(row["input_ids"] + [self.pad_id] * pad)
            labels.append(row["labels"] + [-100] * pad)
            mask.append([1] * len(row["input_ids"]) + [0] * pad)
            self.tokens += len(row["input_ids"])
        return {"input_ids": torch.tensor(input_ids), "labels": torch.tensor(labels),
                "attention_mask": torch.tensor(mask)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the base model folder")
    parser.add_argument("--data", required=True, help="train.parquet of a prepared manifest")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--logging-steps", type=int, default=10)
    parser.add_argument("--final-eval-and-save", metavar="EVAL_PARQUET",
                        help="evaluate on this split and save a checkpoint at the last step")
    args = parser.parse_args()
    hp = HYPERPARAMETERS
    started = time.monotonic()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id
    rows = pq.read_table(args.data, columns=["input_ids", "labels"]).to_pylist()
    eval_rows = (pq.read_table(args.final_eval_and_save, columns=["input_ids", "labels"])
                 .to_pylist() if args.final_eval_and_save else None)
    if eval_rows is None:
        cadence: dict = {"eval_strategy": "no", "save_strategy": "no"}
    else:
        never = 100_000  # longer than the run: the Trainer still evaluates and saves at its end
        cadence = {"eval_strategy": "steps", "eval_steps": never, "save_strategy": "steps",
                   "save_steps": never, "per_device_eval_batch_size": hp["micro_batch"]}

    torch.manual_seed(hp["seed"])
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    lora = hp["lora"]
    model = get_peft_model(model, LoraConfig(
        r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"], task_type="CAUSAL_LM"))

    collator = Collator(pad_id)
    with tempfile.TemporaryDirectory(prefix="bare-train-") as out:
        training_args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=hp["micro_batch"],
            gradient_accumulation_steps=hp["grad_accumulation"],
            learning_rate=hp["learning_rate"], lr_scheduler_type=hp["lr_scheduler"],
            warmup_steps=hp["warmup_steps"], weight_decay=hp["weight_decay"],
            max_grad_norm=hp["max_grad_norm"], max_steps=args.steps,
            logging_steps=args.logging_steps, logging_first_step=True,
            seed=hp["seed"], data_seed=hp["seed"], use_cpu=True, report_to="none",
            disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
            include_num_input_tokens_seen="non_padding", **cadence)
        trainer = Trainer(model=model, args=training_args, train_dataset=rows,
                          eval_dataset=eval_rows, data_collator=collator)
        start, cpu_start = time.monotonic(), time.process_time()
        trainer.train()
        seconds, cpu_seconds = time.monotonic() - start, time.process_time() - cpu_start
        checkpoints = [p for p in os.listdir(out) if p.startswith("checkpoint-")]

    params = list(model.parameters())
    evaluations = sum("eval_loss" in entry for entry in trainer.state.log_history)
    # The Trainer's own count of trained (non-padding) tokens, as the platform reports it; the
    # collator's count also holds the evaluation rows and one prefetched batch never trained on.
    tokens = trainer.state.num_input_tokens_seen
    print(json.dumps({
        "steps": trainer.state.global_step, "tokens": tokens,
        "collator_tokens": collator.tokens,
        "train_seconds": round(seconds, 3), "tokens_per_second": round(tokens / seconds, 1),
        "cpu_seconds": round(cpu_seconds, 3),
        "tokens_per_cpu_second": round(tokens / cpu_seconds, 1), "evaluations": evaluations,
        "checkpoints": len(checkpoints),
        "final_loss": next((e["loss"] for e in reversed(trainer.state.log_history)
                            if "loss" in e), None),
        "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
        "total_parameters": sum(p.numel() for p in params),
        "rows": len(rows), "process_seconds": round(time.monotonic() - started, 2),
        "torch_threads": torch.get_num_threads(), "hyperparameters": hp}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
