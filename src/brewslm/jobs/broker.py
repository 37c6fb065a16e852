"""Jobs through a task queue: when BREWSLM_QUEUE_URL names a broker, submitted jobs are
enqueued there and `brewslm worker` on any machine (sharing the database and BREWSLM_HOME)
picks them up. Placeholder until the broker backend lands: without a URL nothing here runs.
"""

from __future__ import annotations

import os

from brewslm.errors import InputError


def url() -> str | None:
    return os.environ.get("BREWSLM_QUEUE_URL") or None


def enqueue(job_id: str) -> None:
    raise InputError("job_queue_unavailable", "BREWSLM_QUEUE_URL is set but no task-queue "
                     "backend is available", job_id=job_id)
