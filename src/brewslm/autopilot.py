"""The autopilot: `brewslm run -p NAME --data SOURCE` takes a project through every stage with
sensible defaults, reusing the stage services (no stage logic here).

    from brewslm.autopilot import run_project
    summary = run_project(project, data="tickets.jsonl", strict=False)
    summary["status"]      # done / stopped (with `stopped_at` and `why`)

ingest -> introspect -> map --dry-run (shown) -> map, only when introspection is confident (else
it stops and says what to pass) -> clean -> prepare -> preflight -> train -> evaluate -> export
(GGUF when the architecture allows, and safetensors) -> deploy (the safetensors export, served
by `brewslm serve` or the API at /serve/NAME/v1). When preflight blocks on memory, the autopilot
applies only safe repairs from preflight's own plan (smaller micro-batch with more accumulation,
gradient checkpointing, a shorter max length, reporting the rows that costs) or, when none fits,
a smaller base model of the same family that is here already (families.py; prepare runs again
with its tokenizer), each recorded as an `autopilot_repair` decision event with its evidence;
--strict refuses them. Run again, it resumes where it stopped: every finished stage with the
same inputs and parameters is reused, not recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brewslm.events import emit_event
from brewslm.project import ProjectInfo
from brewslm.stages.runner import StageResult

SAFE_REPAIRS = ("micro_batch", "grad_accumulation", "gradient_checkpointing", "max_length")


class Stop(Exception):
    """The autopilot cannot go on; `why` says what to do."""

    def __init__(self, stage: str, code: str, why: str) -> None:
        super().__init__(why)
        self.stage, self.code, self.why = stage, code, why


def run_project(project: ProjectInfo, *, data: str, goal: str | None = None,
                strict: bool = False, recipe: str = "lora", overrides: list[str] | None = None,
                pack: str = "default", eval_overrides: list[str] | None = None,
                deploy: bool = True, say: Callable[[str], None] | None = None
                ) -> dict[str, Any]:
    """Every stage in order; returns the summary (rows per stage, eval, gates, artifacts)."""
    say = say or (lambda _line: None)
    steps: list[dict[str, Any]] = []
    emit_event("autopilot_started", f"autopilot on {data}" + (f" (goal: {goal})" if goal
               else ""), project_id=project.id, stage="autopilot",
               payload={"data": data, "goal": goal, "strict": strict})
    try:
        _data_stages(project, data, steps, say)
        project, train_overrides = _preflight(project, recipe, list(overrides or []), strict,
                                              steps, say)
        _model_stages(project, recipe, train_overrides, pack, list(eval_overrides or []),
                      deploy, steps, say)
    except Stop as stop:
        emit_event("autopilot_stopped", f"autopilot stopped at {stop.stage}: {stop.why}",
                   project_id=project.id, stage="autopilot", severity="warning",
                   payload={"stage": stop.stage, "cause": stop.code})
        return {"status": "stopped", "stopped_at": stop.stage, "cause": stop.code,
                "why": stop.why, "steps": steps}
    emit_event("autopilot_finished", "autopilot finished every stage", project_id=project.id,
               stage="autopilot")
    return {"status": "done", "steps": steps}


def _data_stages(project: ProjectInfo, data_source: str, steps: list[dict[str, Any]],
                 say: Callable[[str], None]) -> None:
    from brewslm.stages import data

    _step(steps, say, "ingest", data.ingest(project, data_source))
    intro = _step(steps, say, "introspect", data.introspect(project))
    proposal = intro.result.get("proposal") or {}
    if not proposal.get("auto_pick"):
        raise Stop("map", "autopilot_mapping_unsure", f"introspection is not confident "
                   f"(best: {proposal.get('mapper')} at {proposal.get('confidence', 0):.2f}); "
                   "look at `brewslm map -p NAME --dry-run` and pass --mapper and --field-map "
                   "to `brewslm map`, then run again")
    _step(steps, say, "map --dry-run", data.map_rows(project, dry_run=True))
    _step(steps, say, "map", data.map_rows(project))
    _step(steps, say, "clean", data.clean(project))
    _step(steps, say, "prepare", data.prepare(project))


def _preflight(project: ProjectInfo, recipe: str, overrides: list[str], strict: bool,
               steps: list[dict[str, Any]], say: Callable[[str], None]
               ) -> tuple[ProjectInfo, list[str]]:
    """Preflight; on a memory block, the safe part of preflight's plan, else a smaller base
    model of the same family (unless strict). Returns the project (its base model may have
    changed) and the training overrides."""
    from brewslm.stages.preflight import preflight

    checked = preflight(project, recipe=recipe, overrides=overrides)
    if checked.status != "blocked":
        _step(steps, say, "preflight", checked)
        return project, overrides
    plan = checked.result.get("plan") or {}
    repairs = plan.get("overrides") or []
    unsafe = [o for o in repairs if o.split("=", 1)[0] not in SAFE_REPAIRS]
    if strict or not plan.get("fits") or unsafe or not repairs:
        if not strict and _memory_block(checked):
            smaller = _smaller_base_model(project, checked, say)
            if smaller is not None:
                steps.append(_row("preflight", checked))
                _step(steps, say, "prepare", _prepare(smaller))
                return _preflight(smaller, recipe, overrides, strict, steps, say)
        steps.append(_row("preflight", checked))
        why = ("--strict refuses repairs" if strict else "no safe plan fits" if not unsafe
               else f"the plan needs {unsafe}, which is not a safe repair")
        raise Stop("preflight", checked.error["code"], f"{checked.error['message']} ({why})")
    for change in repairs:
        emit_event("autopilot_repair", f"preflight blocked: applying {change}",
                   project_id=project.id, stage="autopilot", payload={
                       "change": change, "reason": checked.error["code"],
                       "estimated_peak_bytes": (checked.result.get("memory") or {}).get(
                           "estimated_peak_bytes"),
                       "planned_peak_bytes": plan.get("estimated_peak_bytes"),
                       "changes": plan.get("changes"), **_rows_cost(project, change)})
        say(f"  repair: {change}")
    repaired = overrides + repairs
    _step(steps, say, "preflight", preflight(project, recipe=recipe, overrides=repaired))
    return project, repaired


def _memory_block(checked: StageResult) -> bool:
    return any(b.get("reason_code") == "preflight_memory_exceeded"
               for b in checked.result.get("blockers") or [])


def _smaller_base_model(project: ProjectInfo, checked: StageResult,
                        say: Callable[[str], None]) -> ProjectInfo | None:
    """Switch to the next smaller model of the base model's family that is here (local or
    cached; nothing is downloaded), recording the decision; None when there is none."""
    from brewslm import project as projects
    from brewslm.basemodels.families import available_locally, smaller_siblings

    for sibling in smaller_siblings(project.base_model or ""):
        if not available_locally(sibling):
            continue
        evidence = {"change": f"base_model={sibling}", "reason": checked.error["code"],
                    "from": project.base_model, "to": sibling,
                    "estimated_peak_bytes": (checked.result.get("memory") or {}).get(
                        "estimated_peak_bytes"),
                    "free_bytes": (checked.result.get("memory") or {}).get("free_bytes"),
                    "plan_fits": (checked.result.get("plan") or {}).get("fits")}
        emit_event("autopilot_repair", f"preflight blocked and no recipe change fits: "
                   f"base model {project.base_model} -> {sibling} (same family, smaller)",
                   project_id=project.id, stage="autopilot", payload=evidence)
        say(f"  repair: base model {project.base_model} -> {sibling}")
        return projects.set_base_model(project.name, sibling, reason="autopilot_repair")
    return None


def _prepare(project: ProjectInfo) -> StageResult:
    """Prepare again: the new base model's tokenizer makes a new manifest."""
    from brewslm.stages import data

    return data.prepare(project)


