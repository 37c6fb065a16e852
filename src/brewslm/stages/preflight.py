"""Stage 07, preflight: will this training job run here? GO or BLOCK, before any compute.

    brewslm preflight -p NAME [--recipe R] [--set KEY=VALUE]... [--memory-limit SIZE] [--force]

    from brewslm.stages.preflight import assess, gate, preflight
    result = preflight(info, recipe="lora", overrides=["micro_batch=4"])   # a stage run
    found = assess(info, manifest_art, recipe)    # the checks alone: no run, no events
    found.verdict, found.blockers, found.memory, found.plan

The train stage calls `gate(info, manifest_art, recipe, force=..., emit=ctx.emit)` before it
loads a model: it returns the Assessment on GO (or on BLOCK with force, after emitting
`preflight_forced`), and raises BlockedError("preflight_blocked") with the assessment as the
run's result on BLOCK, so no compute is spent on a job preflight blocks.

Checks, in order (each {name, status pass|warn|fail, reason_code, message, details}):
  dependencies   torch, transformers (and peft for adapters) import, at pyproject's lower bounds
  device         a CUDA device when the recipe's device resolves to cuda or the method is qlora
  bitsandbytes   (qlora) importable
  precision      the dtype runs on the device (bf16 needs GPU support; half precision on CPU warns)
  base_model     resolvable with a readable config.json, and the manifest was made for it
  architecture   a Llama-style decoder (llama, mistral, qwen2, qwen3): what the estimator models
  lora_targets   (lora, qlora) every lora.target_modules name exists in the model
  train_rows, eval_rows, context   data gates on the manifest and the model's context length
  memory         estimated peak of the real job vs free memory (or memory_limit_bytes, to plan
                 for a smaller target machine); on a miss, plan_that_fits is the suggested plan
  disk           free space at the project folder for three checkpoints of this job
A failed check makes the verdict BLOCK; a warning does not. A check that raises is a failed
check (preflight_check_crashed), never a crash of the stage. Checks that need the model's
config are skipped when the base_model check failed (it says so).
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shutil
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from brewslm.artifacts import ArtifactInfo
from brewslm.errors import BlockedError, BrewError, InputError
from brewslm.preflight.memory import (
    DTYPE_BYTES,
    FP32,
    LINEAR_NAMES,
    OPTIMIZER_STATES,
    architecture,
    estimate_memory,
    fits,
    free_memory_bytes,
    plan_that_fits,
)
from brewslm.project import ProjectInfo
from brewslm.stages.base import StageContext
from brewslm.stages.outputs import require_output
from brewslm.stages.runner import StageResult, run_stage
from brewslm.train import hardware
from brewslm.train.recipe import apply_overrides, load_recipe, recipe_hash, validate

PASSED = "preflight_check_passed"
DEFAULT_MIN_TRAIN_ROWS = 16
SAFETY_MARGIN = 0.15  # memory.fits' default: the estimate is within ±15% of measured peaks
CHECKPOINTS_KEPT = 3  # disk for this many checkpoints (the last, the best, one being written)
# Llama-style decoders: what the memory estimator's formulas and the recipes are written for.
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
# The lower bounds pyproject.toml declares for training (tests/stages/test_preflight.py checks
# that they agree): older versions are untested and the train stage's APIs may not exist.
MIN_VERSIONS = {"torch": "2.4", "transformers": "5.0", "peft": "0.21"}

Check = dict[str, Any]


# --- the assessment ----------------------------------------------------------------------------


@dataclass
class Assessment:
    """What preflight found: the verdict, every check, the memory estimate and a plan."""

    verdict: str  # GO | BLOCK
    checks: list[Check]
    memory: dict[str, Any]
    plan: dict[str, Any] | None
    device: str
    dtype: str

    @property
    def blockers(self) -> list[Check]:
        return [c for c in self.checks if c["status"] == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "blockers": self.blockers, "checks": self.checks,
                "memory": self.memory, "plan": self.plan, "device": self.device,
                "dtype": self.dtype}


@dataclass
class _Job:
    """The job under assessment, and what the checks learn on the way (config, memory)."""

    project: ProjectInfo
    manifest_dir: Path
    manifest: dict[str, Any]
    recipe: dict[str, Any]
    device: str
    dtype: str
    memory_limit_bytes: int | None
    min_train_rows: int
    model_path: Path | None = None
    config: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None

    @property
    def method(self) -> str:
        return self.recipe["method"]

    @property
    def adapters(self) -> bool:
        return self.method in ("lora", "qlora")

    @property
    def lora(self) -> dict[str, Any]:
        return self.recipe.get("lora") or {}

    @cached_property
    def train_lengths(self) -> list[int]:
        """Token length of every train row: the n_tokens column of the manifest's train.parquet."""
        file = self.manifest["splits"]["train"].get("file", "train.parquet")
        table = pq.read_table(self.manifest_dir / file, columns=["n_tokens"])
        return [int(n) for n in table.column("n_tokens").to_pylist()]


