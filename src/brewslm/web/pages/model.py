"""Model pages: stage 07 preflight (the GO / BLOCK verdict, its blockers with their remedies, the
memory estimate against the budget), stage 08 train (the runs; the chosen run's result, its
checkpoints and a loss curve that follows a running run live) and stage 09 evaluate (base vs
candidate metrics, the gates, the promotable verdict and the per-example outputs).

Each page reads stored stage runs through the service layer and builds its charts with
plotly.graph_objects; the buttons and forms start the stage as a job through the REST API
(static/model.js).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import plotly.graph_objects as go
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from plotly.subplots import make_subplots

from brewslm import artifacts, project
from brewslm.errors import NotFoundError
from brewslm.events import query, taxonomy
from brewslm.project import ProjectInfo
from brewslm.web.ui import figure_json, render, require_login

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_login)])

MIB = 1 << 20
GIB = 1 << 30
EXAMPLES_PER_PAGE = 50
BASE_COLOR, CANDIDATE_COLOR = "#98a2b3", "#2e5bd8"
CHAT_MARKUP = re.compile(r"<\|[^|>]*\|>(?:system|user|assistant)?")
TRACE_STYLES = {"loss": {"mode": "lines", "color": "#2e5bd8"},
                "eval_loss": {"mode": "lines+markers", "color": "#b54708"},
                "learning_rate": {"mode": "lines", "color": "#55a868"}}


# --- shared helpers ---------------------------------------------------------------------------


def latest_with(runs: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The newest run whose stored result holds `key` (a blocked run keeps what it found)."""
    for run in reversed(runs):
        if key in (run.get("result") or {}):
            return run
    return None


def size_text(n: int | float | None) -> str:
    """Bytes as MiB or GiB for people."""
    if n is None:
        return "—"
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.1f} MiB"


def remedy(code: str) -> str:
    """The taxonomy's remediation hint for a reason code."""
    return taxonomy.codes()[code].hint if taxonomy.is_known(code) else ""


def chart(fig: go.Figure | None) -> dict[str, Any] | None:
    """A figure for a template: its JSON for plot() and its height, which the container keeps
    (so the page does not reflow while plotly draws or resizes)."""
    if fig is None:
        return None
    return {"figure": figure_json(fig), "height": int(fig.layout.height or 400)}


def page_layout(title: str = "", **extra: Any) -> dict[str, Any]:
    """Common plotly layout: white, compact margins, a small title, the legend below."""
    return {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 60, "b": 40},
            "legend": {"orientation": "h", "x": 0, "y": -0.12, "yanchor": "top"},
            "title": {"text": title, "font": {"size": 14}}, **extra}


# --- preflight --------------------------------------------------------------------------------


@router.get("/projects/{name}/preflight", response_class=HTMLResponse)
def preflight_page(request: Request, name: str) -> HTMLResponse:
    from brewslm.train.recipe import PACKAGED

    info = project.get(name)
    runs = query.runs(info, "preflight")
    shown = latest_with(runs, "verdict")
    view = preflight_view(shown["result"]) if shown else {}
    method = ((shown or {}).get("result", {}).get("recipe") or {}).get("method", "lora")
    return render(request, "preflight.html", project=info.name, latest=runs[-1] if runs else None,
                  shown=shown, recipes=PACKAGED, recipe_name=method, **view)


def preflight_view(result: dict[str, Any]) -> dict[str, Any]:
    """The verdict's parts for the page: blockers with remedies, checks, memory and its chart."""
    memory = result.get("memory") or {}
    blockers = [{**b, "remedy": remedy(b["reason_code"])} for b in result.get("blockers", [])]
    return {"verdict": result["verdict"], "blockers": blockers, "checks": result.get("checks", []),
            "memory_rows": memory_rows(memory), "budget": budget_rows(memory),
            "plan": result.get("plan"), "forced": result.get("forced"),
            "memory_chart": chart(memory_figure(memory))}


