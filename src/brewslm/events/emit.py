"""emit_event: the one way a RunEvent is written.

    emit_event("stage_started", "ingest started", project_id=p.id, run_id=run_id)

The event is committed before emit_event returns, so it survives a kill -9 of the process
right after. Writing an event never raises into the caller: if the database refuses it, the
event goes to BREWSLM_HOME/events-fallback.jsonl and a warning to stderr. An unknown reason
code raises UnknownReasonCode under BREWSLM_STRICT_CODES=1 (tests); in use it is stored as an
`invalid_reason_code` system event naming the bad code, so nothing crashes and nothing is lost.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from brewslm import config
from brewslm.events import taxonomy
from brewslm.store import db
from brewslm.store.models import RunEvent

# SQLite has one writer; serialising in-process writers avoids busy-wait sleeps in sqlite.
_sqlite_write_lock = threading.Lock()
# Built once: compiling a fresh INSERT per event cost more than the write itself.
_INSERT = insert(RunEvent.__table__)
_collector: ContextVar[list[dict[str, Any]] | None] = ContextVar("event_collector", default=None)


def emit_event(
    reason_code: str,
    summary: str,
    *,
    project_id: str | None = None,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    stage: str | None = None,
    severity: str | None = None,
    payload: dict[str, Any] | None = None,
) -> int | None:
    """Write one event and return its id (None when it went to the fallback file)."""
    row = _build_row(reason_code, summary, project_id, run_id, parent_run_id, stage, severity,
                     payload)
    event_id = _write(row)
    collected = _collector.get()
    if collected is not None:
        collected.append({"id": event_id, "reason_code": row["reason_code"],
                          "severity": row["severity"], "summary": row["summary"]})
    return event_id


@contextmanager
def collect_events() -> Iterator[list[dict[str, Any]]]:
    """Gather the events emitted inside the block (the stage runner reports them)."""
    events: list[dict[str, Any]] = []
    token = _collector.set(events)
    try:
        yield events
    finally:
        _collector.reset(token)


def _build_row(reason_code, summary, project_id, run_id, parent_run_id, stage, severity,
               payload) -> dict[str, Any]:
    payload = _jsonable(payload or {})
    bad = [c for c in (reason_code, payload.get("cause")) if c and not taxonomy.is_known(c)]
    if bad:
        if config.strict_reason_codes():
            raise taxonomy.UnknownReasonCode(f"reason code {bad[0]!r} is not in the taxonomy")
        payload = {"invalid_code": bad[0], "intended": {"reason_code": reason_code,
                                                         "stage": stage, "payload": payload}}
        reason_code, severity, stage = "invalid_reason_code", None, "system"
    code = taxonomy.lookup(reason_code)
    if severity not in taxonomy.SEVERITIES:
        if severity is not None and config.strict_reason_codes():
            raise ValueError(f"severity {severity!r} is not one of {taxonomy.SEVERITIES}")
        severity = code.severity
    return {"project_id": project_id, "run_id": run_id, "parent_run_id": parent_run_id,
            "stage": stage or code.stage, "severity": severity, "reason_code": reason_code,
            "summary": str(summary), "payload": payload, "created_at": datetime.now(UTC)}


def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    # Round-trip now so that a payload the database cannot store fails here, not at commit.
    return json.loads(json.dumps(payload, default=str))


def _write(row: dict[str, Any]) -> int | None:
    try:
        eng = db.engine()
        conn = db.thread_connection(eng)
        with _sqlite_write_lock if db.is_sqlite(eng) else nullcontext(), conn.begin():
            return conn.execute(_INSERT, row).inserted_primary_key[0]
    except Exception as exc:  # noqa: BLE001 — writing an event must never fail the caller
        _write_fallback(row, exc)
        return None


def _write_fallback(row: dict[str, Any], exc: Exception) -> None:
    record = dict(row, created_at=row["created_at"].isoformat(),
                  fallback_reason=f"{type(exc).__name__}: {exc}",
                  fallback_code="event_write_failed")
    try:
        path = config.home() / "events-fallback.jsonl"
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        print(f"brewslm: event stored in {path} (database refused it: {exc})", file=sys.stderr)
    except Exception as fallback_exc:  # noqa: BLE001
        print(f"brewslm: event lost: {record} ({fallback_exc})", file=sys.stderr)