def assess(project: ProjectInfo, manifest_art: ArtifactInfo, recipe: dict[str, Any], *,
           memory_limit_bytes: int | None = None,
           min_train_rows: int = DEFAULT_MIN_TRAIN_ROWS) -> Assessment:
    """Run every check on this job (pure: no stage run, no events) and give the verdict."""
    device = hardware.resolve_device(recipe)
    manifest = json.loads((manifest_art.path / "manifest.json").read_text(encoding="utf-8"))
    job = _Job(project, manifest_art.path, manifest, recipe, device,
               hardware.resolve_dtype(recipe, device), memory_limit_bytes, min_train_rows)
    checks = [_run_check(name, check, job) for name, check in CHECKS if _applies(name, job)]
    verdict = "BLOCK" if any(c["status"] == "fail" for c in checks) else "GO"
    return Assessment(verdict, checks, job.memory or _no_memory(job), job.plan, device,
                      job.dtype)


def _applies(name: str, job: _Job) -> bool:
    """Whether a check is asked of this job (called in order, after the checks before it)."""
    if name in NEEDS_MODEL and job.config is None:
        return False  # the base_model check failed, and says these were not run
    if name == "bitsandbytes":
        return job.method == "qlora"
    if name == "lora_targets":
        return job.adapters
    return True


def gate(project: ProjectInfo, manifest_art: ArtifactInfo, recipe: dict[str, Any], *,
         force: bool, memory_limit_bytes: int | None = None,
         min_train_rows: int = DEFAULT_MIN_TRAIN_ROWS,
         emit: Callable[..., Any] | None = None) -> Assessment:
    """Preflight as a gate for the train stage: the Assessment on GO; on BLOCK raise
    BlockedError("preflight_blocked") carrying it, unless force (then emit preflight_forced
    through `emit`, e.g. the train stage's ctx.emit, and return it)."""
    found = assess(project, manifest_art, recipe, memory_limit_bytes=memory_limit_bytes,
                   min_train_rows=min_train_rows)
    if found.verdict == "BLOCK":
        if not force:
            raise BlockedError("preflight_blocked", blocked_message(found),
                               result=report(found, recipe, manifest_art, forced=False),
                               blockers=_codes(found.blockers))
        if emit is not None:
            emit("preflight_forced", forced_message(found), severity="warning",
                 blockers=found.blockers)
    return found


def report(found: Assessment, recipe: dict[str, Any], manifest_art: ArtifactInfo, *,
           forced: bool) -> dict[str, Any]:
    """The stage's result (and report.json): the assessment with the job it judged."""
    return {**found.to_dict(), "forced": forced, "recipe": recipe,
            "recipe_hash": recipe_hash(recipe), "manifest_id": manifest_art.id,
            "manifest_hash": manifest_art.meta.get("manifest_hash")}


