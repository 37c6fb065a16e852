"""Endpoint telemetry: every request `brewslm serve` answers is a ServeRequest row, aggregated
per deployment version into requests, errors, latency p50/p95/p99, time to first token and
tokens/s.

    from brewslm.serving import telemetry
    record = telemetry.recorder(project)      # give to create_serving_app(record=...)
    telemetry.summary(project, version=2)     # {"requests", "errors", "latency_s": {...}, ...}
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select

from brewslm.project import ProjectInfo
from brewslm.store import session
from brewslm.store.models import ServeRequest

PROMPT_CHARS = 4000  # what drift needs of a prompt; the rest is not kept
FLUSH_EVERY_S = 0.25
log = logging.getLogger(__name__)


def recorder(project: ProjectInfo) -> Callable[[Any], None]:
    """A callback storing RequestRecords (serving.openai_app) as ServeRequest rows. Records are
    buffered and written in batches by a background thread (every FLUSH_EVERY_S): one database
    commit per request would cost more than a short completion takes to generate."""
    found = _Recorder(project)
    _LIVE.add(found)
    return found


def flush_all() -> None:
    """Write every buffered record now (summary() and process exit call it)."""
    for live in list(_LIVE):
        live.flush()


class _Recorder:
    def __init__(self, project: ProjectInfo) -> None:
        self.project = project
        self.pending: list[Any] = []
        self.lock = threading.Lock()  # held while writing, so flush() returns after a write
        self.wake = threading.Event()
        threading.Thread(target=self._loop, daemon=True, name="telemetry").start()

    def __call__(self, rec: Any) -> None:
        self.pending.append(rec)  # list.append is atomic: no lock on the request path
        self.wake.set()

    def flush(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
            if batch:
                self._write(batch)

    def _loop(self) -> None:
        while True:
            self.wake.wait()
            time.sleep(FLUSH_EVERY_S)  # gather what arrives meanwhile into one commit
            self.wake.clear()
            try:
                self.flush()
            except Exception:  # a failed write must not stop telemetry for good
                log.exception("telemetry write failed")

    def _write(self, batch: list[Any]) -> None:
        with session() as s:
            s.add_all([ServeRequest(
                project_id=self.project.id, deployment_id=rec.deployment_id,
                version=rec.version, endpoint=rec.endpoint, http_status=rec.http_status,
                ok=rec.ok, stream=rec.stream, latency_s=rec.latency_s, ttft_s=rec.ttft_s,
                prompt_tokens=rec.prompt_tokens, completion_tokens=rec.completion_tokens,
                prompt_text=(rec.prompt_text or "")[:PROMPT_CHARS] or None,
                error_code=rec.error_code, created_at=rec.started_at) for rec in batch])


_LIVE: weakref.WeakSet[_Recorder] = weakref.WeakSet()
atexit.register(flush_all)


def requests(project: ProjectInfo, version: int | None = None) -> list[ServeRequest]:
    flush_all()
    with session() as s:
        q = select(ServeRequest).where(ServeRequest.project_id == project.id)
        if version is not None:
            q = q.where(ServeRequest.version == version)
        rows = s.scalars(q.order_by(ServeRequest.id)).all()
        s.expunge_all()
        return list(rows)


def summary(project: ProjectInfo, version: int | None = None) -> dict[str, Any]:
    """Per version (or all versions) counts, latency and throughput figures."""
    rows = requests(project, version)
    ok = [r for r in rows if r.ok]
    completion = sum(r.completion_tokens for r in ok)
    busy = sum(r.latency_s for r in ok)
    return {"version": version, "requests": len(rows), "errors": len(rows) - len(ok),
            "error_rate": round((len(rows) - len(ok)) / len(rows), 4) if rows else None,
            "by_status": _count(str(r.http_status) for r in rows),
            "latency_s": _percentiles([r.latency_s for r in ok]),
            "ttft_s": _percentiles([r.ttft_s for r in ok if r.ttft_s is not None]),
            "prompt_tokens": sum(r.prompt_tokens for r in ok), "completion_tokens": completion,
            "tokens_per_s": round(completion / busy, 2) if busy else None,
            "first": rows[0].created_at.isoformat() if rows else None,
            "last": rows[-1].created_at.isoformat() if rows else None}


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "mean": None}
    arr = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": round(float(p50), 5), "p95": round(float(p95), 5),
            "p99": round(float(p99), 5), "mean": round(float(arr.mean()), 5)}


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out
