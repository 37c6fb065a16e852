"""Observability pages, all read from the one event stream and the row ledger:

    /projects/P/timeline        events as a tree by parent run, filters, events over time
    /projects/P/clusters        failure clusters with their counts
    /projects/P/audit           the audit explorer; ?why=CANDIDATE, ?lineage=ARTIFACT answer
                                "why was this model promoted" and "where did it come from"
    /projects/P/rows            ledger accounting per stage run; a form to trace a row
    /projects/P/rows/ROW_ID     one row's whole story, each reason code with its meaning
    /projects/P/bundle          what a support bundle holds, and its download

Every answer comes from brewslm.events / brewslm.observe / brewslm.rows (as the CLI's `events`,
`clusters`, `audit`, `rows` and `bundle`); this module only shapes it for the templates and
builds the plotly figures. A filter the service refuses is shown on the page with its code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import plotly.graph_objects as go
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from brewslm import project, rows
from brewslm.errors import BrewError
from brewslm.events import query, taxonomy, timeline
from brewslm.observe import audit, clusters, lineage, why
from brewslm.stages.catalog import known_event_stages
from brewslm.web.ui import figure_json, render, require_login

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_login)])

T = TypeVar("T")
TIMELINE_LIMIT = 500  # newest events shown on the timeline
AUDIT_LIMIT = 100
EXAMPLE_ROWS = 3  # example row ids per reason code on the rows page
SEVERITY_COLOURS = {"info": "#12b76a", "warning": "#f79009", "error": "#d92d20",
                    "critical": "#7a271a"}
CANDIDATE_STAGES = ("train", "evaluate", "export", "deploy")
BUNDLE_MEMBERS = (
    ("manifest.json", "what is inside: name, bytes and sha256 per member, redactions per kind"),
    ("project.json", "the project's config: base model, description, settings, counts"),
    ("runs.json", "stage runs: parameters, inputs, outputs, results, errors"),
    ("events.jsonl", "the event stream, one event per line"),
    ("clusters.json", "failure clusters (as on the Clusters page)"),
    ("ledger_stats.json", "per-run row accounting (as on the Rows page)"),
    ("artifacts.json", "every artifact with its sha256, kind, size and producing run"),
    ("environment.json", "versions, hardware, devices, database, environment, doctor checks"),
    ("logs/…", "the tail of the project's most recent log files"),
)


# --- shared helpers ---------------------------------------------------------------------------
def attempt(fn: Callable[[], T]) -> tuple[T | None, dict[str, Any] | None]:
    """Call the service; a refusal becomes {code, message, status} for the page to show."""
    from brewslm.api.app import status_for

    try:
        return fn(), None
    except BrewError as exc:
        return None, {"code": exc.code, "message": exc.message, "status": status_for(exc)}


def page_status(*errors: dict[str, Any] | None) -> int:
    return max([e["status"] for e in errors if e] or [200])


def given(params: dict[str, str | None]) -> dict[str, str]:
    """The filters a GET form actually filled in (empty fields dropped, values trimmed)."""
    return {k: v.strip() for k, v in params.items() if v and v.strip()}


def layout(**extra: Any) -> dict[str, Any]:
    base = {"template": "plotly_white", "height": 320, "legend": {"orientation": "h", "y": 1.12},
            "margin": {"l": 50, "r": 20, "t": 40, "b": 60}}
    return base | extra


def short(value: str | None, n: int = 12) -> str:
    return (value or "")[:n]


def filter_choices(events: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the filter forms offer: stages, severities, the codes and runs seen."""
    return {"stages": known_event_stages(), "severities": taxonomy.SEVERITIES,
            "codes": sorted({e["reason_code"] for e in events}),
            "runs": [(r["run_id"], f"{r['stage']} {r['status']}") for r in runs]}


# --- timeline ---------------------------------------------------------------------------------
@router.get("/projects/{name}/timeline", response_class=HTMLResponse)
def timeline_page(request: Request, name: str, stage: str | None = None,
                  severity: str | None = None, run: str | None = None, since: str | None = None,
                  until: str | None = None, code: str | None = None,
                  chart: str = "severity") -> HTMLResponse:
    info = project.get(name)
    filters = given({"stage": stage, "severity": severity, "run": run, "since": since,
                     "until": until, "code": code})
    by = chart if chart in ("severity", "stage") else "severity"
    built, error = attempt(lambda: timeline.build(info, query.make_filter(
        stage=filters.get("stage"), severity=filters.get("severity"),
        run_id=filters.get("run"), since=filters.get("since"), until=filters.get("until"),
        code=filters.get("code"), limit=TIMELINE_LIMIT)))
    events = built["events"] if built else []
    return render(request, "timeline.html", status_code=page_status(error),
                  project=project.summary(info), filters=filters, chart_by=by, error=error,
                  items=tree_items(built["tree"]) if built else [], count=len(events),
                  limit=TIMELINE_LIMIT, figure=figure_json(events_figure(events, by)),
                  choices=filter_choices(query.events(info), query.runs(info)))


