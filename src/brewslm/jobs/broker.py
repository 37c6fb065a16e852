"""Jobs through a task queue: RQ (Redis Queue) over Redis. With BREWSLM_QUEUE_URL set
(`redis://HOST:6379/0`), `service.submit` stores the job with queue "broker" and calls
enqueue(); `brewslm worker` on any machine that reaches Redis, the database
(BREWSLM_DATABASE_URL) and the same BREWSLM_HOME runs them. Needs the `queue` extra.

    redis-server --bind 127.0.0.1 --port 6379 --save "" &
    export BREWSLM_QUEUE_URL=redis://127.0.0.1:6379/0
    brewslm train -p NAME --detach           # queued in the database, enqueued on "brewslm"
    brewslm worker [--once]                  # run_worker(): --once drains the queue and exits

Redis carries only the job id: the database stays the record. An RQ worker runs execute(id),
which waits its turn on the project (one broker job per project at a time; a CLI run holding
the project lock is waited for), claims the job (a cancelled or already claimed job is skipped,
so a job enqueued twice still runs once) and runs it as the embedded worker does, in a child
process (`python -m brewslm.jobs.execute ID`) that records progress, heartbeats, cancel and
the result. A job whose enqueue failed (Redis down) stays queued with job_queue_unavailable
and is enqueued again by the next worker to start, or by a running one's 10-minute maintenance.

The worker is RQ's forking Worker: each job runs in a forked work horse while the parent keeps
RQ's heartbeats (long training is never reaped as abandoned) and takes Ctrl-C as a warm
shutdown (the running job finishes; twice stops it). The parent touches the database only in
its sweep and closes every connection after it, so no horse inherits an open one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from brewslm.errors import InputError
from brewslm.events import emit_event

QUEUE = "brewslm"
TURN_WAIT_S = 1.0  # how often a job waiting for its project looks again
CONNECT_TIMEOUT_S = 5.0  # a submit never hangs longer than this on an unreachable broker
HELD = ("queued", "started", "deferred", "scheduled")  # RQ statuses that will still run


def url() -> str | None:
    return os.environ.get("BREWSLM_QUEUE_URL") or None


def enqueue(job_id: str) -> bool:
    """Hand a stored job to the queue. When that fails (rq or redis not installed, Redis
    unreachable) the job stays queued with job_queue_unavailable on it and in the events, and
    submit still returns it; a worker's sweep enqueues it later. Returns whether it went."""
    try:
        _push(job_id)
    except InputError as exc:
        _record_unavailable(job_id, exc)
        return False
    return True


def execute(job_id: str) -> dict[str, Any] | None:
    """What an RQ worker runs: the job in a child process, once its project is free and the
    claim is won; None when it was cancelled or claimed elsewhere meanwhile."""
    from brewslm.jobs import service, worker

    with _project_turn(job_id) as ready:
        if not ready or not service.claim(job_id, service.this_worker()):
            return None
        exit_code = worker.run_child(job_id)
    return {"job_id": job_id, "status": service.get(job_id)["status"], "exit_code": exit_code}


def run_worker(burst: bool = False) -> bool:
    """An RQ worker on the "brewslm" queue at url(); burst: exit once the queue is empty."""
    rq, redis = _libraries()
    conn = _connect(redis)
    queue = rq.Queue(QUEUE, connection=conn)
    _log_to_stderr()
    try:
        return _worker_class(rq)([queue], connection=conn).work(burst=burst)
    except redis.exceptions.ConnectionError as exc:
        raise _unavailable(f"cannot reach the task queue at {redacted(url())}: {exc}") from None


def requeue_stranded(queue: Any) -> list[str]:
    """Enqueue again each queued broker job that the queue does not hold (its enqueue failed,
    or Redis lost it); the job's job_queue_unavailable mark is cleared."""
    from brewslm.jobs import service
    from brewslm.store import db

    try:
        sent = [job_id for job_id, _ in service.next_queued("broker")
                if not _held(queue, job_id)]
        for job_id in sent:
            _push_to(queue, job_id)
            service.update_job(job_id, error_code=None, error_message=None)
        return sent
    finally:
        db.reset_engines()  # a forked work horse must not inherit this process's connections


