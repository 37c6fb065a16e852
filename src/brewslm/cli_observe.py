"""CLI commands for observability over the event stream; registered by cli.py.

    brewslm clusters -p NAME [--stage S] [--since ISO] [--until ISO] [--json]
    brewslm bundle -p NAME -o FILE.zip [--since ISO] [--json]
    brewslm audit -p NAME [--stage S] [--severity L] [--code C] [--run RUN_ID] [--since ISO]
                          [--until ISO] [--row ROW_ID] [--artifact ID|PATH] [--limit N] [--json]
    brewslm audit -p NAME why CANDIDATE [--json]
    brewslm audit -p NAME lineage ARTIFACT|PATH [--json]
    brewslm audit -p NAME row ROW_ID [--json]
    brewslm doctor [--json]          # exit 1 when a check fails; warnings exit 0

The logic lives in brewslm/observe/; these only parse and print.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from brewslm import console, project
from brewslm.cli_common import JsonOpt, ProjectOpt, guarded
from brewslm.events.timeline import COLOURS

StageOpt = Annotated[str | None, typer.Option(help="Only this stage.")]
SinceOpt = Annotated[str | None, typer.Option(help="From this ISO 8601 time on.")]
UntilOpt = Annotated[str | None, typer.Option(help="Up to this ISO 8601 time.")]
STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}
SHOWN = 50  # rows per table in the terminal (--json has everything)
TREE_HIDDEN = {"source", "files", "candidate_id"}  # shown as nodes of the tree already


def register(app: typer.Typer) -> None:
    """Add clusters, bundle, audit (with why, lineage, row) and doctor to the main app."""
    app.command("clusters")(clusters_cmd)
    app.command("bundle")(bundle_cmd)
    app.command("doctor")(doctor_cmd)
    audit_app = typer.Typer(help="Query events, runs, ledger and decisions; ask why, lineage, "
                            "row.", invoke_without_command=True)
    audit_app.callback()(audit_cmd)
    audit_app.command("why")(why_cmd)
    audit_app.command("lineage")(lineage_cmd)
    audit_app.command("row")(row_cmd)
    app.add_typer(audit_app, name="audit")


# --- clusters ---------------------------------------------------------------------------------
@guarded
def clusters_cmd(project_name: ProjectOpt, stage: StageOpt = None, since: SinceOpt = None,
                 until: UntilOpt = None, json_out: JsonOpt = False) -> None:
    """Failure clusters: error events grouped by stage, reason code and normalized message."""
    from brewslm.observe import clusters

    data = clusters.compute(project.get(project_name), stage=stage, since=since, until=until)
    if json_out:
        console.print_json(data)
        return
    console.out.print(_table(
        f"failure clusters of {data['project']} ({data['events']} error events)",
        ["count", "stage", "code (cause)", "signature, last seen, hint"],
        [(c["count"], c["stage"], _code(c),
          Text.assemble(c["signature"], (f"\nlast {c['last_seen']}  id {c['id']}", "dim"),
                        (f"\nhint: {c['hint']}" if c["hint"] else "", "cyan")))
         for c in data["clusters"]], lines=True))


def _table(title: str, columns: list[str], rows: Any, *, lines: bool = False) -> Table:
    """A table whose long words (codes, ids) fold instead of being cut at the edge, and whose
    cells are plain text (a summary's "[code]" is not rich markup)."""
    tbl = Table(title=title, title_justify="left", header_style="bold", show_lines=lines)
    for col in columns:
        tbl.add_column(col, overflow="fold")
    for row in rows:
        tbl.add_row(*[v if isinstance(v, Text) else Text("" if v is None else str(v))
                      for v in row])
    return tbl


def _code(c: dict[str, Any]) -> str:
    return f"{c['reason_code']}\n({c['cause']})" if c["cause"] else c["reason_code"]


# --- bundle -----------------------------------------------------------------------------------
@guarded
def bundle_cmd(project_name: ProjectOpt,
               output: Annotated[str, typer.Option("--output", "-o", help="The .zip to write.")],
               since: SinceOpt = None, json_out: JsonOpt = False) -> None:
    """Support bundle (zip) of config, runs, events, logs, environment; secrets redacted."""
    from brewslm.observe import bundle

    done = bundle.write(project.get(project_name), output, since=since)
    if json_out:
        console.print_json({"path": done["path"], "bytes": done["bytes"],
                            "manifest": done["manifest"]})
        return
    red = done["manifest"]["redactions"]
    size = console.human_bytes(done["bytes"])
    console.out.print(f"wrote [bold]{escape(done['path'])}[/] ({size}, "
                      f"{len(done['manifest']['members'])} members, {red['total']} secrets "
                      "redacted)")
    if red["by_kind"]:
        console.out.print(_table("redacted", ["kind", "count"], red["by_kind"].items()))


# --- doctor -----------------------------------------------------------------------------------
@guarded
def doctor_cmd(json_out: JsonOpt = False) -> None:
    """Check the environment (Python, libraries, devices, disk, database...); exit 1 on a fail."""
    from brewslm.observe import doctor

    report = doctor.run_checks()
    if json_out:
        console.print_json(report)
    else:
        console.out.print(_table(
            f"doctor: {report['status']}", ["check", "status", "code", "detail"],
            [(c["name"], Text(c["status"], STATUS_STYLE[c["status"]]), c["code"], c["detail"])
             for c in report["checks"]]))
    raise typer.Exit(doctor.exit_code(report))


# --- audit ------------------------------------------------------------------------------------
@guarded
def audit_cmd(ctx: typer.Context, project_name: ProjectOpt, stage: StageOpt = None,
              severity: Annotated[str | None, typer.Option(
                  help="At least this severe: info, warning, error, critical.")] = None,
              code: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
              run: Annotated[str | None, typer.Option(help="This run and its children.")] = None,
              since: SinceOpt = None, until: UntilOpt = None,
              row: Annotated[str | None, typer.Option(help="Only what touched this row.")] = None,
              artifact: Annotated[str | None, typer.Option(
                  help="Only what read, wrote or names this artifact (id, prefix or path).")]
              = None,
              limit: Annotated[int, typer.Option(help="Newest events shown.")] = 500,
              json_out: JsonOpt = False) -> None:
    """Events, stage runs, ledger entries and decisions, filtered by any field."""
    ctx.obj = {"project": project_name, "json": json_out}
    if ctx.invoked_subcommand:
        return
    from brewslm.observe import audit

    q = audit.make_query(stage=stage, severity=severity, code=code, run=run, since=since,
                         until=until, row=row, artifact=artifact, limit=limit)
    data = audit.search(project.get(project_name), q)
    if json_out:
        console.print_json(data)
    else:
        _print_search(data)


def _print_search(data: dict[str, Any]) -> None:
    n = data["counts"]
    console.out.print(f"[bold]audit of {data['project']}[/]: {n['events']} events, {n['runs']} "
                      f"runs, {n['ledger']} ledger entries, {n['decisions']} decisions")
    console.out.print(_table("runs", ["run", "stage", "status", "started", "error"], [
        (r["run_id"], r["stage"], r["status"], r["started_at"], r["error_code"])
        for r in data["runs"][-SHOWN:]]))
    console.out.print(_table("events", ["id", "time", "stage", "severity", "code",
                                               "summary"], [
        (e["id"], e["created_at"], e["stage"], Text(e["severity"], COLOURS[e["severity"]]),
         e["reason_code"], e["summary"]) for e in data["events"][-SHOWN:]]))
    if data["ledger"]:
        console.out.print(_table("ledger", ["stage", "run", "what", "rows"], [
            (e["stage"], e["run_id"], e.get("outcome") or e.get("reason_code"),
             e.get("rows", e.get("row_id"))) for e in data["ledger"][:SHOWN]]))
    console.out.print(_table("decisions", ["time", "kind", "stage", "run", "decision",
                                                  "by"], [
        (d["at"], d["kind"], d["stage"], d["run_id"], d["decision"], d["by"])
        for d in data["decisions"][-SHOWN:]]))


def _audit_ctx(ctx: typer.Context, json_out: bool) -> tuple[Any, bool]:
    return project.get(ctx.obj["project"]), json_out or ctx.obj["json"]


@guarded
def why_cmd(ctx: typer.Context,
            candidate: Annotated[str, typer.Argument(help="A model id or prefix, a train run id, "
                                                     "or an eval report / export made from it.")],
            json_out: JsonOpt = False) -> None:
    """Why a model was promoted or refused: gates, evidence, and what was forced by whom."""
    from brewslm.observe import why

    info, as_json = _audit_ctx(ctx, json_out)
    data = why.explain(info, candidate)
    if as_json:
        console.print_json(data)
        return
    style = {"promotable": "bold green", "not promotable": "bold red"}.get(data["verdict"],
                                                                           "yellow")
    console.out.print(Text.assemble(f"model {data['candidate_id'][:16]} (trained by "
                                    f"{data['training_run']}): ", (data["verdict"], style)))
    for line in data["explanation"]:
        console.out.print(Text(line))


@guarded
def lineage_cmd(ctx: typer.Context,
                target: Annotated[str, typer.Argument(help="An artifact id, a unique prefix, or "
                                                  "a file inside an artifact (e.g. a GGUF).")],
                json_out: JsonOpt = False) -> None:
    """Where an artifact came from: producing runs and their inputs, back to the source files."""
    from brewslm.observe import lineage

    info, as_json = _audit_ctx(ctx, json_out)
    data = lineage.trace(info, target)
    if as_json:
        console.print_json(data)
    else:
        console.out.print(render_lineage(data), soft_wrap=False)


def render_lineage(data: dict[str, Any]) -> Tree:
    nodes = {n["id"]: n for n in data["nodes"]}
    inputs: dict[str, list[tuple[str, str]]] = {}
    for e in data["edges"]:
        inputs.setdefault(e["to"], []).append((e["slot"], e["from"]))
    root = Tree(Text(f"lineage of {data['target'][:16]} in {data['project']}", style="bold"))
    seen: set[str] = set()

    def add(branch: Tree, art_id: str, slot: str | None) -> None:
        node = nodes[art_id]
        run = node["run"] or {}
        named = f"{slot}: " if slot and slot != node["kind"] else ""
        label = Text.assemble(named, (f"{node['kind'] or '?'} ", "bold"), art_id[:12],
                              (f" ← {run.get('stage', '?')} {run.get('run_id', '')}", "dim"),
                              overflow="fold")
        if art_id in seen:
            branch.add(label + Text(" (see above)", style="dim"))
            return
        seen.add(art_id)
        child = branch.add(label)
        for key, value in node["facts"].items():
            if key not in TREE_HIDDEN:
                child.add(Text(f"{key}: {str(value)[:60]}", style="dim"))
        for src in node.get("sources", []):
            child.add(Text(f"source: {src['source']}", style="cyan"))
            for f in src["files"]:
                child.add(Text(f"file {f.get('name')}  sha256 {str(f.get('sha256'))[:16]}  "
                               f"{f.get('size_bytes')} bytes", style="cyan"))
        for in_slot, in_id in inputs.get(art_id, []):
            add(child, in_id, in_slot)

    add(root, data["target"], None)
    return root


@guarded
def row_cmd(ctx: typer.Context, row_id: str, json_out: JsonOpt = False) -> None:
    """A row's whole story (as `rows trace`) with how each evaluated model did on it."""
    from brewslm.observe import audit

    info, as_json = _audit_ctx(ctx, json_out)
    data = audit.row_story(info, row_id)
    if as_json:
        console.print_json(data)
        return
    console.out.print(f"row [bold]{escape(row_id)}[/]: {escape(data['final'])}")
    console.out.print(_table("ledger", ["stage", "run", "outcome", "code", "where"], [
        (s["stage"], s["run_id"], s["outcome"], s.get("reason_code"),
         " ".join(str(s[k]) for k in ("source", "position", "split") if s.get(k)))
        for s in data["steps"]]))
    for ev in data["evaluations"]:
        console.out.print(_table(
            f"evaluation {ev['run_id']} of model {str(ev['candidate_id'])[:12]}",
            ["side", "prediction", "scores"],
            [("reference", ev["reference"], "")] + [
                (side, (ev[side] or {}).get("prediction"), _scores((ev[side] or {}).get(
                    "scores"))) for side in ("base", "candidate")]))


def _scores(scores: dict[str, Any] | None) -> str:
    return "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in (scores or {}).items())
