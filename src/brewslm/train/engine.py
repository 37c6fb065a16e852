"""The training engine: one recipe, one manifest, one base model -> a trained model, on the
Hugging Face Trainer with peft. Stage 08 calls it in-process; `launch.py` calls it in each rank
of a torchrun / accelerate launch.

    from brewslm.train.engine import FitSpec, fit
    spec = FitSpec(base_model=path, manifest_dir=manifest.path, recipe=recipe,
                   work_dir=run_dir, manifest_hash=h, recipe_hash=rh, run_id=run_id)
    outcome = fit(spec, sink=print)      # sink gets one dict per log line (loss, lr, ...)
    outcome.steps, outcome.final_loss, outcome.model_dir, outcome.stopped

What it adds to a hand-written Trainer script, and nothing else: the labels prepare already
masked (no re-tokenizing), tokens/s from the Trainer's own count of real training tokens (eval
batches excluded, summed over ranks), checkpoints tagged with
the manifest and recipe hashes (a resume refuses a checkpoint of other data), a wall-clock
budget, cancellation that saves a checkpoint first, early stopping on eval loss, and a
deterministic seed. The Trainer does the rest: optimizer, schedule, accumulation, clipping,
checkpoint and RNG state, DDP / FSDP / DeepSpeed when launched under torchrun or accelerate.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, TrainerCallback

CHECKPOINT_TAG = "brewslm-checkpoint.json"
CHECKPOINT_PREFIX = "checkpoint-"
FINAL_DIR = "final"

Sink = Callable[[dict[str, Any]], None]


@dataclass
class FitSpec:
    """Everything one training run needs; JSON-serialisable so a launcher can hand it on."""

    base_model: str  # a local folder (resolved by the stage)
    manifest_dir: str  # the prepare manifest artifact: train.parquet, eval.parquet
    recipe: dict[str, Any]  # the effective recipe (validated)
    work_dir: str  # checkpoints/ and final/ go here
    manifest_hash: str
    recipe_hash: str
    run_id: str
    device: str = "cpu"  # resolved: cpu | cuda
    dtype: str = "float32"  # resolved: float32 | bfloat16 | float16
    resume_from: str | None = None  # a checkpoint folder to continue from
    # On CUDA, when a step runs out of memory: retry once with half the micro-batch and twice
    # the accumulation (the effective batch stays).
    retry_oom: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FitSpec:
        return cls(**json.loads(text))


@dataclass
class FitOutcome:
    steps: int
    max_steps: int
    epochs: float
    final_loss: float | None  # mean training loss of the last logging window
    eval_losses: list[tuple[int, float]]
    tokens: int  # non-padding tokens trained on in this session, all ranks together
    seconds: float
    tokens_per_second: float | None
    world_size: int
    model_dir: str | None  # final/ (adapter or full weights + tokenizer); None when stopped
    last_checkpoint: str | None
    stopped: str | None = None  # None (completed) | early_stopping | budget | cancelled
    peak_memory_bytes: int | None = None
    retried_oom: dict[str, Any] | None = None
    trainable_parameters: int = 0
    total_parameters: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("log")
        return out


class StopRequest:
    """Set from a signal handler or another thread; the run checkpoints and stops at the next
    optimizer step."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str = "cancelled") -> None:
        self.reason = self.reason or reason


def fit(spec: FitSpec, *, sink: Sink | None = None, stop: StopRequest | None = None) -> FitOutcome:
    """Train per spec; on CUDA out-of-memory retry once with a halved micro-batch."""
    try:
        with quiet_deprecations():
            return _fit_once(spec, sink, stop)
    except Exception as exc:
        if not (spec.retry_oom and spec.device == "cuda" and is_out_of_memory(exc)):
            raise
        retried = halved_batch(spec.recipe)
        if retried is None:
            raise
        _free_cuda()
        outcome = _fit_once(FitSpec(**{**asdict(spec), "recipe": retried, "retry_oom": False}),
                            sink, stop)
        outcome.retried_oom = {"micro_batch": retried["micro_batch"],
                               "grad_accumulation": retried["grad_accumulation"],
                               "error": str(exc)[:500]}
        return outcome


