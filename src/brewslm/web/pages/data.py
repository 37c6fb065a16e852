"""The data pages: stages 01-06 as a person reviews them.

    /projects/{name}/data       snapshot (ingest), introspection, the editable field map with
                                dry-run preview and commit (map)
    /projects/{name}/clean      the data-health report of the latest clean run
    /projects/{name}/manifest   the prepare run's manifest and its token-length histogram

Everything shown is read back from stage runs, their ledger files and their artifacts; the
buttons start the stages as jobs through the REST API (static/data.js).
"""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from brewslm import artifacts, ledger, project
from brewslm.events import query, taxonomy
from brewslm.mappers import BUILTIN_MAPPERS
from brewslm.project import ProjectInfo
from brewslm.stages.clean import PII_POLICIES
from brewslm.stages.prepare import token_lengths
from brewslm.web.ui import figure_json, render, require_login

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_login)])

DONE = ("succeeded", "reused")
RAW_HISTOGRAM_LIMIT = 50_000  # above this many rows the histogram is binned on the server


@router.get("/projects/{name}/data", response_class=HTMLResponse)
def data_page(request: Request, name: str) -> HTMLResponse:
    info = project.get(name)
    history = RunHistory(info)
    snapshot = snapshot_view(history)
    introspection = introspection_view(history)
    dry_run = dry_run_view(history)
    return render(request, "data.html", project=project.summary(info), snapshot=snapshot,
                  introspection=introspection, dry_run=dry_run, commit=commit_view(history),
                  mapping=mapping_form(history, introspection),
                  failures=history.failures("ingest", "introspect", "map_dry_run", "map"))


@router.get("/projects/{name}/clean", response_class=HTMLResponse)
def clean_page(request: Request, name: str) -> HTMLResponse:
    info = project.get(name)
    history = RunHistory(info)
    return render(request, "clean.html", project=project.summary(info),
                  report=clean_view(history), has_dataset=history.done("map") is not None,
                  pii_policies=PII_POLICIES, failures=history.failures("clean"))


@router.get("/projects/{name}/manifest", response_class=HTMLResponse)
def manifest_page(request: Request, name: str) -> HTMLResponse:
    info = project.get(name)
    history = RunHistory(info)
    return render(request, "manifest.html", project=project.summary(info),
                  manifest=manifest_view(history), has_dataset=history.done("map") is not None,
                  failures=history.failures("prepare"))


# --- stage runs ---------------------------------------------------------------------------------

class RunHistory:
    """A project's stage runs, oldest first, with what the pages ask of them."""

    def __init__(self, info: ProjectInfo) -> None:
        self.info = info
        self.runs = query.runs(info)
        self.by_id = {run["run_id"]: run for run in self.runs}

    def latest(self, stage: str) -> dict[str, Any] | None:
        """The stage's most recent run, whatever its status."""
        return next((r for r in reversed(self.runs) if r["stage"] == stage), None)

    def done(self, stage: str) -> dict[str, Any] | None:
        """The stage's most recent succeeded or reused run."""
        return next((r for r in reversed(self.runs)
                     if r["stage"] == stage and r["status"] in DONE), None)

    def origin(self, run: dict[str, Any]) -> dict[str, Any]:
        """The run that did the work: a reused run points at it (and has no ledger itself)."""
        while run.get("reused_from") and run["reused_from"] in self.by_id:
            run = self.by_id[run["reused_from"]]
        return run

    def ledger_file(self, run: dict[str, Any]):
        origin = self.origin(run)
        path = ledger.ledger_path(self.info.dir, origin["stage"], origin["run_id"])
        return path if path.exists() else None

    def failures(self, *stages: str) -> list[dict[str, Any]]:
        """The latest run of each stage when it failed or was blocked (shown as a banner)."""
        latest = [self.latest(stage) for stage in stages]
        return [r for r in latest if r and r["status"] in ("failed", "blocked")]


def row_counts(history: RunHistory, run: dict[str, Any]) -> dict[str, Any]:
    """in / out / rejected and rejections by reason, from the run's ledger record (or, for a
    dry-run that writes no ledger, from its result)."""
    recorded = history.origin(run)["ledger"]
    if recorded:
        counts = {"in": recorded["in"], "out": recorded["out"], "rejected": recorded["dropped"]}
        return {"counts": counts, "reasons": reason_rows(recorded["by_reason"]),
                "notes": reason_rows(recorded.get("notes") or {})}
    result = run["result"] or {}
    return {"counts": result.get("counts"),
            "reasons": reason_rows(result.get("rejections_by_reason") or {}), "notes": []}