def blocked_message(found: Assessment) -> str:
    """One paragraph: every blocker's message, and the plan that fits when there is one."""
    lines = [f"preflight blocks this job ({len(found.blockers)} blocker(s)): "
             + "; ".join(f"{c['reason_code']}: {c['message']}" for c in found.blockers)]
    if found.plan and found.plan.get("fits"):
        lines.append("suggested plan: " + " ".join(f"--set {o}" for o in found.plan["overrides"]))
    lines.append("pass --force to train anyway (recorded)")
    return ". ".join(lines)


def forced_message(found: Assessment) -> str:
    return (f"--force overrode {len(found.blockers)} preflight blocker(s): "
            + ", ".join(_codes(found.blockers)))


def _codes(checks: Sequence[Check]) -> list[str]:
    return [c["reason_code"] for c in checks]


# --- check results -----------------------------------------------------------------------------


def _result(name: str, status: str, reason_code: str, message: str,
            **details: Any) -> Check:
    return {"name": name, "status": status, "reason_code": reason_code, "message": message,
            "details": details}


def _passed(name: str, message: str, **details: Any) -> Check:
    return _result(name, "pass", PASSED, message, **details)


def _run_check(name: str, check: Callable[[_Job], Check], job: _Job) -> Check:
    """A check's result; an exception becomes a failed check, never a crash of the stage."""
    try:
        return check(job)
    except Exception as exc:  # noqa: BLE001 — any failure to decide is a blocker, with its cause
        return _result(name, "fail", reason_code="preflight_check_crashed",
                       message=f"the {name} check raised {type(exc).__name__}: {exc}",
                       exception=type(exc).__name__,
                       traceback="".join(traceback.format_exception(exc))[-2000:])


# --- dependencies and hardware -----------------------------------------------------------------


def _dependencies(job: _Job) -> Check:
    needed = ["torch", "transformers"] + (["peft"] if job.adapters else [])
    found, missing, old = {}, {}, {}
    for name in needed:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 — a broken install is as missing as none
            missing[name] = f"{type(exc).__name__}: {exc}"
            continue
        found[name] = str(getattr(module, "__version__", "0"))
        if _version(found[name]) < _version(MIN_VERSIONS[name]):
            old[name] = f"{found[name]} < {MIN_VERSIONS[name]}"
    if missing:
        return _result("dependencies", "fail", reason_code="preflight_dependency_missing",
                       message="cannot import " + ", ".join(f"{k} ({v})"
                                                            for k, v in missing.items()),
                       missing=missing, versions=found)
    if old:
        return _result("dependencies", "fail", reason_code="preflight_dependency_too_old",
                       message="too old: " + ", ".join(f"{k} {v}" for k, v in old.items())
                       + "; upgrade with pip install -U", too_old=old, versions=found)
    return _passed("dependencies", ", ".join(f"{k} {v}" for k, v in found.items()),
                   versions=found, minimum=MIN_VERSIONS)


def _version(text: str) -> tuple[int, ...]:
    """(2, 13, 0) from "2.13.0+cpu" or "5.0.0rc1": the leading numeric release parts."""
    parts = []
    for part in text.split("+")[0].split("."):
        digits = re.match(r"\d+", part)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts) or (0,)


def _device(job: _Job) -> Check:
    needs_cuda = job.device == "cuda" or job.method == "qlora"
    if not needs_cuda:
        return _passed("device", "training on the CPU", device=job.device, cuda=False)
    if hardware.cuda_available():
        import torch

        name = torch.cuda.get_device_name(0)
        return _passed("device", f"CUDA device {name}", device=job.device, cuda=True, gpu=name)
    if job.method == "qlora":
        message = ("QLoRA needs a CUDA GPU and bitsandbytes; this machine has no CUDA device: "
                   "use --recipe lora")
    else:
        message = ("the recipe asks for device cuda and this machine has no CUDA device: use "
                   "--set device=auto (or cpu)")
    return _result("device", "fail", reason_code="preflight_cuda_missing", message=message,
                   device=job.device, method=job.method, cuda=False)