@contextmanager
def quiet_deprecations() -> Iterator[None]:
    # peft 0.21 calls transformers 5's deprecated is_gradient_checkpointing on every model it
    # wraps: a warning for their maintainers, not for someone training a model.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                                category=FutureWarning)
        yield


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def halved_batch(recipe: dict[str, Any]) -> dict[str, Any] | None:
    if recipe["micro_batch"] < 2:
        return None
    return {**recipe, "micro_batch": recipe["micro_batch"] // 2,
            "grad_accumulation": recipe["grad_accumulation"] * 2}


def _free_cuda() -> None:
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()


# --- one attempt -------------------------------------------------------------------------------

def _fit_once(spec: FitSpec, sink: Sink | None, stop: StopRequest | None) -> FitOutcome:
    import torch
    import transformers
    from transformers import Trainer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    if spec.device == "cpu" and spec.recipe.get("cpu_allocator") == "tuned":
        from brewslm.preflight.memory import tune_cpu_allocator

        tune_cpu_allocator()  # RSS then follows the live tensors, as preflight's estimate does
    if spec.resume_from:
        check_checkpoint(spec, Path(spec.resume_from))
    model = build_model(spec)
    train_set, eval_set = load_data(spec)
    from brewslm.train.data import PadCollator

    tokenizer = _tokenizer(spec.base_model)
    pad = tokenizer.pad_token_id
    collator = PadCollator(pad if pad is not None else tokenizer.eos_token_id)
    stop = stop or StopRequest()
    trace = TraceCallback(sink)
    callbacks = [trace, CheckpointTagger(spec), StopCallback(spec, stop, trace)]
    args = training_arguments(spec, len(train_set))
    trainer = Trainer(model=model, args=args, data_collator=collator, train_dataset=train_set,
                      eval_dataset=eval_set if len(eval_set) else None, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # disable_tqdm adds it; traces go to the sink
    if spec.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=spec.resume_from)
    seconds = time.monotonic() - started
    state = trainer.state
    model_dir = None
    if stop.reason in (None, "early_stopping"):
        model_dir = str(Path(spec.work_dir) / FINAL_DIR)
        trainer.save_model(model_dir)  # rank 0 only; the adapter alone for a peft model
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(model_dir)
    world = args.world_size
    trainable, total = _parameter_counts(model)
    return FitOutcome(
        steps=state.global_step, max_steps=state.max_steps, epochs=round(state.epoch or 0, 4),
        final_loss=trace.last_loss, eval_losses=trace.eval_losses,
        tokens=trace.tokens_total, seconds=round(seconds, 3),
        tokens_per_second=trace.tokens_per_second(), world_size=world,
        model_dir=model_dir, last_checkpoint=latest_checkpoint(Path(spec.work_dir)),
        stopped=stop.reason, peak_memory_bytes=_peak_memory(spec.device),
        trainable_parameters=trainable, total_parameters=total, log=trace.records)


def training_arguments(spec: FitSpec, train_rows: int) -> Any:
    from transformers import TrainingArguments

    r = spec.recipe
    # Null cadences mean once per epoch (the recipe's documented default).
    eval_strategy = "steps" if r["eval_every"] else "epoch"
    save_strategy = "steps" if r["save_every"] else "epoch"
    return TrainingArguments(
        output_dir=str(Path(spec.work_dir) / "checkpoints"),
        per_device_train_batch_size=r["micro_batch"],
        per_device_eval_batch_size=r["micro_batch"],
        gradient_accumulation_steps=r["grad_accumulation"],
        learning_rate=r["learning_rate"], lr_scheduler_type=r["lr_scheduler"],
        warmup_steps=r["warmup_steps"], weight_decay=r["weight_decay"],
        max_grad_norm=r["max_grad_norm"] if r["max_grad_norm"] is not None else 0.0,
        num_train_epochs=float(r["epochs"]), max_steps=r["max_steps"] or -1,
        logging_steps=r["logging_every"], logging_first_step=True,
        eval_strategy=eval_strategy, eval_steps=r["eval_every"],
        save_strategy=save_strategy, save_steps=r["save_every"],
        seed=r["seed"], data_seed=r["seed"],
        bf16=spec.dtype == "bfloat16" and spec.device == "cuda",
        fp16=spec.dtype == "float16",
        activation_checkpointing=r["gradient_checkpointing"],
        activation_checkpointing_kwargs={"use_reentrant": False},
        use_cpu=spec.device == "cpu",
        # Under torchrun / accelerate (WORLD_SIZE > 1) on CPU the Trainer runs DDP over gloo.
        ddp_backend="gloo" if spec.device == "cpu" and _distributed() else None,
        ddp_find_unused_parameters=False,
        remove_unused_columns=False, report_to="none", disable_tqdm=True,
        # Real (non-padding) training tokens, summed over ranks: eval batches are not counted.
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0, save_only_model=False,
    )


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


