"""`brewslm run`: the autopilot on the CLI; registered by cli.py.

    brewslm run -p NAME --data SOURCE [--base-model REF] [--goal TEXT] [--strict]
                [--set KEY=VALUE]... [--pack P] [--no-deploy] [--detach] [--json]

Creates the project when it does not exist (with --base-model, default builtin:tiny), then runs
every stage in order (autopilot.py) and prints a summary table: rows in / out / rejected per
stage, the verdicts, the export and the deployed version. A stop exits 3 and says what to do;
running the same command again resumes (finished stages are reused).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from brewslm import console, project
from brewslm.cli_common import DetachOpt, JsonOpt, ProjectOpt, guarded
from brewslm.errors import NotFoundError


def register(app: typer.Typer) -> None:
    """Add the run command to the main app."""

    @app.command("run")
    @guarded
    def run_cmd(project_name: ProjectOpt,
                data: Annotated[str, typer.Option("--data", help="The source to ingest (as "
                                                  "`brewslm ingest` takes).")],
                base_model: Annotated[str, typer.Option(
                    "--base-model", help="For a new project.")] = "builtin:tiny",
                goal: Annotated[str | None, typer.Option(help="What the model is for "
                                                         "(recorded).")] = None,
                strict: Annotated[bool, typer.Option(
                    "--strict", help="Refuse every automatic repair.")] = False,
                set_: Annotated[list[str] | None, typer.Option(
                    "--set", help="Training recipe override (repeatable).")] = None,
                pack: Annotated[str, typer.Option(help="Eval pack.")] = "default",
                no_deploy: Annotated[bool, typer.Option(
                    "--no-deploy", help="Stop after export.")] = False,
                json_out: JsonOpt = False, detach: DetachOpt = False) -> None:
        """Every stage from ingest to a deployed model (the autopilot); resumable."""
        import os

        from brewslm.autopilot import run_project

        info = _project(project_name, base_model)
        params = {"data": os.path.abspath(data) if os.path.exists(data) else data,
                  "goal": goal, "strict": strict, "overrides": set_ or [], "pack": pack,
                  "deploy": not no_deploy}
        if detach:
            from brewslm.cli_common import stage_call

            stage_call("run", info.name, params, json_out=json_out, detach=True)
        from brewslm import progress

        say = (lambda _line: None) if json_out else console.err.print
        with progress.rich_bars(enabled=not json_out):
            summary = run_project(info, say=say, **params)
        if json_out:
            console.print_json(summary)
        else:
            _print(summary)
        raise typer.Exit(0 if summary["status"] == "done" else 3)


def _project(name: str, base_model: str) -> Any:
    try:
        return project.get(name)
    except NotFoundError:
        return project.create(name, base_model=base_model)


def _print(summary: dict[str, Any]) -> None:
    rows = []
    for step in summary["steps"]:
        counts = step.get("counts") or {}
        verdict = next((f"{k}: {step[k]}" for k in ("verdict", "deployment_status",
                                                     "format", "promotable")
                        if k in step), step.get("error") or "")
        rows.append((step["stage"], step["status"], counts.get("in", ""),
                     counts.get("out", ""), counts.get("rejected", ""), verdict,
                     f"{step['duration_s']:.1f}" if step.get("duration_s") else ""))
    console.out.print(console.table("autopilot", ["stage", "status", "in", "out", "rejected",
                                                  "verdict", "s"], rows))
    _print_results(summary["steps"])
    if summary["status"] == "done":
        console.out.print("[bold green]done[/]: serve it with `brewslm serve -p NAME` "
                          "(or the API at /serve/NAME/v1)")
    else:
        console.out.print(f"[yellow]stopped at {summary['stopped_at']}[/] "
                          f"[{summary['cause']}]: {summary['why']}")


def _print_results(steps: list[dict[str, Any]]) -> None:
    """Eval deltas and gate verdicts, the exported artifacts, and the endpoint."""
    for step in steps:
        if step.get("deltas"):
            console.out.print(console.table("evaluation: base -> candidate", [
                "metric", "base", "candidate"], [(k, _num(v["base"]), _num(v["candidate"]))
                                                 for k, v in step["deltas"].items()]))
            console.out.print(console.table("gates", ["gate", "passed", "value", "threshold"], [
                (g["id"], g["passed"], _num(g["value"]), _num(g["threshold"]))
                for g in step["gates"]]))
        for path in step.get("artifacts") or []:
            console.out.print(f"{step['stage']}: {path} (parity "
                              f"{'passed' if step.get('parity_passed') else 'FAILED'})")
        if step.get("endpoint"):
            console.out.print(f"endpoint: {step['endpoint']} (version {step.get('version')})")


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "" if value is None else str(value)
