"""Projects: the durable container every stage run, artifact, ledger file and event hangs off.

    from brewslm import project
    project.create("tickets", base_model="builtin:tiny")

State: one row in the database, one folder under BREWSLM_HOME/projects/NAME.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from brewslm import config, locks
from brewslm.errors import InputError, NotFoundError
from brewslm.events import emit_event
from brewslm.store import session
from brewslm.store.models import Artifact, Project, RunEvent, StageRun

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ProjectInfo:
    id: str
    name: str
    base_model: str | None
    description: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def dir(self) -> Path:
        return config.projects_dir() / self.name

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "base_model": self.base_model,
                "description": self.description, "settings": self.settings,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "dir": str(self.dir)}


def _info(row: Project) -> ProjectInfo:
    return ProjectInfo(row.id, row.name, row.base_model, row.description, dict(row.settings or {}),
                       row.created_at)


def create(name: str, *, base_model: str | None = None,
           description: str | None = None) -> ProjectInfo:
    if not NAME_RE.match(name or ""):
        raise InputError("project_name_invalid", f"invalid project name {name!r}: use 1-64 of "
                         "a-z 0-9 - _ . starting with a letter or digit")
    if base_model:
        from brewslm.basemodels.reference import validate_base_model_ref  # torch-free, lazy

        validate_base_model_ref(base_model)
    row = Project(id=uuid.uuid4().hex[:16], name=name, base_model=base_model,
                  description=description, settings={})
    try:
        with session() as s:
            s.add(row)
    except IntegrityError:
        raise InputError("project_exists", f"project {name!r} already exists") from None
    info = _info(row)
    info.dir.mkdir(parents=True, exist_ok=True)
    emit_event("project_created", f"project {name} created", project_id=info.id,
               payload={"name": name, "base_model": base_model})
    return info


def get(name: str) -> ProjectInfo:
    # A name create() would refuse names no project, and is never sent to the database (on
    # PostgreSQL a NUL byte in it would be an error, not a miss).
    row = None
    if NAME_RE.match(name or ""):
        with session() as s:
            row = s.scalar(select(Project).where(Project.name == name))
    if row is None:
        raise NotFoundError("project_not_found", f"no project named {name!r}")
    return _info(row)


def list_all() -> list[ProjectInfo]:
    with session() as s:
        return [_info(r) for r in s.scalars(select(Project).order_by(Project.created_at))]


def summary(info: ProjectInfo) -> dict[str, Any]:
    """The project with counts of what hangs off it and each stage's last run."""
    with session() as s:
        runs = s.scalar(select(func.count()).select_from(StageRun)
                        .where(StageRun.project_id == info.id))
        events = s.scalar(select(func.count()).select_from(RunEvent)
                          .where(RunEvent.project_id == info.id))
        artifacts = s.scalar(select(func.count()).select_from(Artifact)
                             .where(Artifact.project_id == info.id))
        last = s.execute(select(StageRun.stage, StageRun.status, StageRun.run_id,
                                StageRun.started_at)
                         .where(StageRun.project_id == info.id)
                         .order_by(StageRun.started_at)).all()
    stages = {r.stage: {"status": r.status, "run_id": r.run_id,
                        "started_at": r.started_at.isoformat()} for r in last}
    return {**info.to_dict(), "counts": {"runs": runs, "events": events, "artifacts": artifacts},
            "stages": stages}


def delete_project(name: str) -> ProjectInfo:
    """Delete a project and everything under it; refused while one of its stages runs."""
    info = get(name)
    with locks.project_lock(info.dir, project=name, stage="project-delete", run_id="-"):
        with session() as s:
            s.execute(delete(RunEvent).where(RunEvent.project_id == info.id))
            s.execute(delete(Artifact).where(Artifact.project_id == info.id))
            s.execute(delete(StageRun).where(StageRun.project_id == info.id))
            s.execute(delete(Project).where(Project.id == info.id))
        shutil.rmtree(info.dir, ignore_errors=True)
    emit_event("project_deleted", f"project {name} deleted",
               payload={"name": name, "project_id": info.id})
    return info


def resolve_base_model(info: ProjectInfo, ref: str | None = None) -> dict[str, Any]:
    """Resolve the project's base model (building builtin:tiny if needed) and record it."""
    from brewslm.basemodels.reference import resolve_base_model as resolve

    ref = ref or info.base_model
    if not ref:
        raise InputError("base_model_invalid_ref", f"project {info.name!r} has no base model; "
                         "create it with --base-model builtin:tiny (or a folder, or owner/name)")
    described = resolve(ref).describe()
    emit_event("base_model_resolved", f"base model {ref} resolved to {described['path']}",
               project_id=info.id, payload=described)
    return described


def set_base_model(name: str, ref: str, *, reason: str) -> ProjectInfo:
    """Point the project at another base model (the autopilot's smaller-sibling repair)."""
    info = get(name)
    with session() as s:
        row = s.get(Project, info.id)
        before, row.base_model = row.base_model, ref
        row.updated_at = datetime.now(UTC)
    emit_event("project_updated", f"project {name}: base model {before} -> {ref}",
               project_id=info.id, payload={"key": "base_model", "before": before,
                                            "value": ref, "reason": reason})
    return get(name)


# Settings a user may change with `brewslm project set`, and the type each must have.
SETTINGS: dict[str, tuple[type, str]] = {
    "mapper_plugins": (list, "modules whose MAPPERS list adds mappers (a list of names)"),
    "clean": (dict, "clean thresholds and policies, e.g. {\"min_answer_chars\": 2}"),
    "prepare": (dict, "prepare policies, e.g. {\"max_tokens\": 512, \"truncation\": "
                      "\"drop\"}"),
}


def set_setting(name: str, key: str, value: Any) -> ProjectInfo:
    """Change one project setting (checked against SETTINGS) and record it."""
    info = get(name)
    if key not in SETTINGS:
        raise InputError("project_setting_invalid", f"unknown setting {key!r}; known: "
                         f"{', '.join(f'{k} ({doc})' for k, (_, doc) in SETTINGS.items())}")
    expected, doc = SETTINGS[key]
    if not isinstance(value, expected):
        raise InputError("project_setting_invalid", f"setting {key!r} takes {doc}, got "
                         f"{value!r}")
    with session() as s:
        row = s.get(Project, info.id)
        row.settings = {**(row.settings or {}), key: value}
        row.updated_at = datetime.now(UTC)
    emit_event("project_updated", f"project {name}: {key} set", project_id=info.id,
               payload={"key": key, "value": value})
    return get(name)
