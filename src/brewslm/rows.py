"""What happened to the rows: per-stage accounting and one row's whole story.

    brewslm rows -p NAME stats          # per run: in, out, dropped by reason; flags in!=out+dropped
    brewslm rows -p NAME trace ROW_ID   # every stage's entry for the row, oldest first

Both read the ledger files themselves (not only the counts the runner recorded), so a ledger
that disagrees with its run is caught.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from brewslm.errors import NotFoundError
from brewslm.events import query, taxonomy
from brewslm.ledger import find_row, ledger_path, recount
from brewslm.project import ProjectInfo


def _ledger_runs(project: ProjectInfo) -> list[tuple[dict[str, Any], Path]]:
    """Runs that committed a ledger, oldest first, with their file: succeeded runs, and runs
    a gate refused after their outputs were kept (an evaluation that was not promotable)."""
    out = []
    for run in query.runs(project):
        path = ledger_path(project.dir, run["stage"], run["run_id"])
        committed = run["status"] in ("succeeded", "blocked") and run["ledger"] is not None
        if committed and path.exists():
            out.append((run, path))
    return out


def stats(project: ProjectInfo) -> dict[str, Any]:
    stages = []
    for run, path in _ledger_runs(project):
        counted = recount(path)
        counted.rows_in = run["ledger"]["in"]
        entry = {"stage": run["stage"], "run_id": run["run_id"], "started_at": run["started_at"],
                 **counted.to_dict()}
        entry["matches_run_record"] = (counted.out == run["ledger"]["out"]
                                       and counted.dropped == run["ledger"]["dropped"])
        entry["flagged"] = not (counted.balanced and entry["matches_run_record"])
        stages.append(entry)
    return {"project": project.name, "stages": stages,
            "flagged": [s["run_id"] for s in stages if s["flagged"]]}


def trace(project: ProjectInfo, row_id: str) -> dict[str, Any]:
    steps = []
    for run, path in _ledger_runs(project):
        for hit in find_row(path, row_id):
            steps.append(_step(run, hit, row_id))
    if not steps:
        raise NotFoundError("row_not_found", f"no ledger entry for row {row_id!r} in project "
                            f"{project.name!r}")
    return {"project": project.name, "row_id": row_id, "steps": steps,
            "final": _final_state(steps)}


def _step(run: dict[str, Any], hit: dict[str, Any], row_id: str) -> dict[str, Any]:
    step = {"stage": run["stage"], "run_id": run["run_id"], "at": run["started_at"],
            **{k: v for k, v in hit.items() if v is not None}}
    if hit["row_id"] != row_id:
        step["child_of"] = row_id
    if hit.get("detail") and hit["detail"].startswith("{"):
        step["detail"] = json.loads(hit["detail"])
    if hit.get("reason_code") and taxonomy.is_known(hit["reason_code"]):
        code = taxonomy.lookup(hit["reason_code"])
        step["meaning"], step["hint"] = code.meaning, code.hint
    return step


def _final_state(steps: list[dict[str, Any]]) -> str:
    own = [s for s in steps if "child_of" not in s]
    if not own:
        return "added"
    last = own[-1]
    if last["outcome"] == "dropped":
        return f"dropped at {last['stage']} ({last['reason_code']})"
    return f"{last['outcome']} at {last['stage']}"