def _bitsandbytes(job: _Job) -> Check:
    try:
        module = importlib.import_module("bitsandbytes")
    except Exception as exc:  # noqa: BLE001 — its CUDA setup can raise more than ImportError
        return _result("bitsandbytes", "fail", reason_code="preflight_bitsandbytes_missing",
                       message=f"QLoRA needs bitsandbytes, which cannot be imported "
                       f"({type(exc).__name__}: {exc}): pip install bitsandbytes, or use "
                       "--recipe lora", error=str(exc))
    version = str(getattr(module, "__version__", "?"))
    return _passed("bitsandbytes", f"bitsandbytes {version}", version=version)


def _precision(job: _Job) -> Check:
    details = {"precision": job.recipe.get("precision", "auto"), "dtype": job.dtype,
               "device": job.device}
    if job.device == "cuda" and job.dtype == "bfloat16" and hardware.cuda_available() \
            and not hardware.cuda_bf16_supported():
        return _result("precision", "fail", reason_code="preflight_precision_unsupported",
                       message="bf16 was asked for and this GPU has no bf16 support: use --set "
                       "precision=auto", **details)
    if job.device == "cpu" and job.dtype != "float32":
        return _result("precision", "warn", reason_code="preflight_precision_slow",
                       message=f"{job.dtype} on the CPU runs several times slower than float32 "
                       "(bf16 measured 3.5x): --set precision=auto unless memory needs it",
                       **details)
    return _passed("precision", f"{job.dtype} on {job.device}", **details)


# --- the model ---------------------------------------------------------------------------------


def _base_model(job: _Job) -> Check:
    from brewslm.basemodels.reference import resolve_base_model

    ref = job.project.base_model
    skipped = "the architecture, lora_targets, context, memory and disk checks need its " \
              "config and were not run"
    if not ref:
        return _result("base_model", "fail", reason_code="preflight_base_model_unavailable",
                       message=f"project {job.project.name!r} has no base model; {skipped}")
    try:
        path = resolve_base_model(ref).path
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (BrewError, OSError, ValueError) as exc:
        cause = exc.code if isinstance(exc, BrewError) else type(exc).__name__
        return _result("base_model", "fail", reason_code="preflight_base_model_unavailable",
                       message=f"cannot read base model {ref!r}: {exc}; {skipped}", ref=ref,
                       cause=cause)
    job.model_path, job.config = path, config
    made_for = job.manifest.get("base_model")
    if made_for != ref and not _same_tokenizer(job.project, job.manifest):
        return _result("base_model", "fail", reason_code="preflight_manifest_stale",
                       message=f"the manifest was tokenized for {made_for!r}, the project's "
                       f"base model is now {ref!r}: re-run `brewslm prepare`", ref=ref,
                       manifest_base_model=made_for)
    return _passed("base_model", f"{ref} at {path}", ref=ref, path=str(path))


def _same_tokenizer(project: ProjectInfo, manifest: dict[str, Any]) -> bool:
    """A manifest made with another base model still fits when that model's tokenizer is
    byte-for-byte this one's (members of a family share it): the tokens would be the same."""
    from brewslm.prepare import tokenizer_hash
    from brewslm.stages.prepare import load_tokenizer

    try:
        return tokenizer_hash(load_tokenizer(project)) == manifest.get("tokenizer_hash")
    except BrewError:
        return False


def _architecture(job: _Job) -> Check:
    config = job.config or {}
    model_type = config.get("model_type")
    names = config.get("architectures") or []
    details = {"model_type": model_type, "architectures": names}
    if model_type not in SUPPORTED_MODEL_TYPES:
        return _result("architecture", "fail",
                       reason_code="preflight_architecture_unsupported",
                       message=f"model_type {model_type!r} is not a Llama-style decoder the "
                       f"estimator and recipes support ({', '.join(SUPPORTED_MODEL_TYPES)})",
                       **details)
    try:
        arch = architecture(config)
    except ValueError as exc:
        return _result("architecture", "fail",
                       reason_code="preflight_architecture_unsupported",
                       message=f"config.json lacks what the estimator reads: {exc}", **details)
    params = arch.parameter_count()
    return _passed("architecture", f"{names[0] if names else model_type}, {params:,} parameters",
                   parameters=params, **details)


