"""emit_event: stored and durable, refuses unknown codes, never fails its caller."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from sqlalchemy import func, select

from brewslm.events import collect_events, emit_event, taxonomy
from brewslm.store import db, session
from brewslm.store.models import RunEvent

pytestmark = pytest.mark.store


def _all_events() -> list[RunEvent]:
    with session() as s:
        return list(s.scalars(select(RunEvent).order_by(RunEvent.id)))


def test_event_is_stored_with_taxonomy_defaults():
    event_id = emit_event("stage_started", "ingest started", run_id="run-1", stage="ingest",
                          payload={"rows": 3})
    (event,) = _all_events()
    assert event.id == event_id
    assert (event.reason_code, event.severity, event.stage) == ("stage_started", "info", "ingest")
    assert event.payload == {"rows": 3} and event.run_id == "run-1"


def test_stage_defaults_to_the_codes_stage_and_severity_can_be_raised():
    emit_event("project_created", "x", severity="critical")
    (event,) = _all_events()
    assert (event.stage, event.severity) == ("project", "critical")


def test_unknown_code_raises_under_strict_mode():
    with pytest.raises(taxonomy.UnknownReasonCode, match="no_such_code"):
        emit_event("no_such_code", "oops")
    assert _all_events() == []


def test_unknown_cause_raises_under_strict_mode():
    with pytest.raises(taxonomy.UnknownReasonCode, match="bogus_cause"):
        emit_event("stage_failed", "x", payload={"cause": "bogus_cause"})


def test_unknown_code_in_use_is_stored_as_invalid_reason_code(monkeypatch):
    monkeypatch.setenv("BREWSLM_STRICT_CODES", "0")
    emit_event("no_such_code", "oops", stage="ingest", payload={"k": 1})
    (event,) = _all_events()
    assert event.reason_code == "invalid_reason_code"
    assert (event.stage, event.severity) == ("system", "warning")
    assert event.payload["invalid_code"] == "no_such_code"
    assert event.payload["intended"]["payload"] == {"k": 1}


def test_payload_that_is_not_json_is_stored_as_text():
    emit_event("stage_started", "x", payload={"path": __import__("pathlib").Path("/a/b")})
    assert _all_events()[0].payload == {"path": "/a/b"}


def test_database_failure_goes_to_fallback_file_and_never_raises(monkeypatch, brewslm_home):
    def broken():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(db, "engine", broken)
    assert emit_event("stage_started", "still here", run_id="run-9") is None
    lines = (brewslm_home / "events-fallback.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["reason_code"] == "stage_started" and record["run_id"] == "run-9"
    assert record["fallback_code"] == "event_write_failed"
    assert "disk on fire" in record["fallback_reason"]


def test_collect_events_gathers_what_the_block_emitted():
    emit_event("project_created", "before")
    with collect_events() as events:
        emit_event("stage_started", "inside")
    assert [e["summary"] for e in events] == ["inside"]


def test_event_survives_kill_9_right_after_emit_returns():
    script = (
        "import os, signal, sys\n"
        "from brewslm.events import emit_event\n"
        "event_id = emit_event('stage_started', 'about to die')\n"
        "print(event_id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=60)
    assert proc.returncode == -signal.SIGKILL
    event_id = int(proc.stdout.strip())
    db.reset_engines()
    assert [(e.id, e.summary) for e in _all_events()] == [(event_id, "about to die")]


def test_burst_from_many_threads_loses_nothing():
    def worker(n: int) -> None:
        for i in range(50):
            emit_event("stage_started", f"thread {n} event {i}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with session() as s:
        assert s.scalar(select(func.count()).select_from(RunEvent)) == 400
