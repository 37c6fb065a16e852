"""The `brewslm` command: a thin face over the service layer (no stage logic lives here).

    brewslm --help
    brewslm project create tickets --base-model builtin:tiny
    brewslm events -p tickets --severity warning

Every command takes --json and then prints exactly one JSON object on stdout. Exit codes:
0 success, 1 failure, 2 bad usage or input refused before any work, 3 blocked by a gate.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from brewslm import (
    artifacts,
    cli_data,
    cli_deploy,
    cli_eval,
    cli_export,
    cli_jobs,
    cli_observe,
    cli_projectfile,
    cli_run,
    cli_train,
    console,
    progress,
    project,
    rows,
)
from brewslm.cli_common import JsonOpt, ProjectOpt, finish_stage, guarded
from brewslm.events import query, taxonomy, timeline
from brewslm.stages.runner import recover_interrupted

app = typer.Typer(help="BrewSLM: fine-tune small language models through eleven audited stages.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
project_app = typer.Typer(help="Create, list, show and delete projects.", no_args_is_help=True)
rows_app = typer.Typer(help="The row ledger: per-stage accounting and one row's story.",
                       no_args_is_help=True)
model_app = typer.Typer(help="Base models: builtin:tiny, a local folder, or a hub id.",
                        no_args_is_help=True)
app.add_typer(project_app, name="project")
app.add_typer(rows_app, name="rows")
app.add_typer(model_app, name="model")



@app.callback()
def _startup() -> None:
    """Before any command: mark runs left `running` by a dead process as interrupted."""
    try:
        recover_interrupted()
    except Exception as exc:  # noqa: BLE001 — recovery must never stop a command
        console.err.print(f"[yellow]warning[/]: could not check for interrupted runs: {exc}")


# --- projects ---------------------------------------------------------------------------------
@project_app.command("create")
@guarded
def project_create(name: str,
                   base_model: Annotated[str | None, typer.Option(
                       help="builtin:tiny, a local HF folder, or owner/name")] = None,
                   description: Annotated[str | None, typer.Option()] = None,
                   json_out: JsonOpt = False) -> None:
    """Create a project."""
    info = project.create(name, base_model=base_model, description=description)
    if json_out:
        console.print_json({"project": info.to_dict()})
    else:
        console.out.print(f"created project [bold]{info.name}[/] ({info.dir})")


@project_app.command("list")
@guarded
def project_list(json_out: JsonOpt = False) -> None:
    """List projects."""
    infos = project.list_all()
    if json_out:
        console.print_json({"projects": [i.to_dict() for i in infos]})
        return
    console.out.print(console.table("projects", ["name", "base model", "created", "description"],
                                    [(i.name, i.base_model, i.created_at, i.description)
                                     for i in infos]))


@project_app.command("show")
@guarded
def project_show(name: str, json_out: JsonOpt = False) -> None:
    """Show a project, its counts and each stage's last run."""
    data = project.summary(project.get(name))
    if json_out:
        console.print_json({"project": data})
        return
    console.out.print(f"[bold]{data['name']}[/]  base model: {data['base_model'] or '-'}\n"
                      f"{data['description'] or ''}\nfolder: {data['dir']}\n"
                      f"runs {data['counts']['runs']}  events {data['counts']['events']}  "
                      f"artifacts {data['counts']['artifacts']}")
    console.out.print(console.table("last run per stage", ["stage", "status", "run", "started"],
                                    [(k, v["status"], v["run_id"], v["started_at"])
                                     for k, v in data["stages"].items()]))