# --- model and data ----------------------------------------------------------------------------

def build_model(spec: FitSpec) -> Any:
    """The base model in the recipe's dtype; wrapped in LoRA adapters for lora / qlora."""
    import torch
    from transformers import AutoModelForCausalLM

    r = spec.recipe
    dtype = getattr(torch, spec.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if r["method"] == "qlora":
        kwargs["quantization_config"] = _bnb_config(r, dtype)
    # The seed decides adapter init (and full-FT dropout) before the Trainer seeds the rest.
    torch.manual_seed(r["seed"])
    model = AutoModelForCausalLM.from_pretrained(spec.base_model, **kwargs)
    if spec.dtype == "bfloat16" and spec.device == "cpu":
        model = model.to(dtype)  # bf16 weights on CPU: the Trainer's bf16 flag is CUDA autocast
    if r["method"] == "full":
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if r["method"] == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=r["gradient_checkpointing"])
    lora = r["lora"]
    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                        target_modules=lora["target_modules"], task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _bnb_config(recipe: dict[str, Any], compute_dtype: Any) -> Any:
    from transformers import BitsAndBytesConfig

    q = recipe.get("quantization") or {}
    bits = q.get("bits", 4)
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.get("quant_type", "nf4"),
                              bnb_4bit_use_double_quant=q.get("double_quant", True),
                              bnb_4bit_compute_dtype=compute_dtype)


def load_data(spec: FitSpec) -> tuple[Any, Any]:
    from brewslm.train.data import load_split, packed

    r = spec.recipe
    train = load_split(spec.manifest_dir, "train", max_length=r["max_length"])
    evals = load_split(spec.manifest_dir, "eval", max_length=r["max_length"])
    if r["packing"]:
        train = packed(train, r["max_length"])
    return train, evals


def _tokenizer(base_model: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model)


def _parameter_counts(model: Any) -> tuple[int, int]:
    params = list(model.parameters())
    return (sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))


def _peak_memory(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    from brewslm.preflight.memory import peak_rss_bytes

    return peak_rss_bytes()


# --- checkpoints -------------------------------------------------------------------------------

def latest_checkpoint(work_dir: Path) -> str | None:
    """The highest-step checkpoint with a BrewSLM tag (a folder the Trainer was still writing
    when the process died has no tag yet, and is skipped)."""
    folder = work_dir / "checkpoints"
    if not folder.is_dir():
        return None
    tagged = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*")
              if (p / CHECKPOINT_TAG).is_file() and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    if not tagged:
        return None
    return str(max(tagged, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):])))


def checkpoint_tag(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / CHECKPOINT_TAG).read_text(encoding="utf-8"))


def check_checkpoint(spec: FitSpec, checkpoint: Path) -> None:
    """Refuse to resume from a checkpoint of other data or other knobs."""
    from brewslm.errors import InputError

    tag = checkpoint_tag(checkpoint)
    for key in ("manifest_hash", "recipe_hash"):
        if tag.get(key) != getattr(spec, key):
            raise InputError("train_checkpoint_mismatch",
                             f"Checkpoint {checkpoint} was written for {key} "
                             f"{str(tag.get(key))[:12]}, this run has {getattr(spec, key)[:12]}: "
                             "resume only continues the same data and recipe.",
                             checkpoint=str(checkpoint), key=key)


# --- callbacks ---------------------------------------------------------------------------------