def _lora_targets(job: _Job) -> Check:
    wanted = job.lora.get("target_modules", "all-linear")
    present = model_target_names(job.model_path)
    suffixes = sorted({n.rsplit(".", 1)[-1] for n in present})
    if wanted == "all-linear":  # peft: every Linear but the output head
        linear = sorted({n.rsplit(".", 1)[-1] for n, kind in present.items()
                         if kind == "Linear"} - {"lm_head"})
        return _passed("lora_targets", "all-linear: " + ", ".join(linear), targets=linear,
                       available=suffixes)
    # peft matches a target against a module's full name or its last dotted part(s).
    missing = [t for t in wanted if not any(n == t or n.endswith("." + t) for n in present)]
    if missing:
        return _result("lora_targets", "fail", reason_code="preflight_lora_targets_missing",
                       message=f"lora.target_modules {missing} are not in the model; it has "
                       f"{', '.join(suffixes)} (or use all-linear)", missing=missing,
                       available=suffixes)
    return _passed("lora_targets", ", ".join(wanted), targets=list(wanted), available=suffixes)


def model_target_names(model_path: Path | None) -> dict[str, str]:
    """{module name: Linear | Embedding} for the modules LoRA can target, from the model built
    on the meta device: no weights are read or allocated, so this is cheap at any size."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(model_path))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    kinds = {torch.nn.Linear: "Linear", torch.nn.Embedding: "Embedding"}
    return {name: kind for name, module in model.named_modules() for cls, kind in kinds.items()
            if name and isinstance(module, cls)}


# --- the data ----------------------------------------------------------------------------------


def _train_rows(job: _Job) -> Check:
    rows = job.manifest["splits"]["train"]["rows"]
    if rows < job.min_train_rows:
        return _result("train_rows", "fail", reason_code="preflight_too_few_train_rows",
                       message=f"the train split has {rows} rows, fewer than the "
                       f"{job.min_train_rows} preflight requires", rows=rows,
                       minimum=job.min_train_rows)
    return _passed("train_rows", f"{rows} train rows", rows=rows, minimum=job.min_train_rows)


def _eval_rows(job: _Job) -> Check:
    rows = job.manifest["splits"]["eval"]["rows"]
    if rows == 0:
        return _result("eval_rows", "fail", reason_code="preflight_eval_split_empty",
                       message="the eval split is empty: re-run prepare with a larger "
                       "--eval-fraction", rows=0)
    return _passed("eval_rows", f"{rows} eval rows", rows=rows)


def _context(job: _Job) -> Check:
    context = (job.config or {}).get("max_position_embeddings")
    max_length = job.recipe["max_length"]
    longest = max((job.manifest["splits"][s]["tokens"].get("max") or 0)
                  for s in ("train", "eval"))
    details = {"max_position_embeddings": context, "max_length": max_length,
               "longest_row": longest}
    if context and max_length > context:
        return _result("context", "fail", reason_code="preflight_max_length_exceeds_context",
                       message=f"max_length {max_length} is longer than the model's context "
                       f"of {context} tokens (the longest row has {longest}): --set "
                       f"max_length={min(context, max(longest, 1))}", **details)
    cut = sum(1 for n in job.train_lengths if n > max_length)
    if cut:
        return _result("context", "warn", reason_code="preflight_rows_truncated",
                       message=f"{cut} of {len(job.train_lengths)} train rows are longer than "
                       f"max_length {max_length} (the longest has {longest} tokens) and will "
                       "be cut at the end", truncated_rows=cut, **details)
    return _passed("context", f"longest row {longest} tokens <= max_length {max_length} <= "
                   f"context {context}", **details)


# --- memory and disk ---------------------------------------------------------------------------


def estimate_kwargs(job_recipe: dict[str, Any], device: str, dtype: str) -> dict[str, Any]:
    """The recipe's knobs as estimate_memory / plan_that_fits take them (no config, no data)."""
    lora = job_recipe.get("lora") or {}
    targets = lora.get("target_modules", "all-linear")
    return {"method": job_recipe["method"], "micro_batch": job_recipe["micro_batch"],
            "grad_accumulation": job_recipe["grad_accumulation"],
            "grad_checkpointing": job_recipe["gradient_checkpointing"], "dtype": dtype,
            "lora_r": lora.get("r", 16), "lora_dropout": lora.get("dropout", 0.0),
            "lora_targets": None if targets == "all-linear" else list(targets),
            "device": device, "max_length": job_recipe["max_length"], "runtime": "trainer",
            "cpu_allocator": job_recipe.get("cpu_allocator", "glibc")}


