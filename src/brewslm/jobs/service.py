"""Jobs in the store: submit, read, list, cancel, retry, and recover the ones whose worker died.

    from brewslm.jobs import service
    job = service.submit(project, "prepare", {"eval_fraction": 0.1})
    service.get(job["id"]); service.list_jobs(project); service.log_tail(job["id"], 50)
    service.cancel(job["id"]); service.retry(job["id"]); service.recover_lost()

Statuses: queued -> running -> succeeded / failed / blocked / cancelled. A running job's
executor writes a heartbeat every HEARTBEAT_S; one silent for LOST_AFTER_S is marked failed
(job_worker_lost) by the next worker or listing, and may be retried (a new job with the same
kind and parameters, `retry_of` pointing back).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from brewslm.errors import InputError, NotFoundError
from brewslm.events import emit_event
from brewslm.jobs import kinds
from brewslm.project import ProjectInfo
from brewslm.store import session
from brewslm.store.models import Job, Project

HEARTBEAT_S = 2.0
LOST_AFTER_S = float(os.environ.get("BREWSLM_JOB_LOST_AFTER_S", "30"))
FINAL = ("succeeded", "failed", "blocked", "cancelled")


def submit(project: ProjectInfo, kind: str, params: dict[str, Any] | None = None, *,
           retry_of: str | None = None) -> dict[str, Any]:
    """Store a queued job (refusing an unknown kind or parameters at once) and hand it to the
    broker when one is configured; the embedded worker polls for the rest."""
    from brewslm.jobs import broker

    checked = kinds.check_params(kind, params or {})
    job_id = "job-" + uuid.uuid4().hex[:16]
    queue = "broker" if broker.url() else "embedded"
    with session() as s:
        s.add(Job(id=job_id, project_id=project.id, kind=kind, params=checked, status="queued",
                  queue=queue, retry_of=retry_of, cancel_requested=False,
                  log_path=str(log_path(project, job_id))))
    emit_event("job_queued", f"{kind} job {job_id} queued ({queue})", project_id=project.id,
               stage=kind, payload={"job_id": job_id, "params": checked, "retry_of": retry_of})
    if queue == "broker":
        broker.enqueue(job_id)
    return get(job_id)


def log_path(project: ProjectInfo, job_id: str) -> Path:
    return project.dir / "jobs" / f"{job_id}.log"


def get(job_id: str) -> dict[str, Any]:
    with session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFoundError("job_unknown", f"no job {job_id!r}", job_id=job_id)
        name = s.get(Project, job.project_id).name
        return job_dict(job, name)


def list_jobs(project: ProjectInfo | None = None, *, status: str | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
    recover_lost()
    with session() as s:
        q = select(Job, Project.name).join(Project, Project.id == Job.project_id)
        if project is not None:
            q = q.where(Job.project_id == project.id)
        if status is not None:
            q = q.where(Job.status == status)
        rows = s.execute(q.order_by(Job.created_at.desc()).limit(limit)).all()
        return [job_dict(job, name) for job, name in rows]


def cancel(job_id: str) -> dict[str, Any]:
    """A queued job is cancelled at once; a running one is asked to stop (its executor sends
    itself SIGTERM: training saves a checkpoint first). Finished jobs are refused."""
    with session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFoundError("job_unknown", f"no job {job_id!r}", job_id=job_id)
        if job.status in FINAL:
            raise InputError("job_not_cancellable", f"job {job_id} already {job.status}",
                             job_id=job_id, status=job.status)
        project_id, kind = job.project_id, job.kind
        if job.status == "queued":
            job.status, job.finished_at = "cancelled", _now()
            job.error_code, job.error_message = "job_cancelled", "cancelled before it started"
        else:
            job.cancel_requested = True
    emit_event("job_cancel_requested", f"cancel of job {job_id} requested",
               project_id=project_id, stage=kind, payload={"job_id": job_id})
    return get(job_id)


def retry(job_id: str) -> dict[str, Any]:
    """A new job with the same kind and parameters as a failed, blocked or cancelled one."""
    from brewslm import project as projects

    old = get(job_id)
    if old["status"] not in ("failed", "blocked", "cancelled"):
        raise InputError("job_not_retryable", f"job {job_id} is {old['status']}: only failed, "
                         "blocked or cancelled jobs are retried", job_id=job_id)
    return submit(projects.get(old["project"]), old["kind"], old["params"], retry_of=job_id)


def claim(job_id: str, worker: str) -> bool:
    """Atomically move a queued job to running for this worker (two workers never both win)."""
    with session() as s:
        done = s.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(
            status="running", worker=worker, started_at=_now(), heartbeat_at=_now()))
        return done.rowcount == 1


def next_queued(queue: str = "embedded") -> list[tuple[str, str]]:
    """(job id, project id) of queued jobs, oldest first."""
    with session() as s:
        return [(j, p) for j, p in s.execute(
            select(Job.id, Job.project_id).where(Job.status == "queued", Job.queue == queue)
            .order_by(Job.created_at)).all()]


def update_job(job_id: str, **values: Any) -> None:
    with session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(**values))


def finish(job_id: str, status: str, *, result: dict[str, Any] | None = None,
           exit_code: int | None = None, error_code: str | None = None,
           error_message: str | None = None) -> None:
    """Record the outcome once: a job already final is left as it is."""
    with session() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.status.not_in(FINAL)).values(
            status=status, result=result, exit_code=exit_code, error_code=error_code,
            error_message=error_message, finished_at=_now()))


def recover_lost(lost_after_s: float | None = None) -> list[str]:
    """Mark failed (job_worker_lost) every running job whose heartbeat stopped."""
    limit = _now() - timedelta(seconds=LOST_AFTER_S if lost_after_s is None else lost_after_s)
    with session() as s:
        lost = s.execute(select(Job.id, Job.project_id, Job.kind, Job.worker).where(
            Job.status == "running", Job.heartbeat_at < limit)).all()
    for job_id, project_id, kind, worker in lost:
        finish(job_id, "failed", exit_code=1, error_code="job_worker_lost",
               error_message=f"the worker {worker} stopped sending heartbeats (it died or lost "
                             "the database); retry the job")
        emit_event("job_worker_lost", f"job {job_id} lost its worker {worker}",
                   project_id=project_id, stage=kind, severity="error",
                   payload={"job_id": job_id, "worker": worker})
    return [j for j, *_ in lost]


def log_tail(job_id: str, lines: int = 100) -> dict[str, Any]:
    job = get(job_id)
    path = Path(job["log_path"]) if job["log_path"] else None
    text = path.read_text(encoding="utf-8", errors="replace") if path and path.exists() else ""
    tail = text.splitlines()[-lines:] if lines else text.splitlines()
    return {"job_id": job_id, "status": job["status"], "lines": tail, "path": str(path)}


def job_dict(job: Job, project_name: str) -> dict[str, Any]:
    return {"id": job.id, "project": project_name, "kind": job.kind, "params": job.params,
            "status": job.status, "queue": job.queue, "progress": job.progress,
            "result": job.result, "exit_code": job.exit_code, "error_code": job.error_code,
            "error_message": job.error_message, "run_id": job.run_id,
            "log_path": job.log_path, "worker": job.worker, "pid": job.pid,
            "cancel_requested": job.cancel_requested, "retry_of": job.retry_of,
            "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
            "heartbeat_at": _iso(job.heartbeat_at), "finished_at": _iso(job.finished_at)}


def this_worker() -> str:
    from brewslm import locks

    return f"{locks.this_host()}:{os.getpid()}"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None

