"""Shipping pages: stage 10 exports (each export's format, quantisation, files with their sha256
and download links, and the parity check that proves it reproduces the candidate) and stage 11
deployments (versions with promote / rollback, telemetry per version, drift signals, the
endpoint and a "Try it" chat box against it).

Reads the service layer (artifacts, stage runs, serving.deployments, serving.telemetry); the
buttons call the REST API (static/model.js). Charts are plotly.graph_objects figures.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from plotly.subplots import make_subplots

from brewslm import artifacts, project
from brewslm.api.files import export_files
from brewslm.events import query
from brewslm.project import ProjectInfo
from brewslm.web.pages.model import chart, page_layout, size_text
from brewslm.web.ui import render, require_login

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_login)])

PERCENTILES = (("p50", "#2e5bd8"), ("p95", "#b54708"), ("p99", "#b42318"))


# --- exports ----------------------------------------------------------------------------------


@router.get("/projects/{name}/exports", response_class=HTMLResponse)
def exports_page(request: Request, name: str) -> HTMLResponse:
    from brewslm.stages.export import DEFAULT_QUANT, FORMATS, QUANTS

    info = project.get(name)
    runs = query.runs(info, "export")
    found = [a for a in artifacts.list_artifacts(info) if a.kind == "export"]
    deployed = versions_by_export(info)
    exports = [export_view(info, art, runs, deployed) for art in reversed(found)]
    return render(request, "exports.html", project=info.name, exports=exports,
                  latest=runs[-1] if runs else None, formats=FORMATS, quants=QUANTS,
                  default_quant=DEFAULT_QUANT)


def export_view(info: ProjectInfo, art: artifacts.ArtifactInfo, runs: list[dict[str, Any]],
                deployed: dict[str, list[Any]]) -> dict[str, Any]:
    """One export: what it is, its files, its parity check and where it is deployed."""
    run = export_run(art.id, runs)
    result = (run or {}).get("result") or {}
    parity = result.get("parity") or {}
    files = export_files(info, art)
    return {"id": art.id, "format": art.meta.get("format"), "quant": art.meta.get("quant"),
            "path": str(art.path), "size": size_text(art.size_bytes), "files": files,
            "main": [a for a in result.get("artifacts", [])], "run": run,
            "candidate_id": art.meta.get("candidate_id"), "forced": art.meta.get("forced"),
            "parity_passed": parity.get("passed", art.meta.get("parity_passed")),
            "max_abs_diff": parity.get("max_abs_diff"), "readers": parity.get("readers", []),
            "evaluation_run": result.get("evaluation_run"),
            "versions": deployed.get(art.id, [])}


def export_run(export_id: str, runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest run that produced (or reused) this export and kept its parity result."""
    for run in reversed(runs):
        if (run.get("outputs") or {}).get("export") == export_id \
                and (run.get("result") or {}).get("parity"):
            return run
    return None


def versions_by_export(info: ProjectInfo) -> dict[str, list[Any]]:
    from brewslm.serving import deployments

    out: dict[str, list[Any]] = {}
    for version in deployments.list_versions(info):
        out.setdefault(version.export_id, []).append(version)
    return out


# --- deployments ------------------------------------------------------------------------------


@router.get("/projects/{name}/deployments", response_class=HTMLResponse)
def deployments_page(request: Request, name: str) -> HTMLResponse:
    from brewslm.serving import deployments, telemetry

    info = project.get(name)
    versions = deployments.list_versions(info)
    active = deployments.active(info)
    stats = [telemetry.summary(info, v.version) for v in versions]
    requests = telemetry.requests(info)
    exports = [a for a in artifacts.list_artifacts(info) if a.kind == "export"]
    endpoint = str(request.base_url).rstrip("/") + f"/serve/{info.name}/v1"
    return render(request, "deployments.html", project=info.name,
                  versions=version_rows(info, versions), serving=active, telemetry=stats,
                  telemetry_chart=chart(telemetry_figure(stats, requests)) if requests else None,
                  endpoint=endpoint,
                  endpoint_path=f"/serve/{info.name}/v1", exports=list(reversed(exports)),
                  deploy_runs=query.runs(info, "deploy"))


def version_rows(info: ProjectInfo, versions: list[Any]) -> list[dict[str, Any]]:
    """Each version with when it was last promoted and whether it may be promoted now."""
    from brewslm.serving.deployments import PROMOTABLE_FROM

    promoted_at = promotion_times(info)
    return [{**v.to_dict(), "promoted_at": promoted_at.get(v.version),
             "can_promote": v.status in PROMOTABLE_FROM,
             "drift_signals": (v.drift or {}).get("signals") or {}} for v in versions]


def promotion_times(info: ProjectInfo) -> dict[int, str]:
    """version -> when it was last promoted (the deploy_promoted events; a rollback promotes
    the version it returns to, as deploy_rolled_back)."""
    flt = query.make_filter(stage="deploy")
    out: dict[int, str] = {}
    for event in query.events(info, flt):
        payload = event.get("payload") or {}
        if event["reason_code"] in ("deploy_promoted", "deploy_rolled_back") \
                and isinstance(payload.get("version"), int):
            out[payload["version"]] = event["created_at"]
    return out


def telemetry_figure(stats: list[dict[str, Any]], requests: list[Any]) -> go.Figure:
    """Latency percentiles per version (left) and every request's latency over time (right)."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.1,
                        subplot_titles=["latency by version (ms)", "requests (latency, ms)"])
    served = [s for s in stats if s["requests"]]
    labels = [f"v{s['version']}" for s in served]
    for key, color in PERCENTILES:
        fig.add_trace(go.Bar(x=labels, y=[_ms(s["latency_s"][key]) for s in served], name=key,
                             marker_color=color), row=1, col=1)
    for version in sorted({r.version for r in requests}):
        mine = [r for r in requests if r.version == version]
        fig.add_trace(go.Scatter(
            x=[r.created_at.isoformat() for r in mine], y=[r.latency_s * 1000 for r in mine],
            mode="markers", name=f"v{version} requests",
            marker={"symbol": ["circle" if r.ok else "x" for r in mine], "size": 9},
            text=[f"{r.endpoint} · HTTP {r.http_status} · {r.completion_tokens} tokens"
                  for r in mine], hovertemplate="%{text}<br>%{y:.0f} ms<extra></extra>"),
            row=1, col=2)
    fig.update_layout(**page_layout(height=360, barmode="group"))
    return fig


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