def _memory(job: _Job) -> Check:
    kwargs = estimate_kwargs(job.recipe, job.device, job.dtype)
    try:
        estimate = estimate_memory(job.config, seq_lens=job.train_lengths, **kwargs)
    except ValueError as exc:
        return _unknown_memory(job, f"cannot estimate the job's memory: {exc}")
    free, source = _free_bytes(job)
    if free is None:
        job.memory = {**estimate.to_dict(), **_memory_context(job, None, None, None)}
        return _unknown_memory(job, f"cannot read the free memory of {job.device} ({source}); "
                               "pass --memory-limit SIZE to plan for a target machine")
    budget = int(free * (1 - SAFETY_MARGIN))
    ok = fits(estimate, free, SAFETY_MARGIN)
    job.memory = {**estimate.to_dict(), **_memory_context(job, free, budget, ok),
                  "free_source": source}
    summary = (f"estimated peak {_gib(estimate.total_bytes)} vs budget {_gib(budget)} "
               f"({1 - SAFETY_MARGIN:.0%} of {_gib(free)} {source})")
    if ok:
        return _passed("memory", summary, estimated_peak_bytes=estimate.total_bytes,
                       budget_bytes=budget)
    plan = plan_that_fits(job.config, seq_lens=job.train_lengths, free_bytes=free,
                          safety_margin=SAFETY_MARGIN, **kwargs)
    job.plan = {**plan.to_dict(), "overrides": plan_overrides(plan.settings, kwargs)}
    advice = ("a plan that fits: " + "; ".join(plan.changes) if plan.fits
              else f"no plan tried fits (smallest {_gib(plan.estimate.total_bytes)}): use a "
              "bigger machine or a smaller model")
    return _result("memory", "fail", reason_code="preflight_memory_exceeded",
                   message=f"does not fit: {summary}; {advice}",
                   estimated_peak_bytes=estimate.total_bytes, budget_bytes=budget,
                   plan_fits=plan.fits, changes=list(plan.changes))


def _free_bytes(job: _Job) -> tuple[int | None, str]:
    """(bytes, where they come from): the given limit, else what the device has free now."""
    if job.memory_limit_bytes is not None:
        return int(job.memory_limit_bytes), "memory limit"
    if job.device == "cuda" and not hardware.cuda_available():
        return None, "no CUDA device"
    try:
        return free_memory_bytes(job.device), f"free on {job.device}"
    except Exception as exc:  # noqa: BLE001 — a driver error means "unknown", not a crash
        return None, f"{type(exc).__name__}: {exc}"


def _memory_context(job: _Job, free: int | None, budget: int | None,
                    ok: bool | None) -> dict[str, Any]:
    return {"free_bytes": free, "budget_bytes": budget, "fits": ok, "device": job.device,
            "dtype": job.dtype, "memory_limit_bytes": job.memory_limit_bytes,
            "safety_margin": SAFETY_MARGIN}


def _unknown_memory(job: _Job, message: str) -> Check:
    return _result("memory", "fail", reason_code="preflight_memory_unknown", message=message)


def _no_memory(job: _Job) -> dict[str, Any]:
    """The memory section when no estimate was made (the model or the estimate failed)."""
    return {"estimated_peak_bytes": None, "breakdown": None,
            **_memory_context(job, None, None, None)}


