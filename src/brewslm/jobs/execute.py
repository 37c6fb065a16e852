"""Run one job in this process: the executor a worker starts as a child,
`python -m brewslm.jobs.execute JOB_ID`, with stdout and stderr going to the job's log.

It calls the stage's service function with the job's parameters (kinds.call), writes the
stage's progress into the job (at most every PROGRESS_EVERY_S) and a heartbeat every
HEARTBEAT_S, and stores the result: the same JSON the CLI prints with --json. A cancel request
seen by the heartbeat makes the process send itself SIGTERM: training saves a checkpoint and
stops (train_cancelled), any other stage is interrupted (its run marked failed, nothing
half-written). The job ends cancelled then.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from brewslm import progress
from brewslm import project as projects
from brewslm.errors import BrewError
from brewslm.events import emit_event
from brewslm.jobs import kinds, service

PROGRESS_EVERY_S = 0.5
CANCELLED_CODES = ("train_cancelled", "stage_interrupted")
FINAL_EVENTS = {"succeeded": ("job_succeeded", "info"), "failed": ("job_failed", "error"),
                "blocked": ("job_blocked", "warning"), "cancelled": ("job_cancelled", "warning")}


def main(job_id: str) -> int:
    job = service.get(job_id)
    info = projects.get(job["project"])
    service.update_job(job_id, pid=os.getpid(), heartbeat_at=_now())
    stop = threading.Event()
    threading.Thread(target=_heartbeat, args=(job_id, stop), daemon=True).start()
    signal.signal(signal.SIGTERM, _interrupt)
    _log(f"job {job_id}: {job['kind']} on project {info.name} with {job['params']}")
    try:
        with progress.reporting(_reporter(job_id)):
            status, result, code, message, exit_code = _run(job, info)
    finally:
        stop.set()
    if status == "failed" and (code in CANCELLED_CODES or _cancel_requested(job_id)):
        status = "cancelled"
    service.finish(job_id, status, result=result, exit_code=exit_code, error_code=code,
                   error_message=message)
    event, severity = FINAL_EVENTS[status]
    emit_event(event, f"{job['kind']} job {job_id} {status}" + (f" [{code}]" if code else ""),
               project_id=info.id, stage=job["kind"], severity=severity,
               payload={"job_id": job_id, "cause": code, "run_id": (result or {}).get("run_id")})
    _log(f"job {job_id}: {status}" + (f" [{code}] {message}" if code else ""))
    return 0


def _run(job: dict[str, Any], info: projects.ProjectInfo) -> tuple[Any, ...]:
    """(status, result, error code, message, exit code) of calling the stage."""
    try:
        result = kinds.call(job["kind"], info, job["params"])
    except BrewError as exc:
        return "failed", {"error": exc.to_dict()}, exc.code, exc.message, exc.exit_code
    except KeyboardInterrupt:
        return "cancelled", None, "job_cancelled", "interrupted by a cancel request", 130
    except Exception as exc:  # a crash is the job's outcome, with its traceback in the log
        traceback.print_exc()
        return "failed", None, "job_crashed", f"{type(exc).__name__}: {exc}", 1
    if isinstance(result, dict):  # the autopilot: a summary of its steps
        stopped = result["status"] == "stopped"
        return ("blocked" if stopped else "succeeded", result,
                result.get("cause") if stopped else None, result.get("why"), 3 if stopped else 0)
    out = result.to_dict()
    status = {"succeeded": "succeeded", "reused": "succeeded"}.get(result.status, result.status)
    error = out.get("error") or {}
    return status, out, error.get("code"), error.get("message"), result.exit_code


def _reporter(job_id: str) -> progress.Reporter:
    last = {"at": 0.0}

    def report(task: str, done: int, total: int | None, fields: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - last["at"] < PROGRESS_EVERY_S and done != total:
            return
        last["at"] = now
        values = {"progress": {"task": task, "done": done, "total": total,
                               "fields": {k: v for k, v in fields.items() if k != "run_id"},
                               "updated_at": _now().isoformat()}}
        if fields.get("run_id"):
            values["run_id"] = fields["run_id"]
        service.update_job(job_id, **values)
        _log(f"progress {task}: {done}/{total if total is not None else '?'} "
             + " ".join(f"{k}={v}" for k, v in fields.items() if k != "run_id"))

    return report


def _heartbeat(job_id: str, stop: threading.Event) -> None:
    signalled = False
    while not stop.wait(service.HEARTBEAT_S):
        try:
            service.update_job(job_id, heartbeat_at=_now())
            if not signalled and _cancel_requested(job_id):
                signalled = True
                _log(f"job {job_id}: cancel requested, stopping")
                os.kill(os.getpid(), signal.SIGTERM)
        except Exception:  # the database may be briefly unavailable: try at the next beat
            traceback.print_exc()


def _cancel_requested(job_id: str) -> bool:
    return bool(service.get(job_id)["cancel_requested"])


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _log(line: str) -> None:
    print(f"{_now().isoformat(timespec='seconds')} {line}", flush=True)


def _now() -> datetime:
    return datetime.now(UTC)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
