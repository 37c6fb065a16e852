"""Stage 08, train: a recipe and a prepared manifest -> a trained model (a LoRA adapter or full
weights), with traces, tagged checkpoints, an immutable run manifest, and resume.

    from brewslm.stages.train import train
    result = train(project, recipe="lora", overrides=["max_steps=20"])    # a StageResult
    result = train(project, resume=True)        # continue the last interrupted run
    result = train(project, processes=2)        # DDP under torchrun (gloo on CPU)
    result = train(project, accelerate_config="fsdp.yaml")   # accelerate launch (CUDA only)
    result = train(project, backend="simulate") # SIMULATED traces, no model (UI tests)

In order: the recipe's effective form (overrides applied) is a parameter of the run, so the
run records it and reruns of the same recipe on the same manifest are reused. validate()
resolves the base model, runs preflight's gate (a BLOCK stops the run with exit 3 before any
compute, unless force, which is recorded) and finds the checkpoint to resume from. run()
writes the run manifest, trains (train/engine.py, in-process or one torchrun rank per
process), stores each trace line in the metrics table, and publishes the model artifact:
the adapter or weights, the tokenizer, run_manifest.json, metrics.jsonl, loss.png, loss.html.

Checkpoints live in the run's work folder (PROJECT/train/RUN_ID/checkpoints), each tagged with
the manifest and recipe hashes. A run that dies leaves them there; `--resume` continues the
newest unfinished work folder whose tags match, in that folder, and reaches the same final
step. Failures are coded: train_out_of_memory, train_budget_exceeded, train_cancelled (a
checkpoint is saved first), train_runtime_error.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brewslm.errors import BrewError, InputError
from brewslm.project import ProjectInfo
from brewslm.stages.base import StageContext
from brewslm.stages.outputs import require_output
from brewslm.stages.runner import StageResult, run_stage
from brewslm.train import metrics
from brewslm.train.recipe import apply_overrides, load_recipe, recipe_hash

BACKENDS = ("hf", "simulate")
RUN_MANIFEST = "run_manifest.json"
WORK_ROOT = "train"
STOP_CODES = {"cancelled": "train_cancelled", "budget": "train_budget_exceeded"}


def train(project: ProjectInfo, *, recipe: str = "lora", overrides: list[str] | tuple = (),
          resume: bool = False, force: bool = False, backend: str = "hf", processes: int = 1,
          accelerate_config: str | None = None, manifest: str | None = None,
          parent_run_id: str | None = None) -> StageResult:
    """Run stage 08 on the project's latest manifest (or `manifest`). processes > 1 launches
    that many torchrun ranks here; accelerate_config launches `accelerate launch` with that
    config file instead (its num_processes, FSDP or DeepSpeed settings apply)."""
    if backend not in BACKENDS:
        raise InputError("train_backend_unknown", f"Unknown backend {backend!r}: use one of "
                         f"{', '.join(BACKENDS)}.", backend=backend)
    if processes < 1:
        raise InputError("train_processes_invalid", "--processes must be at least 1.",
                         processes=processes)
    if accelerate_config is not None:
        accelerate_config = _checked_accelerate_config(accelerate_config)
    effective = apply_overrides(load_recipe(recipe), list(overrides))
    manifest_id = require_output(project, "prepare", "manifest", manifest, "manifest_missing",
                                 "run `brewslm prepare -p NAME` first")
    params = {"recipe": effective, "recipe_name": recipe, "resume": resume, "force": force,
              "backend": backend, "processes": processes,
              "accelerate_config": accelerate_config}
    return run_stage(TrainStage(), project, params=params, inputs={"manifest": manifest_id},
                     parent_run_id=parent_run_id)


class TrainStage:
    name, number, version = "train", 8, "1"
    inputs = ("manifest",)
    outputs = ("model",)

    def validate(self, ctx: StageContext) -> None:
        p, manifest = ctx.params, ctx.inputs["manifest"]
        ctx.scratch["manifest_hash"] = manifest.meta["manifest_hash"]
        ctx.scratch["recipe_hash"] = recipe_hash(p["recipe"])
        if p["backend"] == "simulate":
            ctx.scratch["work_dir"] = self._new_work_dir(ctx)
            return
        from brewslm.basemodels.reference import resolve_base_model
        from brewslm.stages.preflight import gate

        ctx.scratch["base"] = resolve_base_model(ctx.project.base_model or "builtin:tiny")
        # No compute on a job preflight blocks; --force goes on and records preflight_forced.
        ctx.scratch["preflight"] = gate(ctx.project, manifest, p["recipe"], force=p["force"],
                                        emit=ctx.emit)
        ctx.scratch["resume_from"] = self._resume_point(ctx) if p["resume"] else None
        work = (Path(ctx.scratch["resume_from"]).parent.parent if ctx.scratch["resume_from"]
                else self._new_work_dir(ctx))
        ctx.scratch["work_dir"] = work

    def run(self, ctx: StageContext) -> dict[str, Any]:
        work: Path = ctx.scratch["work_dir"]
        run_manifest = self._write_run_manifest(ctx, work)
        simulated = ctx.params["backend"] == "simulate"
        ctx.emit("train_started", f"{'SIMULATED training' if simulated else 'training'} "
                 f"{ctx.params['recipe']['method']} on manifest "
                 f"{ctx.scratch['manifest_hash'][:12]}", work_dir=str(work),
                 recipe_hash=ctx.scratch["recipe_hash"], simulated=simulated,
                 resumed_from=run_manifest["resumed_from"])
        outcome = self._fit(ctx, work)
        self._raise_if_stopped(ctx, outcome)
        return self._publish(ctx, work, outcome, run_manifest)

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        model = ctx.outputs["model"]
        cited = json.loads((model.path / RUN_MANIFEST).read_text(encoding="utf-8"))
        if cited["manifest_hash"] != ctx.scratch["manifest_hash"]:
            raise BrewError("contract_violated", "the model's run manifest does not cite the "
                            "manifest it was trained on")

    # --- validate helpers ------------------------------------------------------------------

    def _new_work_dir(self, ctx: StageContext) -> Path:
        work = ctx.project.dir / WORK_ROOT / ctx.run_id
        work.mkdir(parents=True, exist_ok=False)
        return work

    def _resume_point(self, ctx: StageContext) -> str:
        found = resumable_checkpoint(ctx.project, ctx.scratch["manifest_hash"],
                                     ctx.scratch["recipe_hash"])
        if found is None:
            raise InputError("train_resume_unavailable", "Nothing to resume: no unfinished "
                             "training run of this project left a checkpoint for this manifest "
                             "and recipe. Run `brewslm train` without --resume.")
        return found

    # --- run helpers -------------------------------------------------------------------------

    def _write_run_manifest(self, ctx: StageContext, work: Path) -> dict[str, Any]:
        """The immutable record of what this run is: written once, never rewritten."""
        resume_from = ctx.scratch.get("resume_from")
        doc = run_manifest(ctx, resumed_from=_resume_info(resume_from))
        folder = work / "run-manifests"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{ctx.run_id}.json", "x", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
        return doc

    def _fit(self, ctx: StageContext, work: Path) -> Any:
        from brewslm.train.simulate import planned_steps

        p = ctx.params
        sink = _Sink(ctx, work)
        sink.max_steps = planned_steps(p["recipe"], _train_rows(ctx))
        if p["backend"] == "simulate":
            from brewslm.train.simulate import simulate

            return simulate(p["recipe"], train_rows=_train_rows(ctx), work_dir=work, sink=sink)
        spec = self._spec(ctx, work)
        try:
            if p["processes"] > 1 or p.get("accelerate_config"):
                return _run_distributed(ctx, spec, p["processes"], sink,
                                        p.get("accelerate_config"))
            from brewslm.train.engine import StopRequest, fit

            stop = StopRequest()
            with _stop_on_signals(stop):
                return fit(spec, sink=sink, stop=stop)
        except BrewError:
            raise
        except Exception as exc:
            raise _coded_failure(exc, work) from exc

    def _spec(self, ctx: StageContext, work: Path) -> Any:
        from brewslm.train.engine import FitSpec

        assessment = ctx.scratch["preflight"]
        return FitSpec(base_model=str(ctx.scratch["base"].path),
                       manifest_dir=str(ctx.inputs["manifest"].path),
                       recipe=ctx.params["recipe"], work_dir=str(work),
                       manifest_hash=ctx.scratch["manifest_hash"],
                       recipe_hash=ctx.scratch["recipe_hash"], run_id=ctx.run_id,
                       device=assessment.device, dtype=assessment.dtype,
                       resume_from=ctx.scratch.get("resume_from"))

    def _raise_if_stopped(self, ctx: StageContext, outcome: Any) -> None:
        if outcome.retried_oom:
            ctx.emit("train_oom_retried", "out of memory: retried once with micro-batch "
                     f"{outcome.retried_oom['micro_batch']} and gradient accumulation "
                     f"{outcome.retried_oom['grad_accumulation']}", severity="warning",
                     **outcome.retried_oom)
        if outcome.stopped not in STOP_CODES:
            if outcome.stopped == "early_stopping":
                ctx.emit("train_early_stopped", f"early stopping at step {outcome.steps}: no "
                         "better eval loss for "
                         f"{ctx.params['recipe']['early_stopping_patience']} evaluations",
                         step=outcome.steps)
            return
        code = STOP_CODES[outcome.stopped]
        what = ("cancelled" if outcome.stopped == "cancelled"
                else f"stopped: wall-clock budget of {ctx.params['recipe']['wall_clock_budget_s']}"
                     " s spent")
        raise BrewError(code, f"Training {what} at step {outcome.steps} of "
                        f"{outcome.max_steps}; checkpoint {outcome.last_checkpoint}. Continue "
                        "with `brewslm train -p NAME --resume` (same recipe and --set).",
                        step=outcome.steps, checkpoint=outcome.last_checkpoint)

    def _publish(self, ctx: StageContext, work: Path, outcome: Any,
                 manifest_doc: dict[str, Any]) -> dict[str, Any]:
        simulated = ctx.params["backend"] == "simulate"
        rows = history(work, outcome.log, manifest_doc["resumed_from"])
        builder = ctx.new_artifact("simulated_model" if simulated else "model")
        _copy_tree(Path(outcome.model_dir), builder.dir)
        (builder.dir / RUN_MANIFEST).write_text(json.dumps(
            {**manifest_doc, "outcome": outcome.to_dict()}, indent=2, sort_keys=True),
            encoding="utf-8")
        metrics.write_jsonl(rows, builder.dir / "metrics.jsonl")
        title = f"{'SIMULATED ' if simulated else ''}{ctx.params['recipe']['method']} " \
                f"{ctx.run_id}"
        metrics.write_png(rows, builder.dir / "loss.png", title=title)
        metrics.write_html(rows, builder.dir / "loss.html", title=title)
        meta = {"method": ctx.params["recipe"]["method"], "base_model": ctx.project.base_model,
                "manifest_hash": ctx.scratch["manifest_hash"],
                "recipe_hash": ctx.scratch["recipe_hash"], "steps": outcome.steps,
                "final_loss": outcome.final_loss, "simulated": simulated,
                "backend": "SIMULATED (no model)" if simulated else "transformers+peft"}
        art = ctx.publish("model", builder, meta)
        result = self._result(ctx, outcome, rows, art, manifest_doc)
        ctx.emit("train_completed", f"{'SIMULATED: ' if simulated else ''}trained "
                 f"{outcome.steps} steps, loss {_fmt(outcome.final_loss)}, eval loss "
                 f"{_fmt(result.get('first_eval_loss'))} -> {_fmt(result.get('last_eval_loss'))}",
                 model_id=art.id, steps=outcome.steps, simulated=simulated)
        return result

    def _result(self, ctx: StageContext, outcome: Any, rows: list[dict[str, Any]],
                art: Any, manifest_doc: dict[str, Any]) -> dict[str, Any]:
        simulated = ctx.params["backend"] == "simulate"
        result = {"model_id": art.id, "checkpoint": outcome.last_checkpoint,
                  "final_loss": outcome.final_loss, "steps": outcome.steps,
                  "max_steps": outcome.max_steps, "epochs": outcome.epochs,
                  "tokens": outcome.tokens, "tokens_per_second": outcome.tokens_per_second,
                  "train_seconds": outcome.seconds, "world_size": outcome.world_size,
                  "stopped": outcome.stopped, "recipe": ctx.params["recipe"],
                  "recipe_hash": ctx.scratch["recipe_hash"],
                  "manifest_hash": ctx.scratch["manifest_hash"],
                  "resumed_from": manifest_doc["resumed_from"],
                  "trainable_parameters": outcome.trainable_parameters,
                  "total_parameters": outcome.total_parameters,
                  "simulated": simulated, **metrics.summary(rows),
                  "plot": metrics.terminal_plot(rows, title=f"loss {ctx.run_id}"),
                  "plot_files": [str(art.path / "loss.png"), str(art.path / "loss.html")]}
        if simulated:
            result["notice"] = "SIMULATED: no model was trained; traces are generated."
        if outcome.retried_oom:
            result["retried_oom"] = outcome.retried_oom
        if ctx.scratch.get("ranks"):  # every rank's own report: proof that N ranks ran
            result["ranks"] = ctx.scratch["ranks"]
        if "preflight" in ctx.scratch:
            result["memory"] = _memory_check(ctx.scratch["preflight"], outcome)
        return result


# --- resume ----------------------------------------------------------------------------------

def resumable_checkpoint(project: ProjectInfo, manifest_hash: str, recipe_hash_: str) -> str | None:
    """The newest tagged checkpoint of an unfinished work folder for this manifest and recipe."""
    from brewslm.train.engine import FINAL_DIR, checkpoint_tag, latest_checkpoint

    root = project.dir / WORK_ROOT
    if not root.is_dir():
        return None
    folders = sorted((p for p in root.iterdir() if p.is_dir()),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for work in folders:
        if (work / FINAL_DIR).exists():
            continue  # finished: nothing to resume
        checkpoint = latest_checkpoint(work)
        if checkpoint is None:
            continue
        tag = checkpoint_tag(Path(checkpoint))
        if tag.get("manifest_hash") == manifest_hash and tag.get("recipe_hash") == recipe_hash_:
            return checkpoint
    return None


def _resume_info(checkpoint: str | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    from brewslm.train.engine import checkpoint_tag

    tag = checkpoint_tag(Path(checkpoint))
    return {"run_id": tag["run_id"], "checkpoint": checkpoint, "step": tag["step"]}


def history(work: Path, log: list[dict[str, Any]],
            resumed_from: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The whole trace of the model: earlier runs' lines up to the resumed checkpoint (from
    their run manifests' metrics in trace.jsonl) and this run's lines."""
    earlier: list[dict[str, Any]] = []
    trace = work / "trace.jsonl"
    if resumed_from and trace.exists():
        for line in trace.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry.get("run_id") != log_run_id(log) and entry["step"] <= resumed_from["step"]:
                earlier.append(entry)
    return _dedupe(earlier + [dict(e) for e in log])


