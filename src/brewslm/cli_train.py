"""CLI commands for the training stages (07 preflight, 08 train); registered by cli.py.

    brewslm preflight -p NAME [--recipe lora|full|qlora|FILE] [--set KEY=VALUE]...
                      [--memory-limit SIZE] [--force] [--manifest ID] [--json]
    brewslm train -p NAME [--recipe R] [--set KEY=VALUE]... [--resume] [--force]
                  [--processes N | --accelerate-config FILE] [--backend hf|simulate] [--json]
    brewslm metrics -p NAME [--run RUN_ID] [--json]

preflight prints its checks, the memory breakdown against the free memory (or --memory-limit,
to plan for a smaller target machine) and the verdict; on BLOCK it exits 3 and shows the plan
that fits. The stage logic lives in stages/preflight.py; this module only parses and prints.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from brewslm import console, project
from brewslm.cli_common import DetachOpt, JsonOpt, ProjectOpt, finish_stage, guarded, stage_call
from brewslm.errors import InputError

RecipeOpt = Annotated[str, typer.Option("--recipe", help="lora, full, qlora, or the path of a "
                                        "YAML recipe.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key, e.g. "
                                                  "--set micro_batch=4 (repeatable).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Go on although preflight blocks "
                                        "(recorded).")]
ManifestOpt = Annotated[str | None, typer.Option("--manifest", help="Manifest id (default: the "
                                                 "latest).")]
MemoryLimitOpt = Annotated[str | None, typer.Option(
    "--memory-limit", help="Plan for this much memory instead of what is free now, e.g. 2GiB, "
    "500MB.")]

# Decimal (kB, MB, GB, TB) and binary (KiB, MiB, GiB, TiB; K, M, G, T alone) size units.
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30,
          "t": 2**40, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")

STATUS_COLOURS = {"pass": "green", "warn": "yellow", "fail": "red"}
BREAKDOWN_ROWS = (("weights", "weights"), ("trainable_params", "trainable params"),
                  ("gradients", "gradients"), ("optimizer_states", "optimizer states"),
                  ("activations", "activations"), ("logits", "logits"),
                  ("framework_overhead", "framework overhead"))


def parse_size(text: str) -> int:
    """Bytes from "2GiB", "500MB", "1.5G" or "1048576"; InputError (exit 2) otherwise."""
    match = _SIZE.fullmatch(text or "")
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise InputError("stage_params_invalid", f"--memory-limit {text!r} is not a size: use "
                         "e.g. 2GiB, 500MB, 1.5G or a number of bytes", field="memory_limit")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise InputError("stage_params_invalid", "--memory-limit must be more than 0 bytes",
                         field="memory_limit")
    return size


def register(app: typer.Typer) -> None:
    """Add the training commands to the main app."""

    @app.command("preflight")
    @guarded
    def preflight_cmd(project_name: ProjectOpt, recipe: RecipeOpt = "lora",
                      set_: SetOpt = None, force: ForceOpt = False,
                      memory_limit: MemoryLimitOpt = None, manifest: ManifestOpt = None,
                      json_out: JsonOpt = False, detach: DetachOpt = False) -> None:
        """07 preflight: GO or BLOCK before training (dependencies, model, data, memory,
        disk); exits 3 on BLOCK."""
        limit = parse_size(memory_limit) if memory_limit is not None else None
        result = stage_call("preflight", project_name, {
            "recipe": recipe, "overrides": set_ or [], "force": force, "manifest": manifest,
            "memory_limit_bytes": limit}, json_out=json_out, detach=detach)
        if not json_out and result.result.get("verdict"):
            print_preflight(result.result)
        finish_stage(result, json_out)

    @app.command("train")
    @guarded
    def train_cmd(project_name: ProjectOpt, recipe: RecipeOpt = "lora",
                  overrides: SetOpt = None,
                  resume: Annotated[bool, typer.Option(
                      "--resume", help="Continue the last interrupted run of this manifest and "
                      "recipe from its last checkpoint.")] = False,
                  force: ForceOpt = False,
                  backend: Annotated[str, typer.Option(
                      "--backend", help="hf (real training) or simulate (SIMULATED traces, no "
                      "model: pipeline and UI tests only).")] = "hf",
                  processes: Annotated[int, typer.Option(
                      "--processes", help="Ranks to launch with torchrun on this machine (DDP; "
                      "gloo on CPU).")] = 1,
                  accelerate_config: Annotated[str | None, typer.Option(
                      "--accelerate-config", help="Launch with `accelerate launch` and this "
                      "config (multi-GPU DDP, FSDP, DeepSpeed; CUDA only).")] = None,
                  manifest: ManifestOpt = None, json_out: JsonOpt = False,
                  detach: DetachOpt = False) -> None:
        """08 train: fine-tune the base model on the manifest with a recipe (real, resumable)."""
        result = stage_call("train", project_name, {
            "recipe": recipe, "overrides": overrides or [], "resume": resume, "force": force,
            "backend": backend, "processes": processes, "accelerate_config": accelerate_config,
            "manifest": manifest}, json_out=json_out, detach=detach)
        if not json_out and result.status in ("succeeded", "reused"):
            print_training(result.to_dict())
        finish_stage(result, json_out)

    @app.command("metrics")
    @guarded
    def metrics_cmd(project_name: ProjectOpt,
                    run: Annotated[str | None, typer.Option(
                        "--run", help="Training run id (default: the latest).")] = None,
                    json_out: JsonOpt = False) -> None:
        """Training traces of a run: loss, eval loss, learning rate, grad norm, tokens/s."""
        from brewslm.stages.train import run_metrics

        found = run_metrics(project.get(project_name), run)
        if json_out:
            console.print_json(found)
            return
        console.out.print(found["plot"], highlight=False, markup=False)
        console.out.print(f"run {found['run_id']}  {found['summary']}")
        if found.get("plot_files"):
            console.out.print("charts: " + "  ".join(found["plot_files"]))



# --- printing ----------------------------------------------------------------------------------


def print_preflight(res: dict[str, Any]) -> None:
    """The checks, the memory breakdown, the verdict and (on BLOCK) the plan that fits."""
    console.out.print(console.table(
        f"preflight checks ({res['device']}, {res['dtype']})",
        ["check", "status", "code", "message"],
        [(c["name"], f"[{STATUS_COLOURS[c['status']]}]{c['status']}[/]", c["reason_code"],
          c["message"]) for c in res["checks"]]))
    if res["memory"].get("breakdown"):
        _print_memory(res["memory"])
    _print_verdict(res)
    if res["verdict"] == "BLOCK" and res.get("plan"):
        _print_plan(res["plan"])


def _print_memory(mem: dict[str, Any]) -> None:
    rows = [(label, console.human_bytes(mem["breakdown"][key])) for key, label in BREAKDOWN_ROWS]
    peak = console.human_bytes(mem["estimated_peak_bytes"])
    rows.append(("[bold]estimated peak[/]", f"[bold]{peak}[/]"))
    where = "limit" if mem.get("memory_limit_bytes") else f"free on {mem['device']}"
    rows.append((where, console.human_bytes(mem.get("free_bytes"))))
    margin = mem.get("safety_margin", 0.15)
    rows.append((f"budget ({1 - margin:.0%} of {where})", console.human_bytes(
        mem.get("budget_bytes"))))
    colour, verdict = {True: ("green", "fits"), False: ("red", "does not fit")}.get(
        mem.get("fits"), ("yellow", "fit unknown"))
    console.out.print(console.table(f"memory at the peak ({mem.get('peak_phase')}): "
                                    f"[{colour}]{verdict}[/]", ["term", "bytes"], rows))


def _print_verdict(res: dict[str, Any]) -> None:
    if res["verdict"] == "GO":
        console.out.print("verdict: [bold green]GO[/]")
        return
    forced = " (overridden by --force, recorded)" if res.get("forced") else ""
    colour = "yellow" if res.get("forced") else "red"
    console.out.print(f"verdict: [bold {colour}]BLOCK[/]{forced}: "
                      + ", ".join(c["reason_code"] for c in res["blockers"]))


def _print_plan(plan: dict[str, Any]) -> None:
    if not plan.get("fits"):
        console.out.print(f"[yellow]no plan tried fits[/] (smallest estimate "
                          f"{console.human_bytes(plan['estimated_peak_bytes'])} vs budget "
                          f"{console.human_bytes(plan['budget_bytes'])})")
        return
    console.out.print(f"suggested plan ({console.human_bytes(plan['estimated_peak_bytes'])} "
                      f"of {console.human_bytes(plan['budget_bytes'])}):")
    for change in plan["changes"]:
        console.out.print(f"  - {change}")
    console.out.print("  retry with: " + " ".join(f"--set {o}" for o in plan["overrides"]))


def print_training(res: dict[str, Any]) -> None:
    if res.get("simulated"):
        console.out.print("[bold yellow]SIMULATED[/] no model was trained; traces are generated")
    console.out.print(res["plot"], highlight=False, markup=False)
    console.out.print(
        f"steps {res['steps']}/{res['max_steps']}  loss {res.get('final_loss')}  eval loss "
        f"{res.get('first_eval_loss')} -> {res.get('last_eval_loss')}  tokens/s "
        f"{res.get('tokens_per_second')}")
    memory = res.get("memory") or {}
    if memory.get("ratio"):
        console.out.print(
            f"memory: preflight estimated {console.human_bytes(memory['estimated_peak_bytes'])},"
            f" measured {console.human_bytes(memory['measured_peak_bytes'])} "
            f"(ratio {memory['ratio']}, {memory['measured_as']})")
    console.out.print(f"model {res['model_id'][:16]}  charts: {'  '.join(res['plot_files'])}")
