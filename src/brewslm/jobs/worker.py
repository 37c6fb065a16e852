"""The embedded worker: runs queued jobs one at a time, each in a child process
(`python -m brewslm.jobs.execute JOB_ID`), with no server beyond the database.

    brewslm worker                      # alone, until Ctrl-C
    brewslm server                      # the API with this worker in a thread
    from brewslm.jobs.worker import run_worker, start_in_thread
    run_worker(once=True)               # run what is queued now, then return (tests)

A project whose stage lock is held (a CLI run, or another worker's job) is skipped until the
lock is free, so the lock applies to jobs too. Jobs whose executor stopped sending heartbeats
are marked failed (job_worker_lost) on each pass. With BREWSLM_QUEUE_URL set, jobs go through
the broker instead (broker.py) and this loop leaves them alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from brewslm import locks
from brewslm import project as projects
from brewslm.jobs import service


def run_worker(*, stop: threading.Event | None = None, poll_s: float = 0.5,
               once: bool = False) -> int:
    """Run queued jobs until `stop` is set (or, with once, until none is runnable); returns
    how many ran."""
    stop = stop or threading.Event()
    name, ran = service.this_worker(), 0
    while not stop.is_set():
        service.recover_lost()
        job_id = _claim_next(name)
        if job_id is not None:
            run_child(job_id)
            ran += 1
        elif once:
            break
        else:
            stop.wait(poll_s)
    return ran


def _claim_next(worker: str) -> str | None:
    for job_id, _project_id in service.next_queued():
        info = projects.get(service.get(job_id)["project"])
        if locks.is_locked(info.dir):
            continue  # the project is busy: its job waits for the lock
        if service.claim(job_id, worker):
            return job_id
    return None


def run_child(job_id: str) -> int:
    """Execute a claimed job in a child process; a child that dies without recording an
    outcome leaves the job failed (job_crashed) with its exit status."""
    job = service.get(job_id)
    log = Path(job["log_path"])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.run([sys.executable, "-m", "brewslm.jobs.execute", job_id],
                              stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(),
                              check=False)
    if service.get(job_id)["status"] == "running":
        service.finish(job_id, "failed", exit_code=proc.returncode, error_code="job_crashed",
                       error_message=f"the executor exited with status {proc.returncode} "
                                     "without recording an outcome")
    return proc.returncode


def start_in_thread(poll_s: float = 0.5) -> tuple[threading.Thread, threading.Event]:
    """The worker as a daemon thread (for `brewslm server`); set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, kwargs={"stop": stop, "poll_s": poll_s},
                              daemon=True, name="brewslm-worker")
    thread.start()
    return thread, stop
