"""Projects: the list (with create) and each project's overview, the eleven stages as a board
with status, last run, rows in / out / rejected and the next action."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from brewslm import project
from brewslm.events import query
from brewslm.stages.catalog import STAGES
from brewslm.web.ui import render, require_login

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_login)])

# Where each stage's details live in the UI (the board links there).
STAGE_PAGES = {"ingest": "data", "introspect": "data", "map_dry_run": "data", "map": "data",
               "clean": "clean", "prepare": "manifest", "preflight": "preflight",
               "train": "train", "evaluate": "evaluate", "export": "exports",
               "deploy": "deployments"}


@router.get("/", response_class=HTMLResponse)
def projects_page(request: Request) -> HTMLResponse:
    rows = [project.summary(p) for p in project.list_all()]
    return render(request, "projects.html", projects=rows)


@router.get("/projects/{name}", response_class=HTMLResponse)
def overview_page(request: Request, name: str) -> HTMLResponse:
    info = project.get(name)
    runs = query.runs(info)
    return render(request, "overview.html", project=project.summary(info),
                  board=board(runs), next_action=next_action(runs))


def board(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One card per stage: its last run (status, when, rows in/out/rejected) and its page."""
    last = {}
    for run in runs:  # oldest first: later runs overwrite
        last[run["stage"]] = run
    cards = []
    for spec in STAGES:
        run = last.get(spec.name)
        ledger = (run or {}).get("ledger") or {}
        cards.append({"number": spec.number, "name": spec.name, "contract": spec.contract,
                      "page": STAGE_PAGES[spec.name], "run": run,
                      "status": run["status"] if run else "not run",
                      "counts": {"in": ledger.get("in"), "out": ledger.get("out"),
                                 "rejected": ledger.get("dropped")} if ledger else None})
    return cards


def next_action(runs: list[dict[str, Any]]) -> dict[str, str]:
    """The first stage with no succeeded (or reused) run, or a failed latest run to fix."""
    done = {r["stage"] for r in runs if r["status"] in ("succeeded", "reused")}
    for spec in STAGES:
        if spec.name == "map_dry_run":
            continue  # optional: map commits without it
        if spec.name not in done:
            return {"stage": spec.name, "page": STAGE_PAGES[spec.name],
                    "text": f"Run stage {spec.number:02d} {spec.name}"}
    return {"stage": "", "page": "deployments", "text": "Everything has run: see deployments"}