def redacted(address: str | None) -> str:
    """The URL without its password, for messages and events."""
    parts = urlsplit(address or "")
    if parts.password is None:
        return address or ""
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _push(job_id: str) -> None:
    rq, redis = _libraries()
    try:
        _push_to(rq.Queue(QUEUE, connection=_connect(redis)), job_id)
    except redis.exceptions.RedisError as exc:
        raise _unavailable(f"cannot reach the task queue at {redacted(url())}: {exc}; the "
                           "job stays queued until a worker enqueues it again",
                           job_id=job_id) from None


def _push_to(queue: Any, job_id: str) -> None:
    """The RQ job has the job's id; no time limit (training runs for hours) and a week of
    failure records."""
    queue.enqueue_call(f"{__name__}.execute", args=(job_id,), job_id=job_id, timeout=-1,
                       result_ttl=86400, failure_ttl=7 * 86400,
                       description=f"brewslm job {job_id}")


def _held(queue: Any, job_id: str) -> bool:
    job = queue.fetch_job(job_id)
    return job is not None and job.get_status(refresh=False) in HELD


def _libraries() -> tuple[Any, Any]:
    try:
        import redis
        import rq
    except ImportError as exc:
        raise _unavailable(f"BREWSLM_QUEUE_URL is set but the task-queue client is not "
                           f"installed ({exc.name}): pip install 'brewslm[queue]'") from None
    return rq, redis


def _connect(redis: Any) -> Any:
    address = url()
    if not address:
        raise _unavailable("BREWSLM_QUEUE_URL is not set: name the Redis to use, "
                           "e.g. redis://127.0.0.1:6379/0")
    try:
        return redis.Redis.from_url(address, socket_connect_timeout=CONNECT_TIMEOUT_S)
    except ValueError as exc:
        raise _unavailable(f"BREWSLM_QUEUE_URL {redacted(address)!r} is not a Redis URL "
                           f"(redis://, rediss:// or unix://): {exc}") from None


def _worker_class(rq: Any) -> type:
    class BrewWorker(rq.Worker):
        """RQ's forking worker whose maintenance (at start, then every 10 minutes) also
        enqueues stranded jobs."""

        def run_maintenance_tasks(self) -> None:
            super().run_maintenance_tasks()
            try:
                sent = requeue_stranded(self.queues[0])
            except Exception as exc:  # the database may be away: the next sweep tries again
                self.log.warning("brewslm: stranded jobs not enqueued: %s", exc)
                return
            if sent:
                self.log.info("brewslm: enqueued stranded jobs %s", ", ".join(sent))

    return BrewWorker


def _log_to_stderr() -> None:
    """RQ's lines on stderr (RQ would print them on stdout): stdout stays for results."""
    logger = logging.getLogger("rq")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False


@contextmanager
def _project_turn(job_id: str) -> Iterator[bool]:
    """Hold the project's broker-job lock (PROJECT_DIR/jobs/.broker.lock, released by the
    kernel when this process dies) with the project lock free; yields False instead when the
    job stops being queued while it waits (cancelled, or run by another worker)."""
    from brewslm import locks
    from brewslm import project as projects
    from brewslm.jobs import service

    project_dir = projects.get(service.get(job_id)["project"]).dir
    path = project_dir / "jobs" / ".broker.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            if service.get(job_id)["status"] != "queued":
                yield False
                return
            if _try_lock(fd) and not locks.is_locked(project_dir):
                yield True
                return
            time.sleep(TURN_WAIT_S)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _record_unavailable(job_id: str, exc: InputError) -> None:
    from brewslm import project as projects
    from brewslm.jobs import service

    service.update_job(job_id, error_code=exc.code, error_message=exc.message)
    job = service.get(job_id)
    emit_event("job_queue_unavailable", f"job {job_id} not enqueued: {exc.message}",
               project_id=projects.get(job["project"]).id, stage=job["kind"],
               severity="error", payload={"job_id": job_id, "queue_url": redacted(url()),
                                          **exc.details})


def _unavailable(message: str, **details: Any) -> InputError:
    return InputError("job_queue_unavailable", message, **details)

