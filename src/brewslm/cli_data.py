"""CLI commands for the data stages (01-04) and dataset versions; registered by cli.py.

    brewslm ingest -p NAME SOURCE [--format F] [--blocks]
    brewslm introspect -p NAME
    brewslm map -p NAME --dry-run        then        brewslm map -p NAME
    brewslm dataset -p NAME show [--version V] [--limit N]
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from brewslm import console, project
from brewslm.cli_common import DetachOpt, JsonOpt, ProjectOpt, finish_stage, guarded, stage_call
from brewslm.stages import data
from brewslm.stages.runner import StageResult

SnapshotOpt = Annotated[str | None, typer.Option("--snapshot", help="Snapshot id (default: "
                                                 "the latest).")]

DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="Dataset version id "
                                                "(default: the latest).")]

dataset_app = typer.Typer(help="Dataset versions written by map.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the data commands to the main app."""

    @app.command("ingest")
    @guarded
    def ingest_cmd(project_name: ProjectOpt,
                   source: Annotated[str, typer.Argument(help="A file or folder, an http(s) URL, "
                                                         "hf:ID[:split[:revision]] or "
                                                         "kaggle:dataset:OWNER/SLUG")],
                   fmt: Annotated[str | None, typer.Option("--format", help="jsonl, json, csv, "
                                                           "tsv, parquet, text, markdown")] = None,
                   blocks: Annotated[bool, typer.Option("--blocks", help="Text: one record per "
                                                        "blank-line-separated block.")] = False,
                   json_out: JsonOpt = False, detach: DetachOpt = False) -> None:
        """01 ingest: read a source into an immutable, content-addressed snapshot."""
        result = stage_call("ingest", project_name, {"source": source, "fmt": fmt,
                                                     "text_blocks": blocks},
                            json_out=json_out, detach=detach)
        if not json_out and result.status in ("succeeded", "reused"):
            console.out.print(f"snapshot [bold]{result.result['snapshot_id'][:16]}[/]")
        finish_stage(result, json_out)

    @app.command("introspect")
    @guarded
    def introspect_cmd(project_name: ProjectOpt, snapshot: SnapshotOpt = None,
                       json_out: JsonOpt = False, detach: DetachOpt = False) -> None:
        """02 introspect: profile fields and rank mapping hypotheses with a confidence."""
        result = stage_call("introspect", project_name, {"snapshot": snapshot},
                            json_out=json_out, detach=detach)
        if not json_out and result.status in ("succeeded", "reused"):
            _print_introspection(result.result)
        finish_stage(result, json_out)

    @app.command("map")
    @guarded
    def map_cmd(project_name: ProjectOpt,
                dry_run: Annotated[bool, typer.Option("--dry-run", help="Preview and count; "
                                                      "write nothing.")] = False,
                mapper: Annotated[str | None, typer.Option(help="Mapper id (overrides the "
                                                           "proposal).")] = None,
                field_map: Annotated[str | None, typer.Option(help='JSON: {"slot": "field"}')]
                = None,
                mapping: Annotated[str | None, typer.Option(help="Re-run a saved mapping by "
                                                            "id.")] = None,
                force: Annotated[bool, typer.Option(help="Accept a proposal below confidence "
                                                    "0.8.")] = False,
                plugin: Annotated[list[str] | None, typer.Option(help="Module with extra "
                                                                 "mappers (repeatable).")] = None,
                snapshot: SnapshotOpt = None, json_out: JsonOpt = False,
                detach: DetachOpt = False) -> None:
        """03/04 map: --dry-run previews and counts; without it, commits a dataset version."""
        result = stage_call("map", project_name, {
            "dry_run": dry_run, "mapper": mapper, "field_map": field_map, "mapping": mapping,
            "force": force, "plugins": plugin, "snapshot": snapshot},
            json_out=json_out, detach=detach)
        if not json_out and result.status in ("succeeded", "reused"):
            _print_mapping(result)
        finish_stage(result, json_out)

    @app.command("clean")
    @guarded
    def clean_cmd(project_name: ProjectOpt,
                  pii: Annotated[str | None, typer.Option(help="redact (default), block or "
                                                          "warn")] = None,
                  force: Annotated[bool, typer.Option(help="Go on although a health signal "
                                                      "blocks (recorded).")] = False,
                  dataset: DatasetOpt = None, json_out: JsonOpt = False,
                  detach: DetachOpt = False) -> None:
        """05 clean: quality filters, PII, dedup, chunking, and a data-health report."""
        result = stage_call("clean", project_name, {"pii": pii, "force": force,
                                                    "dataset": dataset},
                            json_out=json_out, detach=detach)
        if not json_out and (result.result.get("health") or (result.error or {}).get(
                "details", {}).get("health")):
            _print_health(result.result.get("health") or result.error["details"]["health"])
        finish_stage(result, json_out)

    @app.command("prepare")
    @guarded
    def prepare_cmd(project_name: ProjectOpt,
                    eval_fraction: Annotated[float | None, typer.Option(
                        help="Share of rows for eval (default 0.1).")] = None,
                    seed: Annotated[int | None, typer.Option(help="Split seed.")] = None,
                    max_tokens: Annotated[int | None, typer.Option(
                        help="Longest row in tokens (default 512).")] = None,
                    truncation: Annotated[str | None, typer.Option(
                        help="drop (default) or truncate over-long rows")] = None,
                    stratify_by: Annotated[str | None, typer.Option(
                        help="meta field to stratify the split by, e.g. label")] = None,
                    dataset: DatasetOpt = None, json_out: JsonOpt = False,
                    detach: DetachOpt = False) -> None:
        """06 prepare: template, tokenize, mask the loss, split, and write the manifest."""
        result = stage_call("prepare", project_name, {
            "eval_fraction": eval_fraction, "seed": seed, "max_tokens": max_tokens,
            "truncation": truncation, "stratify_by": stratify_by, "dataset": dataset},
            json_out=json_out, detach=detach)
        if not json_out and result.status in ("succeeded", "reused"):
            _print_manifest(result.result)
        finish_stage(result, json_out)

    app.add_typer(dataset_app, name="dataset")


