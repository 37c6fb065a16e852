"""`brewslm apply` and `brewslm config`: a project as a brewslm.yaml file; registered by cli.py.

    brewslm apply -f brewslm.yaml [--dry-run] [--run] [--json]
    brewslm config -p NAME [-o FILE] [--json]

apply checks the file (exit 2 with a projectfile_* code naming the key's path and line), shows
the plan (create / update / noop per part) and stores what it declares. It runs no stage:
--run then runs the autopilot (`brewslm run`) with the file's source, recipe and eval pack.
config writes the stored project as a file that applies back as all-noop. The work is in
projectfile.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from brewslm import console
from brewslm.cli_common import JsonOpt, ProjectOpt, guarded

UNSET = object()  # a key one side of an update does not have (a recipe knob: the recipe's own)
NOT_RUN = ("applying stores the declaration and runs no stage: `brewslm apply -f FILE --run` "
           "or `brewslm run -p NAME --data SOURCE` runs them")


def register(app: typer.Typer) -> None:
    """Add the apply and config commands to the main app."""

    @app.command("apply")
    @guarded
    def apply_cmd(file: Annotated[Path, typer.Option("--file", "-f", help="The project file "
                                                     "(brewslm.yaml).")],
                  dry_run: Annotated[bool, typer.Option(
                      "--dry-run", help="Show the plan; write nothing.")] = False,
                  run: Annotated[bool, typer.Option(
                      "--run", help="After applying, run every stage (the autopilot) with "
                      "the file's source, recipe and eval pack.")] = False,
                  json_out: JsonOpt = False) -> None:
        """Create or update a project from a brewslm.yaml (shows the plan first)."""
        from brewslm import projectfile

        spec = projectfile.load(file)
        # Refused before anything is written: --run must not half-happen.
        run_args = projectfile.run_args(spec) if run else None
        if dry_run:
            result = {"project": spec["project"]["name"],
                      "plan": projectfile.plan(spec), "applied": False}
        else:
            result = projectfile.apply(spec, file=file.resolve())
        summary = None if dry_run or run_args is None else _run(spec, run_args, json_out)
        _report(result, file, dry_run, summary, json_out)
        raise typer.Exit(0 if summary is None or summary["status"] == "done" else 3)

    @app.command("config")
    @guarded
    def config_cmd(project_name: ProjectOpt,
                   output: Annotated[Path | None, typer.Option(
                       "--output", "-o", help="Write here instead of stdout.")] = None,
                   json_out: JsonOpt = False) -> None:
        """Write a project back as a brewslm.yaml (stdout by default)."""
        from brewslm import projectfile

        spec = projectfile.export_project(project_name)
        text = projectfile.to_yaml(spec, header=f"brewslm.yaml for project {project_name}, "
                                   f"written by `brewslm config -p {project_name}`")
        if output is not None:
            output.write_text(text, encoding="utf-8")
        if json_out:
            console.print_json({"project": project_name, "config": spec,
                                "path": str(output) if output else None})
        elif output is not None:
            console.out.print(f"wrote project [bold]{project_name}[/] to {output}")
        else:
            sys.stdout.write(text)  # not through rich: the YAML must come out byte for byte


def _run(spec: dict[str, Any], run_args: dict[str, Any], json_out: bool) -> dict[str, Any]:
    from brewslm import project
    from brewslm.autopilot import run_project

    say = (lambda _line: None) if json_out else console.err.print
    return run_project(project.get(spec["project"]["name"]), say=say, **run_args)


def _report(result: dict[str, Any], file: Path, dry_run: bool, summary: dict[str, Any] | None,
            json_out: bool) -> None:
    if json_out:
        console.print_json({**result, "file": str(file), "dry_run": dry_run,
                            "stages_run": summary is not None, "run": summary})
        return
    rows = [(e["part"], e["action"], _change(e)) for e in result["plan"]]
    console.out.print(console.table(f"plan for project {result['project']} ({file})",
                                    ["part", "action", "change"], rows))
    changes = sum(e["action"] != "noop" for e in result["plan"])
    if dry_run:
        console.out.print(f"dry run: {changes} change(s), nothing written")
    elif result["applied"]:
        console.out.print(f"[green]applied[/] {changes} change(s)")
    else:
        console.out.print("nothing to change")
    if summary is None:
        console.out.print(NOT_RUN)
    else:
        status = summary["status"]
        console.out.print(f"run: {status}" + (f" at {summary['stopped_at']} "
                                              f"[{summary['cause']}]: {summary['why']}"
                                              if status != "done" else ""))


def _change(entry: dict[str, Any]) -> str:
    """What changes, short: the differing keys of a mapping, else before -> after."""
    before, after = entry["before"], entry["after"]
    if entry["action"] == "noop":
        return ""
    if entry["action"] == "update" and isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        return "; ".join(f"{k}: {_short(before.get(k, UNSET))} -> {_short(after.get(k, UNSET))}"
                         for k in keys)
    if entry["action"] == "create":
        return _short(after)
    return f"{_short(before)} -> {_short(after)}"


def _short(value: Any) -> str:
    if value is UNSET:
        return "(unset)"
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
