"""Deployment versions of a project (stage 11): created pending by `brewslm deploy`, promoted
once their smoke test passed, and moved by promote and rollback. One version serves at a time.

    from brewslm.serving import deployments
    dep = deployments.create(project, export_id=..., fmt="hf", run_id=...)     # pending, v1
    deployments.promote(project, 1)      # v1 serves; the previous one becomes superseded
    deployments.rollback(project)        # back to the version v1 replaced, or deploy_no_predecessor
    deployments.active(project)          # the promoted version, or None
    deployments.list_versions(project)

Statuses: pending (smoke passed, not serving), promoted (serving), rejected (smoke failed; never
serves), superseded (replaced by a later promotion; may be promoted again) and rolled_back
(replaced by a rollback). Every change emits a reason-coded event on the deploy stage.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from brewslm import artifacts
from brewslm.errors import InputError, NotFoundError
from brewslm.events import emit_event
from brewslm.project import ProjectInfo
from brewslm.store import session
from brewslm.store.models import Deployment

STATUSES = ("pending", "promoted", "rejected", "rolled_back", "superseded")
PROMOTABLE_FROM = ("pending", "superseded", "rolled_back")


@dataclass(frozen=True)
class Version:
    id: str
    version: int
    export_id: str
    format: str
    status: str
    predecessor: int | None
    run_id: str | None
    smoke: dict[str, Any]
    drift: dict[str, Any] | None
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def create(project: ProjectInfo, *, export_id: str, fmt: str, run_id: str | None,
           smoke: dict[str, Any]) -> Version:
    """A new version numbered after the last one: pending when its smoke test passed,
    rejected otherwise."""
    status = "pending" if smoke.get("passed") else "rejected"
    with session() as s:
        last = s.scalar(select(func.max(Deployment.version))
                        .where(Deployment.project_id == project.id)) or 0
        row = Deployment(id="dep-" + uuid.uuid4().hex[:12], project_id=project.id,
                         version=last + 1, export_id=export_id, format=fmt, status=status,
                         run_id=run_id, smoke=smoke)
        s.add(row)
        s.flush()
        version = _version(row)
    _emit(project, "deploy_version_created", f"version {version.version} created ({status}) "
          f"from export {export_id[:16]}", run_id=run_id, version=version.version,
          status=status, export_id=export_id)
    return version


def promote(project: ProjectInfo, number: int, *, run_id: str | None = None) -> Version:
    """Make `number` the serving version; the one serving before becomes its predecessor."""
    with session() as s:
        row = _get(s, project, number)
        if row.status == "promoted":
            return _version(row)
        if row.status not in PROMOTABLE_FROM:
            raise InputError("deploy_version_rejected", f"version {number} is {row.status}: its "
                             "smoke test failed, so it may never serve; deploy a new export",
                             version=number, status=row.status)
        current = _promoted(s, project)
        if current is not None:
            current.status, current.updated_at = "superseded", _now()
        row.status, row.updated_at = "promoted", _now()
        row.predecessor = current.version if current is not None else row.predecessor
        version = _version(row)
    _emit(project, "deploy_promoted", f"version {number} promoted"
          + (f" (replacing version {version.predecessor})" if version.predecessor else ""),
          run_id=run_id, version=number, predecessor=version.predecessor,
          export_id=version.export_id)
    return version


def rollback(project: ProjectInfo) -> Version:
    """Return to the version the serving one replaced; refused when there is none."""
    with session() as s:
        current = _promoted(s, project)
        if current is None or current.predecessor is None:
            what = "no version is serving" if current is None else \
                f"version {current.version} replaced no earlier version"
            _emit(project, "deploy_no_predecessor", f"rollback refused: {what}",
                  severity="error", version=current.version if current else None)
            raise InputError("deploy_no_predecessor", f"nothing to roll back to: {what}",
                             version=current.version if current else None)
        previous = _get(s, project, current.predecessor)
        current.status, current.updated_at = "rolled_back", _now()
        previous.status, previous.updated_at = "promoted", _now()
        left, back = current.version, _version(previous)
    _emit(project, "deploy_rolled_back", f"rolled back from version {left} to version "
          f"{back.version}", severity="warning", rolled_back=left, version=back.version)
    return back


def active(project: ProjectInfo) -> Version | None:
    with session() as s:
        row = _promoted(s, project)
        return _version(row) if row is not None else None


def get(project: ProjectInfo, number: int) -> Version:
    with session() as s:
        return _version(_get(s, project, number))


def list_versions(project: ProjectInfo) -> list[Version]:
    with session() as s:
        rows = s.scalars(select(Deployment).where(Deployment.project_id == project.id)
                         .order_by(Deployment.version)).all()
        return [_version(r) for r in rows]


def set_drift(project: ProjectInfo, number: int, report: dict[str, Any]) -> None:
    with session() as s:
        row = _get(s, project, number)
        row.drift, row.updated_at = report, _now()


def export_dir(project: ProjectInfo, version: Version) -> Path:
    return artifacts.get(project, version.export_id).path


# --- helpers ---------------------------------------------------------------------------------

MAX_VERSION = 2**31 - 1  # the largest INTEGER on PostgreSQL (SQLite's is 2**63 - 1)


def _get(s: Any, project: ProjectInfo, number: int) -> Deployment:
    # Versions count up from 1 in an INTEGER column: a number outside it names no version
    # (and would overflow the database driver if it were sent).
    in_range = 1 <= number <= MAX_VERSION
    row = s.scalar(select(Deployment).where(Deployment.project_id == project.id,
                                            Deployment.version == number)) if in_range else None
    if row is None:
        raise NotFoundError("deploy_version_unknown", f"project {project.name!r} has no "
                            f"deployment version {number}", version=number)
    return row


def _promoted(s: Any, project: ProjectInfo) -> Deployment | None:
    return s.scalar(select(Deployment).where(Deployment.project_id == project.id,
                                             Deployment.status == "promoted"))


def _version(row: Deployment) -> Version:
    return Version(row.id, row.version, row.export_id, row.format, row.status, row.predecessor,
                   row.run_id, dict(row.smoke or {}), row.drift, _iso(row.created_at),
                   _iso(row.updated_at))


def _emit(project: ProjectInfo, code: str, summary: str, *, severity: str | None = None,
          run_id: str | None = None, **payload: Any) -> None:
    emit_event(code, summary, project_id=project.id, run_id=run_id, stage="deploy",
               severity=severity, payload=payload)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""