def reason_rows(by_reason: dict[str, int]) -> list[dict[str, Any]]:
    """Reason codes with their count and the taxonomy's meaning and hint, largest first."""
    rows = []
    for code, count in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        known = taxonomy.lookup(code) if taxonomy.is_known(code) else None
        rows.append({"code": code, "count": count, "meaning": known.meaning if known else "",
                     "hint": known.hint if known else ""})
    return rows


def ledger_examples(history: RunHistory, run: dict[str, Any]) -> list[dict[str, Any]]:
    """One dropped row of each reason, as the ledger recorded it (row id, source, position)."""
    path = history.ledger_file(run)
    if path is None:
        return []
    found = ledger.examples_by_reason(path)
    return [{**entries[0], "detail": _maybe_json(entries[0]["detail"])}
            for entries in found.values()]


def _maybe_json(text: str | None) -> Any:
    if text and text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


# --- /data --------------------------------------------------------------------------------------

def snapshot_view(history: RunHistory) -> dict[str, Any] | None:
    run = history.done("ingest")
    if run is None:
        return None
    result = run["result"] or {}
    return {"run": run, "snapshot_id": result.get("snapshot_id") or run["outputs"].get("snapshot"),
            "source": result.get("source"), "files": result.get("files"),
            **row_counts(history, run), "examples": ledger_examples(history, run)}


def introspection_view(history: RunHistory) -> dict[str, Any] | None:
    run = history.done("introspect")
    if run is None:
        return None
    result = run["result"] or {}
    hypotheses = result.get("hypotheses") or []
    return {"run": run, "proposal": result.get("proposal"), "hypotheses": hypotheses,
            "fields": result.get("fields") or [], "sampled": result.get("sampled"),
            "snapshot_id": result.get("snapshot_id"),
            "chart": figure_json(confidence_figure(hypotheses)) if hypotheses else None}


def confidence_figure(hypotheses: list[dict[str, Any]]) -> go.Figure:
    """One bar per mapping hypothesis: its confidence, against the auto-pick threshold."""
    names = [h["mapper"] for h in hypotheses]
    fig = go.Figure(go.Bar(x=names, y=[h["confidence"] for h in hypotheses],
                           text=[f"{h['confidence']:.3f}" for h in hypotheses],
                           textposition="auto", marker_color="#2e5bd8",
                           hovertext=[h["rationale"] for h in hypotheses]))
    fig.add_hline(y=0.8, line_dash="dash", line_color="#b54708",
                  annotation_text="auto-pick 0.8")
    fig.update_layout(yaxis={"range": [0, 1.05], "title": "confidence"},
                      xaxis={"title": "mapper"}, height=320,
                      margin={"l": 50, "r": 20, "t": 20, "b": 50})
    return fig


def mapping_form(history: RunHistory, introspection: dict[str, Any] | None
                 ) -> dict[str, Any] | None:
    """Every mapper with its slots prefilled: the selected mapper from the latest preview of
    the current introspection (so an edited map survives the page reload), else from the
    proposal; the others from their hypotheses."""
    if introspection is None:
        return None
    maps = {h["mapper"]: h["field_map"] for h in reversed(introspection["hypotheses"])}
    proposal = introspection["proposal"] or {}
    selected = proposal.get("mapper") or next(iter(BUILTIN_MAPPERS))
    edited = _previewed_mapping(history, introspection["run"])
    if edited:
        selected = edited["mapper"]
        maps[selected] = edited["field_map"]
    mappers = [{"id": m.id, "description": m.description,
                "slots": [{"name": slot, "required": slot in m.required,
                           "value": maps.get(m.id, {}).get(slot, "")} for slot in m.slots]}
               for m in BUILTIN_MAPPERS.values()]
    return {"selected": selected, "mappers": mappers, "proposal": proposal,
            "source_fields": [f["name"] for f in introspection["fields"]]}


def _previewed_mapping(history: RunHistory, introspect_run: dict[str, Any]
                       ) -> dict[str, Any] | None:
    preview = history.done("map_dry_run")
    if preview is None or preview["started_at"] < introspect_run["started_at"]:
        return None
    return (preview["result"] or {}).get("mapping")


def dry_run_view(history: RunHistory) -> dict[str, Any] | None:
    run = history.done("map_dry_run")
    if run is None:
        return None
    result = run["result"] or {}
    examples = [{"reason_code": code, **example}
                for code, example in sorted((result.get("examples") or {}).items())]
    return {"run": run, "mapping": result.get("mapping"), "preview": result.get("preview") or [],
            "examples": examples, "snapshot_id": run["inputs"].get("snapshot"),
            **row_counts(history, run)}