@project_app.command("set")
@guarded
def project_set(name: str, key: str,
                value: Annotated[str, typer.Argument(help="JSON (e.g. '[\"my_mappers\"]'), "
                                                     "or plain text")],
                json_out: JsonOpt = False) -> None:
    """Change a project setting (see `project show` for the current ones)."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    info = project.set_setting(name, key, parsed)
    if json_out:
        console.print_json({"project": info.to_dict()})
    else:
        console.out.print(f"{name}: {key} = {json.dumps(parsed)}")


@project_app.command("delete")
@guarded
def project_delete(name: str,
                   yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
                   json_out: JsonOpt = False) -> None:
    """Delete a project with its runs, artifacts, ledger and events."""
    project.get(name)
    if not yes and not typer.confirm(f"Delete project {name!r} and everything under it?"):
        raise typer.Exit(1)
    info = project.delete_project(name)
    if json_out:
        console.print_json({"deleted": info.to_dict()})
    else:
        console.out.print(f"deleted project [bold]{name}[/]")


# --- the event stream, runs, artifacts ---------------------------------------------------------
@app.command("events")
@guarded
def events_cmd(project_name: ProjectOpt,
               stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
               severity: Annotated[str | None, typer.Option(help="At least this severe: info, "
                                                            "warning, error, critical.")] = None,
               run: Annotated[str | None, typer.Option(help="This run and its children.")] = None,
               since: Annotated[str | None, typer.Option(help="ISO 8601 time.")] = None,
               until: Annotated[str | None, typer.Option(help="ISO 8601 time.")] = None,
               code: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
               json_out: JsonOpt = False) -> None:
    """The timeline: events as a tree by parent run, coloured by severity."""
    info = project.get(project_name)
    flt = query.make_filter(stage=stage, severity=severity, run_id=run, since=since,
                            until=until, code=code)
    data = timeline.build(info, flt)
    if json_out:
        console.print_json(data)
    else:
        console.out.print(timeline.render(data))


@app.command("runs")
@guarded
def runs_cmd(project_name: ProjectOpt,
             run_id: Annotated[str | None, typer.Argument(help="Show this run whole.")] = None,
             stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
             json_out: JsonOpt = False) -> None:
    """Stage runs of a project (or one run, whole)."""
    info = project.get(project_name)
    if run_id:
        run = query.get_run(info, run_id)
        console.print_json({"run": run}) if json_out else console.out.print_json(data=run)
        return
    data = query.runs(info, stage)
    if json_out:
        console.print_json({"runs": data})
        return
    console.out.print(console.table(f"runs of {info.name}",
                                    ["run", "stage", "status", "started", "seconds", "error"],
                                    [(r["run_id"], r["stage"], r["status"], r["started_at"],
                                      r["duration_s"], r["error_code"]) for r in data]))


@app.command("artifacts")
@guarded
def artifacts_cmd(project_name: ProjectOpt,
                  verify: Annotated[bool, typer.Option(help="Recompute every sha256.")] = False,
                  json_out: JsonOpt = False) -> None:
    """Artifacts of a project: content-addressed, with kind, size and the run that made them."""
    info = project.get(project_name)
    arts = artifacts.list_artifacts(info)
    if verify:
        for art in arts:
            artifacts.verify(art)
    if json_out:
        console.print_json({"artifacts": [a.to_dict() for a in arts], "verified": verify})
        return
    console.out.print(console.table(f"artifacts of {info.name}",
                                    ["id", "kind", "size", "files", "run"],
                                    [(a.id[:16], a.kind, console.human_bytes(a.size_bytes),
                                      a.file_count, a.run_id) for a in arts]))


@app.command("codes")
@guarded
def codes_cmd(stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
              json_out: JsonOpt = False) -> None:
    """The reason-code taxonomy: every code with its stage, severity, meaning and hint."""
    codes = [c for c in taxonomy.codes().values() if not stage or c.stage == stage]
    if json_out:
        console.print_json({"codes": [c.to_dict() for c in codes]})
        return
    console.out.print(console.table("reason codes", ["code", "stage", "severity", "meaning"],
                                    [(c.code, c.stage, c.severity, c.meaning) for c in codes]))


# --- the row ledger ----------------------------------------------------------------------------
@rows_app.callback()
def _rows(ctx: typer.Context, project_name: ProjectOpt) -> None:
    ctx.obj = project_name


@rows_app.command("stats")
@guarded
def rows_stats(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Per stage run: rows in, out, dropped by reason; flags any run where in != out + dropped."""
    data = rows.stats(project.get(ctx.obj))
    if json_out:
        console.print_json(data)
    else:
        console.out.print(console.table(
            f"ledger of {data['project']}", ["stage", "run", "in", "out", "dropped", "by reason",
                                             "check"],
            [(s["stage"], s["run_id"], s["in"], s["out"], s["dropped"],
              "\n".join(f"{code}={n}" for code, n in s["by_reason"].items()),
              "[red]in != out + dropped[/]" if s["flagged"] else "[green]ok[/]")
             for s in data["stages"]]))
    if data["flagged"]:
        raise typer.Exit(1)