def log_run_id(log: list[dict[str, Any]]) -> str | None:
    return log[0].get("run_id") if log else None


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (step, kind); the later line wins (a resumed run re-logs a step)."""
    seen: dict[tuple[int, bool], dict[str, Any]] = {}
    for row in rows:
        seen[(row["step"], "eval_loss" in row)] = row
    return [seen[k] for k in sorted(seen)]


# --- the trace sink ----------------------------------------------------------------------------

class _Sink:
    """Each trace line: into the metrics table, the work folder's trace.jsonl (resume keeps
    the history), the progress bar, and an event at each evaluation."""

    def __init__(self, ctx: StageContext, work: Path) -> None:
        self.ctx, self.trace = ctx, work / "trace.jsonl"
        self.simulated = ctx.params["backend"] == "simulate"
        self.max_steps: int | None = None

    def __call__(self, entry: dict[str, Any]) -> None:
        entry["run_id"] = self.ctx.run_id
        metrics.record(self.ctx.project, self.ctx.run_id, entry)
        with self.trace.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        if "loss" in entry:
            self.ctx.progress(entry["step"], self.max_steps, loss=round(entry["loss"], 4))
        if "eval_loss" in entry:
            prefix = "SIMULATED: " if self.simulated else ""
            self.ctx.emit("train_eval", f"{prefix}eval loss {entry['eval_loss']:.4f} at step "
                          f"{entry['step']}", step=entry["step"], eval_loss=entry["eval_loss"],
                          simulated=self.simulated)


# --- distributed -------------------------------------------------------------------------------

def _run_distributed(ctx: StageContext, spec: Any, processes: int, sink: _Sink,
                     accelerate_config: str | None = None) -> Any:
    """One torchrun rank per process on this machine (or what the accelerate config says);
    rank 0's trace is tailed into sink."""
    from brewslm.train.engine import FitOutcome
    from brewslm.train.launch import OUTCOME_FILE, RANKS_DIR, TRACE_FILE

    work = Path(spec.work_dir)
    spec_path = work / "spec.json"
    spec_path.write_text(spec.to_json(), encoding="utf-8")
    command = (accelerate_command(spec_path, accelerate_config) if accelerate_config
               else launch_command(spec_path, processes))
    log_path = work / "launch.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=_launch_env())
        tail = _Tail(work / TRACE_FILE)
        with _forward_signals(proc):
            while proc.poll() is None:
                time.sleep(0.5)
                tail.feed(sink)
        tail.feed(sink)
    ranks = sorted((work / RANKS_DIR).glob("rank-*.json"))
    if proc.returncode != 0 or not (work / OUTCOME_FILE).exists():
        errors = sorted((work / RANKS_DIR).glob("rank-*.error"))
        detail = errors[0].read_text(encoding="utf-8")[-3000:] if errors else \
            log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise BrewError("train_runtime_error", f"distributed training failed (exit "
                        f"{proc.returncode}, {len(ranks)} of {processes} ranks finished): "
                        f"{detail.strip().splitlines()[-1] if detail.strip() else ''}",
                        traceback=detail, command=command)
    outcome = FitOutcome(**json.loads((work / OUTCOME_FILE).read_text(encoding="utf-8")))
    outcome.log = tail.entries
    ctx.scratch["ranks"] = [json.loads(p.read_text()) for p in ranks]
    return outcome