def _model_stages(project: ProjectInfo, recipe: str, overrides: list[str], pack: str,
                  eval_overrides: list[str], deploy_it: bool, steps: list[dict[str, Any]],
                  say: Callable[[str], None]) -> None:
    from brewslm.stages.deploy import deploy
    from brewslm.stages.evaluate import evaluate
    from brewslm.stages.export import export

    _step(steps, say, "train", _train(project, recipe, overrides, steps))
    _step(steps, say, "evaluate", evaluate(project, pack=pack, overrides=eval_overrides))
    served = None
    for fmt, quant in (("gguf", "q8_0"), ("safetensors", None)):
        result = export(project, fmt=fmt, quant=quant)
        if fmt == "gguf" and result.error and result.error["code"] in (
                "export_architecture_unsupported", "export_tokenizer_unsupported"):
            steps.append(_row("export gguf", result, skipped=True))
            continue  # not every architecture has a GGUF writer: safetensors still goes
        _step(steps, say, f"export {fmt}", result)
        served = result.result["export_id"]
    if deploy_it and served:
        from brewslm.serving import deployments

        active = deployments.active(project)
        if active is not None and active.export_id == served:  # a rerun: already serving
            steps.append({"stage": "deploy", "status": "reused", "counts": None,
                          "version": active.version, "deployment_status": active.status})
            return
        _step(steps, say, "deploy", deploy(project, export_id=served))


