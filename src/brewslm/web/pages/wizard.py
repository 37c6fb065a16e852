"""The first-run wizard: a new project to a model answering at its endpoint, in five steps.

    /new                       1 project: name and base model
    /projects/NAME/wizard      2 data: upload a file or name a source, ingest it (a job)
                               3 introspect (a job): ranked mapping hypotheses, the chosen one
                               4 preview (map dry-run job): rows before / after, rejections;
                                 accepting commits the mapping (the map job)
                               5 run the rest: the autopilot (job kind "run", same source,
                                 reusing every finished stage), live, then its summary and an
                                 "ask the model" box on /serve/NAME/v1/chat/completions

Where the wizard stands is read from the project (its stage runs and jobs), never kept in the
browser: a reload, or coming back a week later, lands on the right step, and a job still
running is followed again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from brewslm import project
from brewslm.events import query, taxonomy
from brewslm.jobs import kinds, service
from brewslm.web.ui import render, require_login

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_login)])

STEPS = ((1, "Project"), (2, "Data"), (3, "Introspect"), (4, "Preview"), (5, "Run the rest"))
OK = ("succeeded", "reused")
WIZARD_JOBS = ("ingest", "introspect", "map", "run")
PREVIEW_ROWS = 10
UPLOAD_ACCEPT = ".jsonl,.ndjson,.json,.csv,.tsv,.parquet,.txt,.md,.markdown"


@router.get("/new", response_class=HTMLResponse)
def new_project_page(request: Request) -> HTMLResponse:
    return render(request, "wizard.html", steps=STEPS, step=1, wiz=None)


@router.get("/projects/{name}/wizard", response_class=HTMLResponse)
def wizard_page(request: Request, name: str) -> HTMLResponse:
    info = project.get(name)
    wiz = wizard_state(info)
    return render(request, "wizard.html", project=project.summary(info), active="wizard",
                  steps=STEPS, step=wiz["step"], wiz=wiz, accept=UPLOAD_ACCEPT,
                  recipes=_recipes(), endpoint=_endpoint(request, name),
                  meaning=_meaning)


def wizard_state(info: project.ProjectInfo) -> dict[str, Any]:
    """What has run for this project, as the wizard's steps see it, and the current step."""
    from brewslm.api.uploads import list_uploads

    runs = query.runs(info)
    ingest = _last(runs, "ingest")
    snapshot = (ingest or {}).get("result", {}).get("snapshot_id")
    mapped = _ok_runs(runs, "map", snapshot)
    jobs = service.list_jobs(info, limit=50)
    wiz = {"ingest": ingest and _ingest_view(ingest, _ledger(runs, ingest)),
           "failure": _failure(runs, jobs),
           "introspect": _introspect_view(_last(runs, "introspect", snapshot)),
           "dry_run": _dry_run_view(_last(runs, "map_dry_run", snapshot)),
           "mapped": bool(mapped),
           "uploads": list_uploads(info),
           "running": _running_job(jobs),
           "autopilot": _autopilot_view(info, jobs, ingest, mapped[0] if mapped else None)}
    wiz["step"] = current_step(wiz)
    return wiz


def current_step(wiz: dict[str, Any]) -> int:
    """The first step whose stage has not run (on the data ingested last)."""
    if not wiz["ingest"]:
        return 2
    if not wiz["dry_run"]:
        return 3
    return 4 if not wiz["mapped"] else 5


def _ok_runs(runs: list[dict[str, Any]], stage: str, snapshot: str | None = None
             ) -> list[dict[str, Any]]:
    """The succeeded (or reused) runs of `stage`, oldest first, on `snapshot` if given."""
    return [r for r in runs if r["stage"] == stage and r["status"] in OK
            and (snapshot is None or r["inputs"].get("snapshot") == snapshot)]


def _last(runs: list[dict[str, Any]], stage: str, snapshot: str | None = None
          ) -> dict[str, Any] | None:
    found = _ok_runs(runs, stage, snapshot)
    return found[-1] if found else None