def memory_rows(memory: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per part of the peak (weights, gradients, optimizer states, ...) and its share."""
    breakdown = memory.get("breakdown") or {}
    peak = memory.get("estimated_peak_bytes") or 0
    return [{"part": part, "bytes": n, "size": size_text(n),
             "share": f"{n / peak:.1%}" if peak else "—"} for part, n in breakdown.items()]


def budget_rows(memory: dict[str, Any]) -> list[tuple[str, str]]:
    """The estimate against what the machine has: peak, budget, free memory, margin, fits."""
    job = memory.get("job") or {}
    margin = memory.get("safety_margin")
    return [("estimated peak", size_text(memory.get("estimated_peak_bytes"))),
            ("peak phase", memory.get("peak_phase") or "—"),
            ("budget", size_text(memory.get("budget_bytes"))),
            ("free", f"{size_text(memory.get('free_bytes'))} ({memory.get('free_source', '')})"),
            ("memory limit", size_text(memory.get("memory_limit_bytes"))),
            ("safety margin", f"{margin:.0%}" if isinstance(margin, int | float) else "—"),
            ("fits", {True: "yes", False: "no"}.get(memory.get("fits"), "—")),
            ("job", ", ".join(f"{k} {job[k]}" for k in ("method", "micro_batch", "seq_len",
                                                         "dtype", "device") if k in job))]


def memory_figure(memory: dict[str, Any]) -> go.Figure | None:
    """Each moment of a training step as a stacked bar of what is alive then (MiB)."""
    phases = memory.get("phases") or ({"peak": memory["breakdown"]}
                                      if memory.get("breakdown") else None)
    if not phases:
        return None
    names = list(phases)
    parts = list(next(iter(phases.values())))
    fig = go.Figure([go.Bar(name=part, x=names, y=[phases[p].get(part, 0) / MIB for p in names],
                            hovertemplate="%{x}<br>" + part + ": %{y:.1f} MiB<extra></extra>")
                     for part in parts])
    peak, budget = memory.get("estimated_peak_bytes"), memory.get("budget_bytes")
    if peak and budget and budget <= 4 * peak:  # a far larger budget would flatten the bars
        fig.add_hline(y=budget / MIB, line_dash="dash", line_color="#b42318",
                      annotation_text=f"budget {size_text(budget)}")
    fig.update_layout(**page_layout(barmode="stack", yaxis_title="MiB", height=380,
                                    title=f"estimated peak {size_text(peak)} "
                                    f"({memory.get('peak_phase', '')}) · budget "
                                    f"{size_text(budget)}"))
    return fig


# --- train ------------------------------------------------------------------------------------


@router.get("/projects/{name}/train", response_class=HTMLResponse)
def train_page(request: Request, name: str, run: str | None = None) -> HTMLResponse:
    from brewslm.train.recipe import PACKAGED

    info = project.get(name)
    runs = list(reversed(query.runs(info, "train")))  # newest first
    chosen = query.get_run(info, run) if run else (runs[0] if runs else None)
    if chosen is not None and chosen["stage"] != "train":
        raise NotFoundError("run_not_found", f"run {run!r} is a {chosen['stage']} run, not a "
                            "training run")
    detail = train_detail(info, chosen) if chosen else None
    return render(request, "train.html", project=info.name, runs=[run_row(r) for r in runs],
                  chosen=chosen, detail=detail, recipes=PACKAGED,
                  recipe=(chosen or {}).get("parameters", {}).get("recipe") or {})


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """A training run in the list: when, status, steps and final loss."""
    result = run.get("result") or {}
    return {"run_id": run["run_id"], "status": run["status"], "started_at": run["started_at"],
            "duration_s": run["duration_s"], "steps": result.get("steps"),
            "final_loss": result.get("final_loss"), "simulated": result.get("simulated"),
            "backend": (run.get("parameters") or {}).get("backend"),
            "error_code": run.get("error_code")}


def train_detail(info: ProjectInfo, run: dict[str, Any]) -> dict[str, Any]:
    """The chosen run: its result, manifest hash, checkpoints and the loss-curve figure."""
    result = run.get("result") or {}
    trace = trace_rows(info, run)
    steps = result.get("steps") or max((r["step"] for r in trace), default=None)
    recipe = (run.get("parameters") or {}).get("recipe") or {}
    return {"result": result, "steps": steps, "max_steps": result.get("max_steps")
            or recipe.get("max_steps"), "final_loss": result.get("final_loss"),
            "manifest_hash": manifest_hash(info, run), "checkpoints": checkpoints(info, run),
            "trace_points": len(trace), "live": run["status"] == "running",
            "blockers": [{**b, "remedy": remedy(b["reason_code"])}
                         for b in result.get("blockers", [])],
            "loss_chart": chart(loss_figure(trace, run["run_id"]))}


def trace_rows(info: ProjectInfo, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's loss trace (a reused run shows the run it reused); none for a blocked run."""
    from brewslm.stages.train import run_metrics

    try:
        return run_metrics(info, run.get("reused_from") or run["run_id"])["rows"]
    except NotFoundError:
        return []


def manifest_hash(info: ProjectInfo, run: dict[str, Any]) -> str | None:
    """The manifest the run trained on: from its result, else from its input artifact."""
    found = (run.get("result") or {}).get("manifest_hash")
    manifest_id = (run.get("inputs") or {}).get("manifest")
    if found or not manifest_id:
        return found
    try:
        return artifacts.get(info, manifest_id).meta.get("manifest_hash")
    except NotFoundError:
        return None


def checkpoints(info: ProjectInfo, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The tagged checkpoints in the run's work folder (a resumed run continues an earlier
    run's folder), oldest step first."""
    from brewslm.stages.train import WORK_ROOT
    from brewslm.train.engine import CHECKPOINT_PREFIX, CHECKPOINT_TAG

    last = (run.get("result") or {}).get("checkpoint")
    work = Path(last).parent.parent if last else info.dir / WORK_ROOT / run["run_id"]
    folder = work / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{CHECKPOINT_PREFIX}*"):
        tag_file = path / CHECKPOINT_TAG
        if not tag_file.is_file():
            continue  # still being written, or debris of a crash
        tag = json.loads(tag_file.read_text(encoding="utf-8"))
        found.append({"name": path.name, "step": tag.get("step"), "epoch": _round(tag.get("epoch")),
                      "saved_at": _when(tag.get("saved_at")), "path": str(path),
                      "size": size_text(sum(f.stat().st_size for f in path.rglob("*")
                                            if f.is_file())),
                      "last": str(path) == last})
    return sorted(found, key=lambda c: c["step"] or 0)


def _when(epoch_seconds: float | None) -> str:
    if epoch_seconds is None:
        return "—"
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def loss_figure(rows: list[dict[str, Any]], run_id: str) -> go.Figure:
    """Loss and eval loss against step, the learning rate on a second axis. Each trace's `meta`
    names its series, so model.js can refill it from /runs/{id}/metrics while the run runs."""
    fig = go.Figure()
    for name, style in TRACE_STYLES.items():
        points = [(r["step"], r[name]) for r in rows if name in r]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in points], y=[p[1] for p in points], name=name, meta=name,
            mode=style["mode"], line={"color": style["color"],
                                      "dash": "dot" if name == "learning_rate" else "solid"},
            yaxis="y2" if name == "learning_rate" else "y"))
    fig.update_layout(**page_layout(
        title=f"loss · {run_id}", height=380, xaxis_title="optimizer step",
        yaxis_title="loss", yaxis2={"title": "learning rate", "overlaying": "y",
                                    "side": "right", "showgrid": False, "exponentformat": "e",
                                    "rangemode": "tozero"}))
    return fig