def _train(project: ProjectInfo, recipe: str, overrides: list[str],
           steps: list[dict[str, Any]]) -> StageResult:
    """Train, continuing from the checkpoint of an interrupted run of the same job if any."""
    from brewslm.stages.train import resumable_checkpoint, train

    found = {k: row[k] for row in steps for k in ("manifest_hash", "recipe_hash") if k in row}
    resume = len(found) == 2 and resumable_checkpoint(
        project, found["manifest_hash"], found["recipe_hash"]) is not None
    return train(project, recipe=recipe, overrides=overrides, resume=resume)


def _step(steps: list[dict[str, Any]], say: Callable[[str], None], name: str,
          result: StageResult) -> StageResult:
    row = _row(name, result)
    steps.append(row)
    say(f"{name:<16} {row['status']:<9} {row['counts'] or ''}")
    if result.status not in ("succeeded", "reused"):
        error = result.error or {}
        raise Stop(name, error.get("code", "stage_failed"), error.get("message", ""))
    return result


def _row(name: str, result: StageResult, *, skipped: bool = False) -> dict[str, Any]:
    out = result.to_dict()
    keep = ("promotable", "verdict", "export_id", "format", "version", "deployment_status",
            "model_id", "final_loss", "manifest_hash", "recipe_hash", "dataset_id",
            "snapshot_id", "endpoint", "quant", "steps")
    row = {"stage": name, "run_id": result.run_id,
           "status": "skipped" if skipped else result.status, "counts": out.get("counts"),
           "rejections_by_reason": out.get("rejections_by_reason"),
           "error": (result.error or {}).get("code"), "duration_s": out.get("duration_s"),
           **{k: out[k] for k in keep if k in out}}
    if "comparison" in out:  # evaluate: base -> candidate per metric, and each gate
        row["deltas"] = {k: {"base": v.get("base"), "candidate": v.get("candidate")}
                         for k, v in out["comparison"].items() if isinstance(v, dict)}
        row["gates"] = [{k: g.get(k) for k in ("id", "passed", "value", "threshold")}
                        for g in out.get("gates", [])]
    if out.get("artifacts"):  # export: what was written, where, with its parity
        row["artifacts"] = [a.get("path") for a in out["artifacts"]]
        row["parity_passed"] = (out.get("parity") or {}).get("passed")
    return row


def _rows_cost(project: ProjectInfo, change: str) -> dict[str, Any]:
    """What a shorter max length costs: train rows longer than it (their answers are cut)."""
    key, _, value = change.partition("=")
    if key != "max_length":
        return {}
    from brewslm import artifacts
    from brewslm.stages.outputs import latest_output
    from brewslm.train.data import load_split

    manifest = latest_output(project, "prepare", "manifest")
    rows = load_split(artifacts.get(project, manifest).path, "train").rows if manifest else []
    cut = sum(len(r["input_ids"]) > int(value) for r in rows)
    return {"rows_truncated": cut, "train_rows": len(rows)}