def tree_items(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The timeline tree as one list per level, events and runs in time order."""
    return _ordered(tree["events"], tree["runs"])


def _ordered(events: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = [{"kind": "event", "at": e["created_at"] or "", "event": e} for e in events]
    items += [{"kind": "run", "at": r.get("started_at") or "", "run": r,
               "count": _count_events(r), "items": _ordered(r["events"], r["children"])}
              for r in runs]
    return sorted(items, key=lambda item: item["at"])


def _count_events(run: dict[str, Any]) -> int:
    return len(run["events"]) + sum(_count_events(c) for c in run["children"])


def events_figure(events: list[dict[str, Any]], by: str) -> go.Figure:
    """Events over time as a stacked histogram, one trace per severity (or stage)."""
    groups: dict[str, list[str]] = {}
    for ev in events:
        groups.setdefault(ev[by], []).append(ev["created_at"])
    order = [s for s in taxonomy.SEVERITIES if s in groups] if by == "severity" else sorted(groups)
    fig = go.Figure([go.Histogram(x=groups[key], name=key, nbinsx=40,
                                  marker_color=SEVERITY_COLOURS.get(key) if by == "severity"
                                  else None) for key in order])
    return fig.update_layout(**layout(barmode="stack", title=f"events over time by {by}",
                                      xaxis_title="time (UTC)", yaxis_title="events"))


# --- clusters ---------------------------------------------------------------------------------
@router.get("/projects/{name}/clusters", response_class=HTMLResponse)
def clusters_page(request: Request, name: str, stage: str | None = None,
                  since: str | None = None, until: str | None = None) -> HTMLResponse:
    info = project.get(name)
    filters = given({"stage": stage, "since": since, "until": until})
    found, error = attempt(lambda: clusters.compute(info, **filters))
    groups = found["clusters"] if found else []
    return render(request, "clusters.html", status_code=page_status(error),
                  project=project.summary(info), filters=filters, error=error,
                  result=found, clusters=groups, stages=known_event_stages(),
                  figure=figure_json(clusters_figure(groups)) if groups else None)


def cluster_labels(groups: list[dict[str, Any]]) -> list[str]:
    """"stage · cause (or code)", with the cluster id where two clusters share that."""
    plain = [f"{c['stage']} · {c['cause'] or c['reason_code']}" for c in groups]
    return [label if plain.count(label) == 1 else f"{label} · {c['id']}"
            for label, c in zip(plain, groups, strict=True)]


def clusters_figure(groups: list[dict[str, Any]]) -> go.Figure:
    """One horizontal bar per cluster, the most frequent on top."""
    shown, labels = groups[::-1], cluster_labels(groups)[::-1]
    fig = go.Figure(go.Bar(x=[c["count"] for c in shown], y=labels, orientation="h",
                           text=[c["count"] for c in shown], hovertext=[c["signature"]
                                                                       for c in shown],
                           marker_color=[SEVERITY_COLOURS[c["severity"]] for c in shown]))
    most = max(c["count"] for c in groups)
    return fig.update_layout(**layout(
        title="events per failure cluster", height=max(320, 120 + 40 * len(groups)),
        xaxis={"title": "events", "rangemode": "tozero", "dtick": 1 if most <= 10 else None},
        margin={"l": 280, "r": 20, "t": 40, "b": 50}))


# --- audit ------------------------------------------------------------------------------------
@router.get("/projects/{name}/audit", response_class=HTMLResponse)
def audit_page(request: Request, name: str, stage: str | None = None,
               severity: str | None = None, code: str | None = None, run: str | None = None,
               since: str | None = None, until: str | None = None, row: str | None = None,
               artifact: str | None = None, limit: str | None = None,
               why_query: Annotated[str | None, Query(alias="why")] = None,
               lineage_query: Annotated[str | None, Query(alias="lineage")] = None,
               ) -> HTMLResponse:
    info = project.get(name)
    filters = given({"stage": stage, "severity": severity, "code": code, "run": run,
                     "since": since, "until": until, "row": row, "artifact": artifact})
    rows_shown = _limit(limit)
    found, error = attempt(lambda: audit.search(info, audit.make_query(**filters,
                                                                       limit=rows_shown)))
    asked = given({"why": why_query, "lineage": lineage_query})
    explained, why_error = _ask(lambda: why.explain(info, asked["why"]), "why" in asked)
    traced, lineage_error = _ask(lambda: lineage.trace(info, asked["lineage"]),
                                 "lineage" in asked)
    runs = query.runs(info)
    return render(request, "audit.html",
                  status_code=page_status(error, why_error, lineage_error),
                  project=project.summary(info), filters=filters, limit=rows_shown, error=error,
                  result=found, choices=filter_choices(query.events(info), runs), asked=asked,
                  why=explained, why_error=why_error, lineage=traced,
                  lineage_error=lineage_error,
                  candidates=artifact_choices(runs, CANDIDATE_STAGES),
                  artifacts=artifact_choices(runs, None))


def _ask(fn: Callable[[], T], asked: bool) -> tuple[T | None, dict[str, Any] | None]:
    return attempt(fn) if asked else (None, None)


def _limit(value: str | None) -> int:
    try:
        return max(1, int(value)) if value else AUDIT_LIMIT
    except ValueError:
        return AUDIT_LIMIT


def artifact_choices(runs: list[dict[str, Any]],
                     stages: tuple[str, ...] | None) -> list[dict[str, str]]:
    """Each artifact a run wrote (newest first): what the why / lineage forms offer."""
    seen, out = set(), []
    for run in reversed(runs):
        if stages and run["stage"] not in stages:
            continue
        for slot, art_id in (run["outputs"] or {}).items():
            if art_id not in seen:
                seen.add(art_id)
                out.append({"id": art_id, "label": f"{slot} {short(art_id)} "
                                                   f"({run['stage']} {run['run_id']})"})
    return out


# --- rows -------------------------------------------------------------------------------------
@router.get("/projects/{name}/rows", response_class=HTMLResponse)
def rows_page(request: Request, name: str, row_id: str | None = None) -> Response:
    info = project.get(name)
    if row_id and row_id.strip():  # the trace form
        return RedirectResponse(f"/projects/{quote(name)}/rows/{quote(row_id.strip())}",
                                status_code=303)
    found, error = attempt(lambda: rows.stats(info))
    stages = found["stages"] if found else []
    return render(request, "rows.html", status_code=page_status(error),
                  project=project.summary(info), error=error, stats=found, stages=stages,
                  labels=stage_labels(stages), examples=example_rows(info, stages),
                  figure=figure_json(rows_figure(stages)) if stages else None)


def stage_labels(stages: list[dict[str, Any]]) -> list[str]:
    """A chart label per ledger run: the stage, and the run where a stage ran twice."""
    names = [s["stage"] for s in stages]
    return [s["stage"] if names.count(s["stage"]) == 1 else f"{s['stage']} {s['run_id'][4:12]}"
            for s in stages]


def rows_figure(stages: list[dict[str, Any]]) -> go.Figure:
    """Per stage run: kept + changed (= out) and dropped stacked (= in); added beside."""
    labels = stage_labels(stages)
    parts = (("kept", "#12b76a"), ("changed", "#2e90fa"), ("dropped", "#d92d20"),
             ("added", "#9e77ed"))
    fig = go.Figure([go.Bar(name=part, x=labels, y=[s[part] for s in stages], marker_color=c)
                     for part, c in parts if any(s[part] for s in stages)])
    return fig.update_layout(**layout(barmode="stack", title="rows per stage: in = out + dropped",
                                      yaxis_title="rows"))


def example_rows(info: project.ProjectInfo,
                 stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A few row ids per reason code the ledger holds (dropped first), to trace."""
    codes: dict[str, str] = {}
    for s in stages:
        for code in (*s["by_reason"], *s["notes"]):
            codes.setdefault(code, s["stage"])
    out = []
    for code, stage in codes.items():
        found, _ = attempt(lambda c=code: audit.search(info, audit.make_query(code=c, limit=1)))
        ids = [rid for hit in (found or {}).get("ledger", []) for rid in hit["row_ids"]]
        if ids:
            out.append({"code": code, "stage": stage, "row_ids": ids[:EXAMPLE_ROWS]})
    return out


@router.get("/projects/{name}/rows/{row_id}", response_class=HTMLResponse)
def row_page(request: Request, name: str, row_id: str) -> HTMLResponse:
    info = project.get(name)
    story, error = attempt(lambda: audit.row_story(info, row_id))
    return render(request, "row.html", status_code=page_status(error),
                  project=project.summary(info), row_id=row_id, story=story, error=error,
                  codes=codes_used(story))


def codes_used(story: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The taxonomy entry of every reason code in the row's story, in order of appearance."""
    seen = dict.fromkeys(s["reason_code"] for s in (story or {}).get("steps", [])
                         if s.get("reason_code"))
    return [taxonomy.lookup(c).to_dict() if taxonomy.is_known(c) else
            {"code": c, "meaning": None, "hint": None, "severity": None, "stage": None}
            for c in seen]


# --- bundle -----------------------------------------------------------------------------------
@router.get("/projects/{name}/bundle", response_class=HTMLResponse)
def bundle_page(request: Request, name: str) -> HTMLResponse:
    info = project.get(name)
    events = query.events(info)
    made = [e for e in events if e["reason_code"] == "bundle_created"]
    found = clusters.compute(info)
    contents = {"events": len(events), "runs": len(query.runs(info)),
                "clusters": len(found["clusters"])}
    return render(request, "bundle.html", project=project.summary(info),
                  members=BUNDLE_MEMBERS, contents=contents, bundles=made[::-1],
                  download=f"/api/projects/{quote(name)}/bundle")
