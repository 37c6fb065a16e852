"""Finding what earlier stages produced: the latest snapshot, introspection, dataset version.

Downstream stages take an artifact id when the user names one, and otherwise the output of the
latest run of the stage that produces it (succeeded, or reused, which points at the same
artifact).
"""

from __future__ import annotations

from sqlalchemy import select

from brewslm import artifacts
from brewslm.errors import NotFoundError
from brewslm.project import ProjectInfo
from brewslm.store import session
from brewslm.store.models import StageRun


def output_history(project: ProjectInfo, stage: str | tuple[str, ...],
                   slot: str) -> list[str]:
    """Artifact ids the stage(s) produced into `slot`, oldest first, each once."""
    stages = (stage,) if isinstance(stage, str) else stage
    with session() as s:
        rows = s.scalars(select(StageRun).where(
            StageRun.project_id == project.id, StageRun.stage.in_(stages),
            StageRun.status.in_(("succeeded", "reused"))).order_by(StageRun.started_at)).all()
    seen: list[str] = []
    for run in rows:
        art_id = (run.outputs or {}).get(slot)
        if art_id and art_id not in seen:
            seen.append(art_id)
    return seen


def latest_output(project: ProjectInfo, stage: str | tuple[str, ...], slot: str) -> str | None:
    """The output of the most recent succeeded (or reused) run of the stage(s)."""
    stages = (stage,) if isinstance(stage, str) else stage
    with session() as s:
        run = s.scalars(select(StageRun).where(
            StageRun.project_id == project.id, StageRun.stage.in_(stages),
            StageRun.status.in_(("succeeded", "reused")))
            .order_by(StageRun.started_at.desc())).first()
    return (run.outputs or {}).get(slot) if run else None


def require_output(project: ProjectInfo, stage: str | tuple[str, ...], slot: str,
                   chosen: str | None, missing_code: str, hint: str) -> str:
    """The artifact the user named (checked), or the latest one; else raise `missing_code`."""
    if chosen:
        try:
            return artifacts.get(project, chosen).id
        except NotFoundError:
            raise NotFoundError(missing_code, f"{slot} {chosen!r} not found in project "
                                f"{project.name!r}") from None
    latest = latest_output(project, stage, slot)
    if latest is None:
        raise NotFoundError(missing_code, f"project {project.name!r} has no {slot} yet: {hint}")
    return latest