# --- evaluate ---------------------------------------------------------------------------------


@router.get("/projects/{name}/evaluate", response_class=HTMLResponse)
def evaluate_page(request: Request, name: str, differ: bool = False,
                  page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> HTMLResponse:
    from brewslm.evaluate.pack import PACKAGED

    info = project.get(name)
    runs = query.runs(info, "evaluate")
    shown = latest_with(runs, "gates")
    view = evaluate_view(info, shown["result"], differ=differ, page=page) if shown else {}
    return render(request, "evaluate.html", project=info.name, latest=runs[-1] if runs else None,
                  shown=shown, packs=PACKAGED, differ=differ, **view)


def evaluate_view(info: ProjectInfo, result: dict[str, Any], *, differ: bool,
                  page: int) -> dict[str, Any]:
    """Gates, the metric comparison and its chart, and one page of examples."""
    examples = [example_row(e) for e in read_examples(info, result)]
    if differ:
        examples = [e for e in examples if not e["same"]]
    pages = max(1, math.ceil(len(examples) / EXAMPLES_PER_PAGE))
    start = (min(page, pages) - 1) * EXAMPLES_PER_PAGE
    return {"result": result, "gates": result["gates"],
            "comparison": result.get("comparison") or {},
            "metrics_chart": chart(metrics_figure(result)),
            "examples": examples[start:start + EXAMPLES_PER_PAGE], "matching": len(examples),
            "page": min(page, pages), "pages": pages}


def read_examples(info: ProjectInfo, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-example outputs of the evaluation (its report's examples.jsonl)."""
    try:
        path = artifacts.get(info, result["report_id"]).path / "examples.jsonl"
    except (KeyError, NotFoundError):
        return []
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def example_row(example: dict[str, Any]) -> dict[str, Any]:
    """One example as the table shows it, with its match flags."""
    base, cand = example.get("base") or {}, example.get("candidate") or {}
    base_out, cand_out = base.get("prediction", ""), cand.get("prediction", "")
    prompt = example.get("prompt", "")
    return {"row_id": example.get("row_id"), "prompt": prompt, "preview": preview(prompt),
            "reference": example.get("reference", ""), "base": base_out, "candidate": cand_out,
            "base_match": _matched(base), "candidate_match": _matched(cand),
            "same": base_out.strip() == cand_out.strip(),
            "base_f1": (base.get("scores") or {}).get("token_f1"),
            "candidate_f1": (cand.get("scores") or {}).get("token_f1")}


def preview(prompt: str, chars: int = 110) -> str:
    """The end of a chat-template prompt as plain text (the ticket, not the markup)."""
    text = " ".join(CHAT_MARKUP.sub(" ", prompt).split())
    return text if len(text) <= chars else "…" + text[-chars:]


def _matched(side: dict[str, Any]) -> bool:
    return (side.get("scores") or {}).get("exact_match") == 1.0


def metrics_figure(result: dict[str, Any]) -> go.Figure:
    """Base vs candidate, one small grouped-bar panel per metric (each on its own scale)."""
    metrics = result.get("metrics") or {}
    base, cand = metrics.get("base") or {}, metrics.get("candidate") or {}
    names = [n for n in cand if n in base]
    higher = {n: c.get("higher_is_better", True)
              for n, c in (result.get("comparison") or {}).items()}
    cols = min(5, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols, vertical_spacing=0.25, horizontal_spacing=0.06,
                        subplot_titles=[f"{n} {'↑' if higher.get(n, True) else '↓'}"
                                        for n in names])
    for i, metric in enumerate(names):
        row, col = divmod(i, cols)
        for label, values, color in (("base", base, BASE_COLOR),
                                     ("candidate", cand, CANDIDATE_COLOR)):
            fig.add_trace(go.Bar(x=[label], y=[values[metric]], name=label, marker_color=color,
                                 text=[f"{values[metric]:.3g}"], textposition="outside",
                                 cliponaxis=False,
                                 legendgroup=label, showlegend=i == 0,
                                 hovertemplate=f"{metric} {label}: %{{y:.4g}}<extra></extra>"),
                          row=row + 1, col=col + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(**page_layout(height=200 + 190 * rows, barmode="group",
                                    title="base vs candidate (↑ higher is better, ↓ lower)"))
    return fig