def commit_view(history: RunHistory) -> dict[str, Any] | None:
    run = history.done("map")
    if run is None:
        return None
    result = run["result"] or {}
    return {"run": run, "mapping": result.get("mapping"), "dataset_id": result.get("dataset_id"),
            "mapping_id": result.get("mapping_id"), **row_counts(history, run),
            "examples": ledger_examples(history, run)}


# --- /clean -------------------------------------------------------------------------------------

def clean_view(history: RunHistory) -> dict[str, Any] | None:
    run = history.done("clean")
    if run is None:
        return None
    result = run["result"] or {}
    health = _health_report(history, run) or result.get("health") or {}
    view = {"run": run, "health": health, "pii_policy": result.get("pii_policy"),
            "dataset_id": result.get("dataset_id"), "rows_written": result.get("rows_written"),
            "report_id": run["outputs"].get("health_report"),
            **row_counts(history, run), "examples": ledger_examples(history, run)}
    view["chart"] = figure_json(drops_figure(view["reasons"])) if view["reasons"] else None
    return view


def _health_report(history: RunHistory, run: dict[str, Any]) -> dict[str, Any] | None:
    """The health_report artifact the run published (health.json)."""
    report_id = run["outputs"].get("health_report")
    if not report_id:
        return None
    path = artifacts.get(history.info, report_id).path / "health.json"
    return json.loads(path.read_text()) if path.exists() else None


def drops_figure(reasons: list[dict[str, Any]]) -> go.Figure:
    """Rows dropped by clean, one bar per reason code."""
    fig = go.Figure(go.Bar(x=[r["code"] for r in reasons], y=[r["count"] for r in reasons],
                           text=[r["count"] for r in reasons], textposition="auto",
                           marker_color="#b42318", hovertext=[r["meaning"] for r in reasons]))
    fig.update_layout(yaxis={"title": "rows dropped"}, xaxis={"title": "reason code"},
                      height=320, margin={"l": 50, "r": 20, "t": 20, "b": 50})
    return fig


# --- /manifest ----------------------------------------------------------------------------------

def manifest_view(history: RunHistory) -> dict[str, Any] | None:
    run = history.done("prepare")
    if run is None:
        return None
    result = run["result"] or {}
    art = artifacts.get(history.info, result.get("manifest_id") or run["outputs"]["manifest"])
    manifest = json.loads((art.path / "manifest.json").read_text())
    ledger_path = history.ledger_file(run)
    lengths = token_lengths(art.path)
    return {"run": run, "manifest_hash": result.get("manifest_hash"), "manifest_id": art.id,
            "manifest": manifest, "policies": manifest.get("policies") or {},
            "splits": {s: manifest["splits"][s]["rows"] for s in lengths},
            "tokens": {s: manifest["splits"][s]["tokens"] for s in lengths},
            "truncation": ledger.truncation(ledger_path) if ledger_path else None,
            **row_counts(history, run),
            "chart": figure_json(token_histogram(lengths)) if any(lengths.values()) else None}


def token_histogram(lengths: dict[str, list[int]]) -> go.Figure:
    """Tokens per row, one overlaid histogram per split; binned here when rows are many."""
    fig = go.Figure()
    if sum(len(v) for v in lengths.values()) <= RAW_HISTOGRAM_LIMIT:
        for split, values in lengths.items():
            fig.add_trace(go.Histogram(x=values, name=f"{split} ({len(values)} rows)",
                                       opacity=0.7, nbinsx=40))
    else:
        _add_binned(fig, lengths)
    fig.update_layout(barmode="overlay", xaxis={"title": "tokens per row"},
                      yaxis={"title": "rows"}, height=340,
                      margin={"l": 50, "r": 20, "t": 20, "b": 50})
    return fig


def _add_binned(fig: go.Figure, lengths: dict[str, list[int]]) -> None:
    from brewslm.prepare import histogram

    hist = histogram(lengths, bins=40)
    edges = hist["edges"]
    centers = [(lo + hi) / 2 for lo, hi in zip(edges, edges[1:], strict=False)]
    for split, counts in hist["counts"].items():
        fig.add_trace(go.Bar(x=centers, y=counts, width=edges[1] - edges[0], opacity=0.7,
                             name=f"{split} ({hist['totals'][split]} rows)"))
