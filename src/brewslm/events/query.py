"""Reading the event stream and stage runs back: filters shared by the CLI, the API and the
timeline, so every face answers the same question the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select

from brewslm.errors import InputError, NotFoundError
from brewslm.events.taxonomy import SEVERITIES
from brewslm.project import ProjectInfo
from brewslm.stages.catalog import known_event_stages
from brewslm.store import session
from brewslm.store.models import RunEvent, StageRun


@dataclass(frozen=True)
class EventFilter:
    stage: str | None = None
    severity: str | None = None  # at least this severe
    run_id: str | None = None  # this run and the runs it started
    since: datetime | None = None
    until: datetime | None = None
    code: str | None = None
    limit: int | None = None


def make_filter(*, stage: str | None = None, severity: str | None = None,
                run_id: str | None = None, since: str | None = None, until: str | None = None,
                code: str | None = None, limit: int | None = None) -> EventFilter:
    """Validate user-given filters; anything not understood is refused with filter_invalid."""
    if stage and stage not in known_event_stages():
        raise InputError("filter_invalid", f"unknown stage {stage!r}; known: "
                         f"{', '.join(known_event_stages())}", field="stage")
    if severity and severity not in SEVERITIES:
        raise InputError("filter_invalid", f"unknown severity {severity!r}; one of "
                         f"{', '.join(SEVERITIES)}", field="severity")
    if limit is not None and limit < 1:
        raise InputError("filter_invalid", "limit must be at least 1", field="limit")
    return EventFilter(stage, severity, run_id, parse_time(since, "since"),
                       parse_time(until, "until"), code, limit)


def parse_time(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # Stored times are UTC; SQLite compares them as text, so the filter must be UTC too.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        raise InputError("filter_invalid", f"--{field} {value!r} is not an ISO 8601 time "
                         "(e.g. 2026-11-27T10:00:00Z)", field=field) from None
    except OverflowError:  # a valid local time whose UTC falls outside years 1-9999
        raise InputError("filter_invalid", f"--{field} {value!r} is out of range in UTC "
                         "(years 1-9999)", field=field) from None


def events(project: ProjectInfo, flt: EventFilter = EventFilter()) -> list[dict[str, Any]]:
    query = select(RunEvent).where(RunEvent.project_id == project.id)
    query = _apply(query, project, flt).order_by(RunEvent.id)
    with session() as s:
        rows = s.scalars(query).all()
    if flt.limit:
        rows = rows[-flt.limit:]
    return [event_dict(r) for r in rows]


def _apply(query: Select, project: ProjectInfo, flt: EventFilter) -> Select:
    if flt.stage:
        query = query.where(RunEvent.stage == flt.stage)
    if flt.severity:
        query = query.where(RunEvent.severity.in_(SEVERITIES[SEVERITIES.index(flt.severity):]))
    if flt.run_id:
        query = query.where(RunEvent.run_id.in_(run_family(project, flt.run_id)))
    if flt.since:
        query = query.where(RunEvent.created_at >= flt.since)
    if flt.until:
        query = query.where(RunEvent.created_at <= flt.until)
    if flt.code:
        query = query.where(RunEvent.reason_code == flt.code)
    return query


def run_family(project: ProjectInfo, run_id: str) -> set[str]:
    """A run and every run below it (a pipeline run's stages)."""
    get_run(project, run_id)
    with session() as s:
        pairs = s.execute(select(StageRun.run_id, StageRun.parent_run_id)
                          .where(StageRun.project_id == project.id)).all()
    family, frontier = {run_id}, [run_id]
    while frontier:
        parent = frontier.pop()
        kids = [r for r, p in pairs if p == parent and r not in family]
        family.update(kids)
        frontier.extend(kids)
    return family


def runs(project: ProjectInfo, stage: str | None = None) -> list[dict[str, Any]]:
    query = select(StageRun).where(StageRun.project_id == project.id)
    if stage:
        query = query.where(StageRun.stage == stage)
    with session() as s:
        return [run_dict(r) for r in s.scalars(query.order_by(StageRun.started_at))]


def get_run(project: ProjectInfo, run_id: str) -> dict[str, Any]:
    with session() as s:
        row = s.get(StageRun, run_id)
    if row is None or row.project_id != project.id:
        raise NotFoundError("run_not_found", f"no run {run_id!r} in project {project.name!r}")
    return run_dict(row)


def event_dict(r: RunEvent) -> dict[str, Any]:
    return {"id": r.id, "created_at": _iso(r.created_at), "stage": r.stage,
            "severity": r.severity, "reason_code": r.reason_code, "summary": r.summary,
            "run_id": r.run_id, "parent_run_id": r.parent_run_id, "payload": r.payload}


def run_dict(r: StageRun) -> dict[str, Any]:
    return {"run_id": r.run_id, "stage": r.stage, "status": r.status,
            "parent_run_id": r.parent_run_id, "parameters": r.parameters, "inputs": r.inputs,
            "outputs": r.outputs, "result": r.result, "ledger": r.ledger,
            "error_code": r.error_code, "error_message": r.error_message,
            "reused_from": r.reused_from, "pid": r.pid, "host": r.host,
            "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at),
            "duration_s": r.duration_s}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
