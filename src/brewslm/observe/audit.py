"""The audit explorer: events, stage runs, the row ledger and decisions, queried by any field.

    brewslm audit -p NAME [--stage S] [--severity L] [--code C] [--run RUN_ID] [--since ISO]
                          [--until ISO] [--row ROW_ID] [--artifact ID|PATH] [--limit N] [--json]
    brewslm audit -p NAME row ROW_ID          # the row's story with its eval results
    GET /api/projects/NAME/audit?stage=&severity=&code=&run=&since=&until=&row=&artifact=
    GET /api/projects/NAME/audit/rows/ROW_ID

`search` answers with four lists, each narrowed by every filter that applies to it:
  events     the filtered event stream (the newest `limit`);
  runs       stage runs; --severity / --code keep runs that have such an event (for --code also
             runs that failed with it or dropped rows with it), --artifact runs that read or
             wrote the artifact, --row runs whose ledger holds the row;
  ledger     with --row the row's entries; with --code, per run, the rows carrying that code;
  decisions  who decided what when: promotion verdicts (evaluate), preflight verdicts, runs
             started with --force, `*_forced` events, project settings, deployments.
`why` (observe/why.py) and `lineage` (observe/lineage.py) answer the two other questions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from brewslm import rows
from brewslm.events import query
from brewslm.ledger import ledger_path
from brewslm.observe import lineage
from brewslm.project import ProjectInfo

DEFAULT_LIMIT = 500
ROWS_PER_RUN = 20  # row ids shown per run for --code (the count is complete)
SETTING_CODES = ("project_created", "project_updated")
DEPLOY_SUFFIXES = ("_promoted", "_rolled_back", "_rollback")


@dataclass(frozen=True)
class AuditQuery:
    events: query.EventFilter
    row: str | None = None
    artifact: str | None = None


def make_query(*, stage: str | None = None, severity: str | None = None,
               code: str | None = None, run: str | None = None, since: str | None = None,
               until: str | None = None, row: str | None = None, artifact: str | None = None,
               limit: int | None = DEFAULT_LIMIT) -> AuditQuery:
    flt = query.make_filter(stage=stage, severity=severity, run_id=run, since=since,
                            until=until, code=code, limit=limit)
    return AuditQuery(flt, row or None, artifact or None)


def search(project: ProjectInfo, q: AuditQuery) -> dict[str, Any]:
    flt = q.events
    all_runs = query.runs(project)
    artifact_id = lineage.resolve(project, q.artifact).id if q.artifact else None
    scope = _run_scope(project, q, all_runs, artifact_id)  # None: no run restriction
    events = _events(project, replace(flt, limit=None), scope, artifact_id)
    runs = [r for r in all_runs if _run_matches(r, flt, scope)]
    if flt.severity or flt.code:
        hit = {e["run_id"] for e in events} | {r["run_id"] for r in runs if flt.code and (
            r["error_code"] == flt.code or flt.code in _ledger_codes(r))}
        runs = [r for r in runs if r["run_id"] in hit]
    ledger = _ledger(project, q, runs)
    decision_events = _events(project, replace(flt, severity=None, code=None, limit=None),
                              scope, artifact_id)
    found = decisions([r for r in all_runs if _run_matches(r, flt, scope)], decision_events)
    if flt.code:
        found = [d for d in found if d["code"] == flt.code]
    shown = events[-flt.limit:] if flt.limit else events
    return {"project": project.name, "filters": _filters(q), "artifact_id": artifact_id,
            "counts": {"events": len(events), "runs": len(runs), "ledger": len(ledger),
                       "decisions": len(found)},
            "truncated": len(shown) < len(events), "events": shown,
            "runs": [_run_row(r) for r in runs], "ledger": ledger, "decisions": found}


def _filters(q: AuditQuery) -> dict[str, Any]:
    f = q.events
    return {"stage": f.stage, "severity": f.severity, "code": f.code, "run": f.run_id,
            "since": f.since.isoformat() if f.since else None,
            "until": f.until.isoformat() if f.until else None, "row": q.row,
            "artifact": q.artifact, "limit": f.limit}


def _run_scope(project: ProjectInfo, q: AuditQuery, runs: list[dict[str, Any]],
               artifact_id: str | None) -> set[str] | None:
    """The runs the --run, --artifact and --row filters allow (intersected), or None."""
    scope: set[str] | None = None
    if q.events.run_id:
        scope = query.run_family(project, q.events.run_id)
    if artifact_id:
        touching = {r["run_id"] for r in runs if artifact_id in
                    {*(r["inputs"] or {}).values(), *(r["outputs"] or {}).values()}}
        scope = touching if scope is None else scope & touching
    if q.row:
        with_row = {s["run_id"] for s in rows.trace(project, q.row)["steps"]}
        scope = with_row if scope is None else scope & with_row
    return scope


def _events(project: ProjectInfo, flt: query.EventFilter, scope: set[str] | None,
            artifact_id: str | None) -> list[dict[str, Any]]:
    """Events by the filter; with a run scope, the scope's events and (for --artifact) events
    that name the artifact in their payload."""
    found = query.events(project, replace(flt, run_id=None))
    if scope is None:
        return found
    return [e for e in found if e["run_id"] in scope
            or (artifact_id and artifact_id in json.dumps(e["payload"]))]


def _run_matches(run: dict[str, Any], flt: query.EventFilter, scope: set[str] | None) -> bool:
    if scope is not None and run["run_id"] not in scope:
        return False
    if flt.stage and run["stage"] != flt.stage:
        return False
    started = query.parse_time(run["started_at"], "started_at")
    return not ((flt.since and started < flt.since) or (flt.until and started > flt.until))


def _ledger_codes(run: dict[str, Any]) -> set[str]:
    led = run["ledger"] or {}
    return {*(led.get("by_reason") or {}), *(led.get("notes") or {})}


def _run_row(run: dict[str, Any]) -> dict[str, Any]:
    keep = ("run_id", "stage", "status", "parent_run_id", "started_at", "finished_at",
            "duration_s", "error_code", "error_message", "inputs", "outputs", "host", "pid",
            "reused_from")
    return {k: run[k] for k in keep} | {"ledger": _ledger_brief(run["ledger"])}


def _ledger_brief(led: dict[str, Any] | None) -> dict[str, Any] | None:
    if not led:
        return None
    return {k: led.get(k) for k in ("in", "out", "dropped", "by_reason")}


# --- the ledger -------------------------------------------------------------------------------
def _ledger(project: ProjectInfo, q: AuditQuery,
            runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if q.row:
        allowed = {r["run_id"] for r in runs}
        return [s for s in rows.trace(project, q.row)["steps"] if s["run_id"] in allowed]
    if q.events.code:
        return [hit for r in runs if (hit := _code_rows(project, r, q.events.code))]
    return []


def _code_rows(project: ProjectInfo, run: dict[str, Any], code: str) -> dict[str, Any] | None:
    """How many rows of a run's ledger carry the code, and the first few of them."""
    path = ledger_path(project.dir, run["stage"], run["run_id"])
    if code not in _ledger_codes(run) or not path.exists():
        return None
    count, examples = 0, []
    for batch in pq.ParquetFile(path).iter_batches(columns=["row_id", "outcome",
                                                            "reason_code"]):
        mask = pc.fill_null(pc.equal(batch.column("reason_code"), code), False)
        picked = batch.filter(mask)
        count += picked.num_rows
        examples += picked.column("row_id").to_pylist()[:ROWS_PER_RUN - len(examples)]
    return {"run_id": run["run_id"], "stage": run["stage"], "reason_code": code,
            "rows": count, "row_ids": examples}