def plan_overrides(settings: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """The plan's settings that differ from the job, as --set KEY=VALUE recipe overrides."""
    keys = {"micro_batch": "micro_batch", "grad_accumulation": "grad_accumulation",
            "grad_checkpointing": "gradient_checkpointing", "method": "method",
            "max_length": "max_length"}
    out = []
    for key, recipe_key in keys.items():
        if key in settings and settings[key] != asked.get(key):
            value = settings[key]
            out.append(f"{recipe_key}={str(value).lower() if isinstance(value, bool) else value}")
    return out


def checkpoint_bytes(config: dict[str, Any], *, method: str, dtype: str, lora_r: int = 16,
                     lora_targets: Sequence[str] | None = None) -> int:
    """Bytes one checkpoint of this job takes on disk: the trained tensors and their AdamW
    states (taken as fp32: the safe side). Full: every weight in the training dtype plus two
    fp32 states each. LoRA/QLoRA: the fp32 adapters plus their two states; the frozen base
    is not saved. Target names the estimator does not model add nothing (memory says so)."""
    arch = architecture(config)
    states = OPTIMIZER_STATES["adamw"] * FP32
    if method == "full":
        params = arch.parameter_count()
        return params * (DTYPE_BYTES[dtype] + states)
    linears = arch.linears()
    names = [n for n in (lora_targets or LINEAR_NAMES) if n in linears]
    params = arch.layers * sum(lora_r * (linears[n][0] + linears[n][1]) for n in names)
    return params * (FP32 + states)


def _disk(job: _Job) -> Check:
    kwargs = estimate_kwargs(job.recipe, job.device, job.dtype)
    one = checkpoint_bytes(job.config or {}, method=job.method, dtype=job.dtype,
                           lora_r=kwargs["lora_r"], lora_targets=kwargs["lora_targets"])
    need = CHECKPOINTS_KEPT * one
    free = shutil.disk_usage(job.project.dir).free
    details = {"checkpoint_bytes": one, "needed_bytes": need, "free_bytes": free,
               "path": str(job.project.dir)}
    if free < need:
        return _result("disk", "fail", reason_code="preflight_disk_insufficient",
                       message=f"{_gib(free)} free at {job.project.dir}, {CHECKPOINTS_KEPT} "
                       f"checkpoints need {_gib(need)}", **details)
    return _passed("disk", f"{_gib(free)} free, {CHECKPOINTS_KEPT} checkpoints need "
                   f"{_gib(need)}", **details)


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


CHECKS: tuple[tuple[str, Callable[[_Job], Check]], ...] = (
    ("dependencies", _dependencies), ("device", _device), ("bitsandbytes", _bitsandbytes),
    ("precision", _precision), ("base_model", _base_model), ("architecture", _architecture),
    ("lora_targets", _lora_targets), ("train_rows", _train_rows), ("eval_rows", _eval_rows),
    ("context", _context), ("memory", _memory), ("disk", _disk),
)
# Checks that read the model's config, which the base_model check loads.
NEEDS_MODEL = frozenset({"architecture", "lora_targets", "context", "memory", "disk"})


# --- the stage ---------------------------------------------------------------------------------


class PreflightStage:
    name, number, version = "preflight", 7, "1"
    inputs = ("manifest",)
    outputs = ("preflight_report",)

    def validate(self, ctx: StageContext) -> None:
        p = ctx.params
        if not isinstance(p.get("recipe"), dict):
            raise InputError("stage_params_invalid", "preflight: recipe must be a recipe "
                             "mapping (load_recipe's result)", field="recipe")
        validate(copy.deepcopy(p["recipe"]))  # InputError(recipe_invalid) naming the key
        limit = p.get("memory_limit_bytes")
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise InputError("stage_params_invalid", f"preflight: memory_limit_bytes must be a "
                             f"positive integer, got {limit!r}", field="memory_limit_bytes")
        rows = p.get("min_train_rows", DEFAULT_MIN_TRAIN_ROWS)
        if not isinstance(rows, int) or rows < 1:
            raise InputError("stage_params_invalid", f"preflight: min_train_rows must be a "
                             f"positive integer, got {rows!r}", field="min_train_rows")
        if ctx.inputs["manifest"].kind != "manifest":
            raise InputError("stage_input_missing", f"preflight: artifact "
                             f"{ctx.inputs['manifest'].id} is a {ctx.inputs['manifest'].kind},"
                             " not a manifest", slot="manifest")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        p, manifest = ctx.params, ctx.inputs["manifest"]
        found = assess(ctx.project, manifest, p["recipe"],
                       memory_limit_bytes=p.get("memory_limit_bytes"),
                       min_train_rows=p.get("min_train_rows", DEFAULT_MIN_TRAIN_ROWS))
        for check in found.checks:
            if check["status"] != "pass":
                ctx.emit(check["reason_code"], f"{check['name']}: {check['message']}",
                         severity="error" if check["status"] == "fail" else "warning",
                         check=check["name"], details=check["details"])
        forced = found.verdict == "BLOCK" and bool(p.get("force"))
        result = report(found, p["recipe"], manifest, forced=forced)
        if found.verdict == "BLOCK" and not forced:
            ctx.emit("preflight_blocked", blocked_message(found), blockers=_codes(found.blockers),
                     plan=found.plan)
            raise BlockedError("preflight_blocked", blocked_message(found), result=result,
                               blockers=_codes(found.blockers))
        self._report(ctx, result)
        if forced:
            ctx.emit("preflight_forced", forced_message(found), blockers=found.blockers)
        else:
            ctx.emit("preflight_go", f"GO: {len(found.checks)} checks, estimated peak "
                     f"{_gib(found.memory['estimated_peak_bytes'])}",
                     estimated_peak_bytes=found.memory["estimated_peak_bytes"])
        return result

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        pass  # the report artifact is the runner's declared-output check

    def _report(self, ctx: StageContext, result: dict[str, Any]) -> None:
        builder = ctx.new_artifact("preflight_report")
        text = json.dumps(result, indent=2, sort_keys=True, default=str) + "\n"
        (builder.dir / "report.json").write_text(text, encoding="utf-8")
        ctx.publish("preflight_report", builder, {"verdict": result["verdict"],
                                                  "forced": result["forced"],
                                                  "manifest_id": result["manifest_id"],
                                                  "recipe_hash": result["recipe_hash"]})


# --- the service -------------------------------------------------------------------------------


def preflight(project: ProjectInfo, *, recipe: str | Path | dict[str, Any] = "lora",
              overrides: Sequence[str] = (), force: bool = False, manifest: str | None = None,
              memory_limit_bytes: int | None = None,
              min_train_rows: int = DEFAULT_MIN_TRAIN_ROWS,
              parent_run_id: str | None = None) -> StageResult:
    """Run stage 07 on the latest manifest (or the one named) with this recipe."""
    effective = effective_recipe(recipe, overrides)
    manifest_id = require_output(project, "prepare", "manifest", manifest, "manifest_missing",
                                 "run `brewslm prepare -p NAME` first")
    params = {"recipe": effective, "force": force, "memory_limit_bytes": memory_limit_bytes,
              "min_train_rows": min_train_rows}
    # Never reused: the verdict depends on this machine now (free memory, disk, packages),
    # which no parameter captures; and the checks cost seconds, not compute.
    return run_stage(PreflightStage(), project, params=params, inputs={"manifest": manifest_id},
                     parent_run_id=parent_run_id, reuse=False)


def effective_recipe(recipe: str | Path | dict[str, Any],
                     overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A packaged recipe name, a YAML path or a recipe dict, with --set overrides applied."""
    base = validate(copy.deepcopy(recipe)) if isinstance(recipe, dict) else load_recipe(recipe)
    return apply_overrides(base, list(overrides))