@dataset_app.callback()
def _dataset(ctx: typer.Context, project_name: ProjectOpt) -> None:
    ctx.obj = project_name


@dataset_app.command("list")
@guarded
def dataset_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Dataset versions, oldest first."""
    versions = data.dataset_versions(project.get(ctx.obj))
    if json_out:
        console.print_json({"versions": versions})
        return
    console.out.print(console.table("dataset versions", ["version", "id", "mapper", "rows"],
                                    [(v["version"], v["dataset_id"][:16], v.get("mapper"),
                                      v.get("rows")) for v in versions]))


@dataset_app.command("show")
@guarded
def dataset_show(ctx: typer.Context,
                 version: Annotated[str | None, typer.Option(help="Version number or id "
                                                             "(default: the latest).")] = None,
                 limit: Annotated[int, typer.Option(help="Rows to show.")] = 20,
                 json_out: JsonOpt = False) -> None:
    """Rows of a dataset version with their row ids."""
    shown = data.dataset_rows(project.get(ctx.obj), version=version, limit=limit)
    if json_out:
        console.print_json(shown)
        return
    v = shown["version"]
    console.out.print(f"dataset version {v['version']} ({v['dataset_id'][:16]}), mapper "
                      f"{v.get('mapper')}, {shown['total']} rows; showing {shown['shown']}")
    for row in shown["rows"]:
        console.out.print(f"[bold]{row['row_id']}[/] [dim]{row['task']}[/] {_summary(row)}")


def _summary(row: dict[str, Any]) -> str:
    if row.get("text") is not None:
        return _cut(row["text"])
    turns = [f"{m['role']}: {_cut(m.get('content') or '', 60)}" for m in row.get("messages", [])]
    if row.get("chosen"):
        turns.append(f"chosen: {_cut(str(row['chosen'][-1].get('content')), 40)}")
    return " | ".join(turns)


def _cut(text: str, n: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _print_introspection(res: dict[str, Any]) -> None:
    console.out.print(console.table(f"fields ({res['sampled']} records sampled)",
                                    ["field", "kind", "present", "distinct", "example"],
                                    [(f["name"], f["kind"], f"{f['present']:.0%}",
                                      f["distinct"], _cut(json.dumps(f["examples"][:1]), 50))
                                     for f in res["fields"]]))
    console.out.print(console.table("hypotheses", ["mapper", "confidence", "field map",
                                                   "rationale"],
                                    [(h["mapper"], f"{h['confidence']:.2f}",
                                      json.dumps(h["field_map"]), h["rationale"])
                                     for h in res["hypotheses"]]))
    prop = res["proposal"]
    if prop is None:
        console.out.print("[yellow]no shape fits: pass --mapper and --field-map to map[/]")
    elif prop["auto_pick"]:
        console.out.print(f"proposal: [bold]{prop['mapper']}[/] {json.dumps(prop['field_map'])}"
                          f" (confidence {prop['confidence']:.2f}); next: brewslm map --dry-run")
    else:
        console.out.print(f"[yellow]best is {prop['mapper']} at {prop['confidence']:.2f} < 0.8:"
                          " not auto-picked; pass --mapper/--field-map or --force[/]")


def _print_health(health: dict[str, Any]) -> None:
    colours = {"ok": "green", "warn": "yellow", "block": "red"}
    console.out.print(console.table(
        f"data health: {health['verdict']}", ["signal", "value", "warn at", "block at", "status"],
        [(name, f"{s['value']:.1%}", f"{s['warn']:.0%}",
          "policy" if s["block"] is None else f"{s['block']:.0%}",
          f"[{colours[s['status']]}]{s['status']}[/]") for name, s in health["signals"].items()]))


def _print_manifest(res: dict[str, Any]) -> None:
    console.out.print(f"manifest [bold]{res['manifest_hash'][:16]}[/]  train "
                      f"{res['splits']['train']}  eval {res['splits']['eval']}")
    for split, stats in res["token_lengths"].items():
        console.out.print(f"  {split:<5} tokens p50 {stats.get('p50')}  p95 {stats.get('p95')}"
                          f"  max {stats.get('max')}")
    console.out.print(res["histogram"])
    console.out.print(f"histogram: {res['histogram_files'][1]}")


def _print_mapping(result: StageResult) -> None:
    res = result.to_dict()
    m = res.get("mapping", {})
    console.out.print(f"mapping: [bold]{m.get('mapper')}[/] {json.dumps(m.get('field_map'))} "
                      f"({m.get('chosen_by')})")
    for item in res.get("preview", []):
        console.out.print(f"[dim]{item['row_id']} {item['source']}:{item['position']}[/]\n"
                          f"  before: {_cut(json.dumps(item['before'], ensure_ascii=False))}\n"
                          f"  after:  {_summary(item['after'])}")
    for code, ex in res.get("examples", {}).items():
        console.out.print(f"[yellow]{code}[/] × {res['rejections_by_reason'][code]}: e.g. "
                          f"{ex['source']}:{ex['position']} {ex['row_id']} — {ex['detail']}")
    if res.get("dataset_id"):
        console.out.print(f"dataset version [bold]{res['dataset_id'][:16]}[/], mapping id "
                          f"{res['mapping_id'][:16]} (re-run with --mapping)")