# --- decisions --------------------------------------------------------------------------------
def decisions(runs: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Who decided what when, oldest first."""
    found = [d for r in runs if (d := _run_decision(r))]
    found += [d for e in events if (d := _event_decision(e, runs))]
    explained = {d["run_id"] for d in found if d["kind"] == "forced"}
    # A run started with --force that no *_forced event explains is still a decision.
    found += [d for r in runs if r["run_id"] not in explained and (d := _force_parameter(r))]
    return sorted(found, key=lambda d: d["at"] or "")


def _decision(kind: str, at: str | None, stage: str, run_id: str | None, decision: str,
              code: str | None, by: str | None, **detail: Any) -> dict[str, Any]:
    return {"kind": kind, "at": at, "stage": stage, "run_id": run_id, "decision": decision,
            "code": code, "by": by, "detail": detail}


def _by(run: dict[str, Any] | None) -> str | None:
    return f"{run['host']} pid {run['pid']}" if run and run.get("host") else None


def _run_decision(run: dict[str, Any]) -> dict[str, Any] | None:
    res = run["result"] or {}
    if run["stage"] == "evaluate" and res.get("promotable") is not None:
        verdict = "promotable" if res["promotable"] else "not promotable"
        return _decision("promotion", run["finished_at"] or run["started_at"], "evaluate",
                         run["run_id"], verdict, run["error_code"], _by(run),
                         candidate_id=res.get("candidate_id"),
                         required_failed=res.get("required_failed"))
    if run["stage"] == "preflight" and res.get("verdict"):
        return _decision("preflight", run["finished_at"] or run["started_at"], "preflight",
                         run["run_id"], res["verdict"], run["error_code"], _by(run),
                         blockers=[b.get("reason_code") if isinstance(b, dict) else b
                                   for b in res.get("blockers") or []])
    return None


def _force_parameter(run: dict[str, Any]) -> dict[str, Any] | None:
    if not (run["parameters"] or {}).get("force") or run["status"] == "reused":
        return None
    return _decision("force", run["started_at"], run["stage"], run["run_id"],
                     f"{run['stage']} started with --force", None, _by(run))


def _event_decision(ev: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    code = ev["reason_code"]
    if code.endswith("_forced"):
        kind = "forced"
    elif code in SETTING_CODES:
        kind = "setting"
    elif code.endswith(DEPLOY_SUFFIXES):
        kind = "deployment"
    else:
        return None
    run = next((r for r in runs if r["run_id"] == ev["run_id"]), None)
    return _decision(kind, ev["created_at"], ev["stage"], ev["run_id"], ev["summary"], code,
                     _by(run), event_id=ev["id"], payload=ev["payload"])


# --- one row ----------------------------------------------------------------------------------
def row_story(project: ProjectInfo, row_id: str) -> dict[str, Any]:
    """`rows trace` plus, for every evaluation that scored the row, both predictions and
    scores next to the reference and the candidate that was judged."""
    story = rows.trace(project, row_id)
    evals = []
    for step in story["steps"]:
        if step.get("reason_code") != "eval_scored" or not isinstance(step.get("detail"), dict):
            continue
        run = query.get_run(project, step["run_id"])
        detail = step["detail"]
        evals.append({"run_id": step["run_id"], "at": step["at"],
                      "candidate_id": (run["result"] or {}).get("candidate_id"),
                      "promotable": (run["result"] or {}).get("promotable"),
                      "reference": detail.get("reference"), "slice": detail.get("slice"),
                      "base": detail.get("base"), "candidate": detail.get("candidate")})
    return {**story, "evaluations": evals}