def launch_command(spec_path: Path, processes: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
            "--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
            "-m", "brewslm.train.launch", str(spec_path)]


def accelerate_command(spec_path: Path, config_file: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config_file,
            "-m", "brewslm.train.launch", str(spec_path)]


def _checked_accelerate_config(path: str) -> str:
    """An existing config file, on a machine with CUDA: on CPU `accelerate launch` starts one
    process whatever num_processes says (measured, FACTS.md), so a multi-process CPU run
    would silently be a single one; torchrun (--processes) is the CPU path."""
    from brewslm.train.hardware import cuda_available

    config = Path(path).expanduser()
    if not config.is_file():
        raise InputError("train_launcher_unsupported", f"accelerate config {path!r} is not a "
                         "file.", accelerate_config=path)
    if not cuda_available():
        raise InputError("train_launcher_unsupported", "accelerate launch needs CUDA here: on "
                         "CPU it silently starts one process. Use --processes N (torchrun, "
                         "gloo) for multi-process CPU training.", accelerate_config=path)
    return str(config.resolve())


def _launch_env() -> dict[str, str]:
    env = dict(os.environ)
    # One intra-op thread per rank unless the user chose: N ranks x all cores oversubscribes.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Tail:
    """Reads the lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.entries: list[dict[str, Any]] = []

    def feed(self, sink: _Sink) -> None:
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8") as fh:
            fh.seek(self.offset)
            while (line := fh.readline()).endswith("\n"):
                self.offset = fh.tell()
                entry = json.loads(line)
                self.entries.append(entry)
                sink(dict(entry))


@contextmanager
def _forward_signals(proc: subprocess.Popen) -> Iterator[None]:
    """Ctrl-C or SIGTERM here: SIGTERM to every rank (each checkpoints and stops)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: Any) -> None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def _stop_on_signals(stop: Any) -> Iterator[None]:
    """Ctrl-C or SIGTERM: checkpoint at the next optimizer step, then stop (train_cancelled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda *_: stop.set("cancelled"))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# --- failures ----------------------------------------------------------------------------------

def _coded_failure(exc: Exception, work: Path) -> BrewError:
    from brewslm.train.engine import is_out_of_memory, latest_checkpoint

    trace = "".join(traceback.format_exception(exc))[-4000:]
    checkpoint = latest_checkpoint(work)
    if is_out_of_memory(exc):
        return BrewError("train_out_of_memory", f"Training ran out of memory: {exc}. Lower "
                         "micro_batch (raise grad_accumulation), turn gradient_checkpointing "
                         "on, or shorten max_length; `brewslm preflight` suggests a plan.",
                         traceback=trace, checkpoint=checkpoint)
    return BrewError("train_runtime_error", f"Training failed: {type(exc).__name__}: {exc}",
                     traceback=trace, checkpoint=checkpoint)


# --- the run manifest --------------------------------------------------------------------------

def run_manifest(ctx: StageContext, *, resumed_from: dict[str, Any] | None) -> dict[str, Any]:
    manifest = ctx.inputs["manifest"]
    base = ctx.scratch.get("base")
    assessment = ctx.scratch.get("preflight")
    return {
        "format": "brewslm.run_manifest/1", "run_id": ctx.run_id, "stage": "train",
        "created_at": datetime.now(UTC).isoformat(),
        "backend": ("SIMULATED (no model is trained)" if ctx.params["backend"] == "simulate"
                    else "transformers Trainer + peft"),
        "recipe": ctx.params["recipe"], "recipe_name": ctx.params["recipe_name"],
        "recipe_hash": ctx.scratch["recipe_hash"], "seed": ctx.params["recipe"]["seed"],
        "manifest_hash": ctx.scratch["manifest_hash"], "manifest_id": manifest.id,
        "dataset_id": manifest.meta.get("dataset_id"),
        "base_model": {"ref": ctx.project.base_model,
                       "path": str(base.path) if base else None,
                       "weights_sha256": _weights_sha(base.path) if base else None},
        "device": assessment.device if assessment else None,
        "dtype": assessment.dtype if assessment else None,
        "processes": ctx.params["processes"],
        "accelerate_config": ctx.params.get("accelerate_config"), "forced": ctx.params["force"],
        "resumed_from": resumed_from, "libraries": library_versions(), "hardware": hardware(),
    }


def library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("brewslm", "torch", "transformers", "peft", "accelerate", "tokenizers",
                 "safetensors"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict[str, Any]:
    import psutil

    from brewslm.train.hardware import cpu_model

    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpu": cpu_model(), "cpus": len(os.sched_getaffinity(0)),
                            "memory_bytes": psutil.virtual_memory().total, "cuda": None}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda"] = {"devices": [torch.cuda.get_device_name(i)
                                        for i in range(torch.cuda.device_count())],
                            "version": torch.version.cuda}
    except ImportError:
        pass
    return info


def _weights_sha(folder: Path) -> str | None:
    sidecar = folder / "brewslm-model.json"
    if sidecar.exists():
        sums = json.loads(sidecar.read_text(encoding="utf-8")).get("sha256") or {}
        if "model.safetensors" in sums:
            return sums["model.safetensors"]
    weights = folder / "model.safetensors"
    if not weights.exists():
        return None
    import hashlib

    digest = hashlib.sha256()
    with open(weights, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- small helpers -----------------------------------------------------------------------------

def _memory_check(assessment: Any, outcome: Any) -> dict[str, Any]:
    """Preflight's prediction against what the run really used."""
    predicted = assessment.memory.get("estimated_peak_bytes")
    measured = outcome.peak_memory_bytes
    return {"estimated_peak_bytes": predicted, "measured_peak_bytes": measured,
            "ratio": round(predicted / measured, 3) if predicted and measured else None,
            "measured_as": "process peak RSS (VmHWM)" if assessment.device == "cpu"
            else "torch.cuda.max_memory_allocated"}