@rows_app.command("trace")
@guarded
def rows_trace(ctx: typer.Context, row_id: str, json_out: JsonOpt = False) -> None:
    """A row's whole story, stage by stage, with the reason of every drop."""
    data = rows.trace(project.get(ctx.obj), row_id)
    if json_out:
        console.print_json(data)
        return
    console.out.print(f"row [bold]{row_id}[/]: {data['final']}")
    for step in data["steps"]:
        who = f"child {step['row_id']} " if step.get("child_of") else ""
        where = " ".join(str(step[k]) for k in ("source", "position") if step.get(k))
        console.out.print(f"  [bold]{step['stage']}[/] {step['run_id']}: {who}{step['outcome']}"
                          f" {step.get('reason_code', '')}  [dim]{where}[/]")
        if step.get("detail"):
            console.out.print(f"      detail: {step['detail']}")
        if step.get("meaning"):
            console.out.print(f"      [dim]{step['meaning']} Hint: {step['hint']}[/]")


# --- base models ---------------------------------------------------------------------------
@model_app.command("show")
@guarded
def model_show(ref: str, json_out: JsonOpt = False) -> None:
    """Resolve a base model reference (building builtin:tiny if needed) and describe it."""
    from brewslm.basemodels.reference import resolve_base_model

    data = resolve_base_model(ref).describe()
    if json_out:
        console.print_json({"model": data})
    else:
        console.out.print(console.table(f"base model {ref}", ["key", "value"],
                                        [(k, v) for k, v in data.items()]))


# --- diagnostics, server, demo -------------------------------------------------------------------
@app.command("selftest")
@guarded
def selftest(project_name: ProjectOpt,
             n_rows: Annotated[int, typer.Option("--rows", help="Rows to generate.")] = 10_000,
             reject_every: Annotated[int, typer.Option(help="Drop one row in N.")] = 7,
             change_every: Annotated[int, typer.Option(help="Change one row in N.")] = 5,
             json_out: JsonOpt = False) -> None:
    """Drive the spine (runner, ledger, artifacts, events) with the synthetic row stage."""
    from brewslm.stages.runner import run_stage
    from brewslm.stages.synthetic import SyntheticStage

    with progress.rich_bars(enabled=not json_out):
        result = run_stage(SyntheticStage(), project.get(project_name),
                           params={"rows": n_rows, "reject_every": reject_every,
                                   "change_every": change_every})
    finish_stage(result, json_out)


@app.command("server")
@guarded
def server(host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
           port: Annotated[int, typer.Option(help="Port.")] = 8321,
           worker: Annotated[bool, typer.Option(
               "--worker/--no-worker", help="Run queued jobs in this process (the embedded "
               "worker; off when BREWSLM_QUEUE_URL names a broker).")] = True) -> None:
    """Serve the REST API (OpenAPI at /docs) and run its jobs. Beyond loopback it requires
    BREWSLM_API_TOKEN."""
    from brewslm.api.app import serve

    serve(host, port, worker=worker)


@app.command("demo")
@guarded
def demo(train_set: Annotated[list[str] | None, typer.Option(
             "--set", help="Override a key of the demo's training recipe (lora), e.g. "
             "--set max_steps=10 for a quick look.")] = None,
         sample: Annotated[str, typer.Option(
             help="support: 2,468 tickets with planted defects; small: 400 lines.")
         ] = "support",
         json_out: JsonOpt = False) -> None:
    """The whole lifecycle on bundled data with builtin:tiny: ingest to a served model."""
    from brewslm.demo import run_demo

    summary = run_demo(quiet=json_out, train_overrides=train_set or [], sample=sample)
    if json_out:
        console.print_json(summary)


cli_data.register(app)
cli_train.register(app)
cli_eval.register(app)
cli_observe.register(app)
cli_export.register(app)
cli_deploy.register(app)
cli_jobs.register(app)
cli_run.register(app)
cli_projectfile.register(app)


def main() -> None:
    app()