def _ledger(runs: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    """A run's ledger counts; a reused run has none of its own: those of the run it reused."""
    if run.get("ledger") or not run.get("reused_from"):
        return run.get("ledger") or {}
    return next((r.get("ledger") or {} for r in runs if r["run_id"] == run["reused_from"]), {})


def _ingest_view(run: dict[str, Any], ledger: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run["run_id"], "status": run["status"],
            "source": run["parameters"].get("source"),
            "snapshot_id": run["result"].get("snapshot_id"),
            "counts": {"in": ledger.get("in"), "out": ledger.get("out"),
                       "rejected": ledger.get("dropped")},
            "rejections_by_reason": ledger.get("by_reason") or {}}


def _introspect_view(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    result = run["result"]
    return {"run_id": run["run_id"], "proposal": result.get("proposal") or {},
            "hypotheses": result.get("hypotheses") or [], "fields": result.get("fields") or [],
            "sampled": result.get("sampled")}


def _dry_run_view(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    result = run["result"]
    return {"run_id": run["run_id"], "mapping": result.get("mapping") or {},
            "counts": result.get("counts") or {},
            "rejections_by_reason": result.get("rejections_by_reason") or {},
            "examples": result.get("examples") or {},
            "preview": (result.get("preview") or [])[:PREVIEW_ROWS]}


def _failure(runs: list[dict[str, Any]], jobs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest wizard job, when it failed: its stage and error (shown on its step)."""
    finished = [j for j in jobs if j["kind"] in WIZARD_JOBS and j["status"] in service.FINAL]
    if not finished or finished[0]["status"] == "succeeded" or finished[0]["kind"] == "run":
        return None
    job = finished[0]
    return {"job_id": job["id"], "kind": job["kind"], "status": job["status"],
            "dry_run": bool(job["params"].get("dry_run")),
            "code": job["error_code"], "message": job["error_message"]}


def _running_job(jobs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A wizard job still queued or running (the page follows it again)."""
    live = [j for j in jobs if j["kind"] in WIZARD_JOBS and j["status"] not in service.FINAL]
    return live[0] if live else None


def _autopilot_view(info: project.ProjectInfo, jobs: list[dict[str, Any]],
                    ingest: dict[str, Any] | None, mapped: dict[str, Any] | None
                    ) -> dict[str, Any] | None:
    """The latest finished autopilot job on the current data (started after its mapping was
    first written), summarized for step 5."""
    if not ingest or not mapped:
        return None
    source = ingest["parameters"].get("source")
    done = [j for j in jobs if j["kind"] == "run" and j["status"] in service.FINAL
            and j["params"].get("data") == source
            and (j["created_at"] or "") >= (mapped["started_at"] or "")]
    if not done:
        return None
    job = done[0]
    summary = job["result"] or {}
    steps = summary.get("steps") or []
    return {"job_id": job["id"], "status": job["status"], "params": job["params"],
            "summary_status": summary.get("status"), "why": summary.get("why")
            or job["error_message"], "stopped_at": summary.get("stopped_at"),
            "cause": summary.get("cause") or job["error_code"], "steps": steps,
            "evaluation": _evaluation(info, steps), "deployment": _deployment(info)}


def _evaluation(info: project.ProjectInfo, steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    step = next((s for s in steps if s["stage"] == "evaluate"), None)
    if step is None:
        return None
    gates = step.get("gates")
    if gates is None and step.get("run_id"):
        gates = query.get_run(info, step["run_id"])["result"].get("gates")
    return {"promotable": step.get("promotable"), "gates": gates or [],
            "run_id": step.get("run_id")}


def _deployment(info: project.ProjectInfo) -> dict[str, Any] | None:
    from brewslm.serving import deployments

    active = deployments.active(info)
    return {"version": active.version, "status": active.status,
            "format": active.format} if active else None


def _endpoint(request: Request, name: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/serve/{name}/v1/chat/completions"


def _recipes() -> list[str]:
    from brewslm.train.recipe import PACKAGED

    default = kinds.parameters("run")["recipe"]["default"]
    return [default] + [r for r in PACKAGED if r != default]


def _meaning(code: str) -> str:
    """A reason code's one-line meaning from the taxonomy (empty when unknown)."""
    found = taxonomy.codes().get(code)
    return found.meaning if found else ""