def _train_rows(ctx: StageContext) -> int:
    doc = json.loads((ctx.inputs["manifest"].path / "manifest.json").read_text(encoding="utf-8"))
    return int(doc["splits"]["train"]["rows"])


def _copy_tree(src: Path, dst: Path) -> None:
    import shutil

    for path in src.iterdir():
        if path.name == "training_args.bin":  # a pickle of TrainingArguments: not portable
            continue
        target = dst / path.name
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def run_metrics(project: ProjectInfo, run_id: str | None = None) -> dict[str, Any]:
    """A training run's trace (by default the latest run that trained: succeeded, failed or
    running, not blocked or reused), with the runs it resumed from up
    to the step it resumed at, its summary and a terminal plot."""
    from sqlalchemy import select

    from brewslm.errors import NotFoundError
    from brewslm.store import session
    from brewslm.store.models import StageRun

    query = select(StageRun).where(StageRun.project_id == project.id, StageRun.stage == "train",
                                   StageRun.status.in_(("succeeded", "failed", "running")))
    if run_id:
        query = query.where(StageRun.run_id == run_id)
    with session() as s:
        run = s.scalars(query.order_by(StageRun.started_at.desc())).first()
        if run is None:
            raise NotFoundError("model_missing", f"project {project.name!r} has no training run"
                                f"{' ' + repr(run_id) if run_id else ''} yet: run `brewslm train "
                                "-p NAME` first")
        run_id, status, result = run.run_id, run.status, dict(run.result or {})
    rows = _with_earlier(project, metrics.read(project, run_id), result.get("resumed_from"))
    return {"run_id": run_id, "status": status, "simulated": bool(result.get("simulated")),
            "rows": rows, "summary": metrics.summary(rows),
            "plot": metrics.terminal_plot(rows, title=f"loss {run_id}"),
            "plot_files": result.get("plot_files", [])}


def _with_earlier(project: ProjectInfo, rows: list[dict[str, Any]],
                  resumed_from: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not resumed_from:
        return rows
    earlier = [r for r in metrics.read(project, resumed_from["run_id"])
               if r["step"] <= resumed_from["step"]]
    return _dedupe(earlier + rows)


def latest_model(project: ProjectInfo, model: str | None = None) -> str:
    """The model artifact the user named, or the latest trained one."""
    return require_output(project, "train", "model", model, "model_missing",
                          "run `brewslm train -p NAME` first")
