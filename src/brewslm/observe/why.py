"""Why was this model promoted, or refused? The evaluations of a candidate, their gates and
evidence, and everything forced on the way.

    brewslm audit -p NAME why CANDIDATE       # a model id or prefix, a train run id, or an
                                              # artifact made from the model (eval report, export)
    GET /api/projects/NAME/audit/why/CANDIDATE

Reads the evaluate runs whose result.candidate_id (or input model) is the candidate: each has
promotable, gates [{id, passed, required, evidence, metric, value, base_value}] and
required_failed. "Forced" is every event whose reason code ends in `_forced` in a run of the
candidate's lineage, of its evaluations, or of the runs that used it (an export with --force),
plus every such run started with force=true; "by" is the host and process id of the run.
"""

from __future__ import annotations

from typing import Any

from brewslm.errors import NotFoundError
from brewslm.events import query, taxonomy
from brewslm.observe import lineage
from brewslm.project import ProjectInfo

MODEL_STAGE = "train"


def explain(project: ProjectInfo, candidate: str) -> dict[str, Any]:
    model_id = resolve_candidate(project, candidate)
    runs = query.runs(project)
    evaluations = [_evaluation(r) for r in runs if r["stage"] == "evaluate"
                   and model_id in (r["result"].get("candidate_id"),
                                    (r["inputs"] or {}).get("model"))]
    traced = lineage.trace(project, model_id)
    reports = {e["report_id"] for e in evaluations if e["report_id"]}
    downstream = [r for r in runs if r["stage"] != "evaluate" and set(
        (r["inputs"] or {}).values()) & ({model_id} | reports)]
    involved = ({n["run"]["run_id"] for n in traced["nodes"] if n["run"]}
                | {e["run_id"] for e in evaluations} | {r["run_id"] for r in downstream})
    forced = _forced(project, runs, involved)
    decided = [e for e in evaluations if e["promotable"] is not None]
    latest = decided[-1] if decided else None
    out = {"project": project.name, "query": candidate, "candidate_id": model_id,
           "training_run": (traced["nodes"][0]["run"] or {}).get("run_id"),
           "verdict": _verdict(latest), "decided_by": latest["run_id"] if latest else None,
           "evaluations": evaluations, "forced": forced,
           "used_by": [_brief(r) for r in downstream], "lineage": traced}
    out["explanation"] = explain_lines(out)
    return out


def resolve_candidate(project: ProjectInfo, candidate: str) -> str:
    """The model artifact id a user means by a run id, a model id, or something made from it."""
    if candidate.startswith("run-"):
        run = query.get_run(project, candidate)
        slots = run["outputs"] if run["stage"] == MODEL_STAGE else run["inputs"]
        model = (slots or {}).get("model")
        if not model:
            raise NotFoundError("audit_candidate_unknown", f"run {candidate} ({run['stage']}) "
                                "neither trained nor used a model", candidate=candidate)
        return model
    traced = lineage.trace(project, candidate)
    for node in traced["nodes"]:  # walk order: the nearest model upstream
        if node["run"] and node["run"]["stage"] == MODEL_STAGE:
            return node["id"]
    raise NotFoundError("audit_candidate_unknown", f"{candidate!r} is a "
                        f"{traced['nodes'][0]['kind']}, neither a trained model nor made from "
                        "one", candidate=candidate)


def _evaluation(run: dict[str, Any]) -> dict[str, Any]:
    res = run["result"] or {}
    pack = res.get("pack") or (run["parameters"] or {}).get("pack") or {}
    return {"run_id": run["run_id"], "status": run["status"], "started_at": run["started_at"],
            "by": _by(run), "pack": {"name": pack.get("name"), "version": pack.get("version")},
            "promotable": res.get("promotable"), "required_failed": res.get("required_failed"),
            "gates": [{k: g.get(k) for k in ("id", "required", "passed", "metric", "value",
                                              "base_value", "threshold", "evidence")}
                      for g in res.get("gates") or []],
            "report_id": res.get("report_id") or (run["outputs"] or {}).get("eval_report"),
            "error_code": run["error_code"], "error_message": run["error_message"]}


def _forced(project: ProjectInfo, runs: list[dict[str, Any]],
            involved: set[str]) -> list[dict[str, Any]]:
    by_id = {r["run_id"]: r for r in runs}
    found = []
    for ev in query.events(project):
        if ev["reason_code"].endswith("_forced") and ev["run_id"] in involved:
            code = taxonomy.lookup(ev["reason_code"])
            found.append({"at": ev["created_at"], "code": ev["reason_code"], "stage": ev["stage"],
                          "run_id": ev["run_id"], "summary": ev["summary"],
                          "meaning": code.meaning, "payload": ev["payload"],
                          "by": _by(by_id.get(ev["run_id"]))})
    flagged = {f["run_id"] for f in found}
    for run in runs:  # a force that no event explains is still a force
        if run["run_id"] in involved and run["run_id"] not in flagged and (
                run["parameters"] or {}).get("force"):
            found.append({"at": run["started_at"], "code": None, "stage": run["stage"],
                          "run_id": run["run_id"], "summary": f"{run['stage']} ran with --force",
                          "meaning": None, "payload": {}, "by": _by(run)})
    return sorted(found, key=lambda f: f["at"] or "")


def _by(run: dict[str, Any] | None) -> str | None:
    if not run or not run.get("host"):
        return None
    return f"{run['host']} pid {run['pid']}"


def _brief(run: dict[str, Any]) -> dict[str, Any]:
    return {k: run[k] for k in ("run_id", "stage", "status", "started_at", "error_code")}


def _verdict(latest: dict[str, Any] | None) -> str:
    if latest is None:
        return "not evaluated"
    return "promotable" if latest["promotable"] else "not promotable"


def explain_lines(out: dict[str, Any]) -> list[str]:
    """The answer in sentences, the same on every face."""
    evals = out["evaluations"]
    lines = []
    if not evals:
        lines.append(f"model {out['candidate_id'][:12]} has never been evaluated.")
    for e in evals:
        pack = f"pack {e['pack']['name']} v{e['pack']['version']}"
        if e["promotable"] is None:
            lines.append(f"{e['run_id']} ({pack}) {e['status']}: {e['error_code']}: "
                         f"{e['error_message']}")
            continue
        verdict = ("PROMOTABLE: every required gate passed" if e["promotable"] else
                   "NOT PROMOTABLE: required gate(s) failed: " + ", ".join(e["required_failed"]))
        lines.append(f"{e['run_id']} ({pack}, {e['started_at']}) found it {verdict}.")
        for g in e["gates"]:
            mark = "pass" if g["passed"] else "FAIL"
            kind = "required" if g["required"] else "advisory"
            lines.append(f"  {mark} {g['id']} ({kind}): {g['evidence']}")
    for f in out["forced"]:
        who = f" by {f['by']}" if f["by"] else ""
        lines.append(f"forced: {f['stage']} {f['run_id']}{who}: {f['summary']}")
    for r in out["used_by"]:
        lines.append(f"used by {r['stage']} {r['run_id']} ({r['status']}).")
    return lines