class TraceCallback(TrainerCallback):
    """Turns the Trainer's log lines into trace records: step, epoch, loss, learning_rate,
    grad_norm, tokens_per_second; eval_loss at each evaluation."""

    def __init__(self, sink: Sink | None) -> None:
        self.sink = sink
        self.records: list[dict[str, Any]] = []
        self.eval_losses: list[tuple[int, float]] = []
        self.last_loss: float | None = None
        self.tokens_total = 0  # trained this session (a resumed run starts from its checkpoint)
        self._first_tokens = 0
        self._window_start: tuple[float, int] | None = None
        self._train_seconds = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._first_tokens = state.num_input_tokens_seen
        self._window_start = (time.monotonic(), state.num_input_tokens_seen)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        record: dict[str, Any] = {"step": state.global_step,
                                  "epoch": round(state.epoch or 0.0, 4)}
        if "loss" in logs:
            now, tokens = time.monotonic(), state.num_input_tokens_seen
            start_time, start_tokens = self._window_start or (now, tokens)
            elapsed, window_tokens = now - start_time, tokens - start_tokens
            self._window_start = (now, tokens)
            self._train_seconds += elapsed
            self.tokens_total = tokens - self._first_tokens
            self.last_loss = float(logs["loss"])
            record.update(loss=self.last_loss, learning_rate=float(logs.get("learning_rate", 0)),
                          tokens=window_tokens)
            if "grad_norm" in logs and logs["grad_norm"] is not None:
                record["grad_norm"] = float(logs["grad_norm"])
            if elapsed > 0:
                record["tokens_per_second"] = round(window_tokens / elapsed, 1)
        elif "eval_loss" in logs:
            record["eval_loss"] = float(logs["eval_loss"])
            self.eval_losses.append((state.global_step, record["eval_loss"]))
            # Evaluation time is not training throughput: restart the window after it.
            self._window_start = (time.monotonic(), state.num_input_tokens_seen)
        else:
            return
        if state.is_world_process_zero:
            self.records.append(record)
            if self.sink:
                self.sink(record)

    def on_train_end(self, args, state, control, **kwargs):
        self.tokens_total = state.num_input_tokens_seen - self._first_tokens

    def tokens_per_second(self) -> float | None:
        if self._train_seconds <= 0:
            return None
        return round(self.tokens_total / self._train_seconds, 1)


class CheckpointTagger(TrainerCallback):
    """Writes brewslm-checkpoint.json into each checkpoint: the manifest and recipe it belongs
    to, so a resume can refuse a checkpoint of other data. Written last, so a tag means the
    Trainer finished writing the folder."""

    def __init__(self, spec: FitSpec) -> None:
        self.spec = spec

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
        if not folder.is_dir():
            return
        tag = {"run_id": self.spec.run_id, "manifest_hash": self.spec.manifest_hash,
               "recipe_hash": self.spec.recipe_hash, "step": state.global_step,
               "epoch": state.epoch, "saved_at": time.time()}
        tmp = folder / f".{CHECKPOINT_TAG}.tmp"
        tmp.write_text(json.dumps(tag, indent=2), encoding="utf-8")
        os.replace(tmp, folder / CHECKPOINT_TAG)


class StopCallback(TrainerCallback):
    """Stops (with a checkpoint) on cancellation or when the wall-clock budget is spent, and
    without one on early stopping (no better eval loss for `early_stopping_patience` evals)."""

    def __init__(self, spec: FitSpec, stop: StopRequest, trace: TraceCallback) -> None:
        self.budget = spec.recipe["wall_clock_budget_s"]
        self.patience = spec.recipe["early_stopping_patience"]
        self.stop, self.trace = stop, trace
        self.started = time.monotonic()
        self.best: float | None = None
        self.bad_evals = 0

    def on_step_end(self, args, state, control, **kwargs):
        if self.budget is not None and time.monotonic() - self.started > self.budget:
            self.stop.set("budget")
        if self.stop.reason in ("cancelled", "budget"):
            control.should_save = True
            control.should_training_stop = True

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        if self.patience is None or loss is None:
            return
        if self.best is None or loss < self.best:
            self.best, self.bad_evals = loss, 0
            return
        self.bad_evals += 1
        if self.bad_evals >= self.patience:
            self.stop.set("early_stopping")
            control.should_training_stop = True
