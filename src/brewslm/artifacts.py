"""Content-addressed artifacts: immutable files or folders a stage produces and another reads.

A stage fills a staging folder (`ArtifactBuilder.dir`), then `publish` hashes it, moves it to
PROJECT_DIR/artifacts/<sha256>/data and writes the sidecar artifact.json LAST: a folder with a
sidecar is complete, one without is debris from a crash and is never read. The same content
published twice is stored once. Downstream stages read artifacts by id, never by path guessing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from brewslm.errors import BrewError, NotFoundError
from brewslm.project import ProjectInfo
from brewslm.store import session
from brewslm.store.models import Artifact

SIDECAR = "artifact.json"
CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactInfo:
    id: str
    kind: str
    path: Path  # the payload folder
    size_bytes: int
    file_count: int
    meta: dict[str, Any]
    run_id: str | None = None
    created_new: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sha256": self.id, "kind": self.kind, "path": str(self.path),
                "size_bytes": self.size_bytes, "file_count": self.file_count,
                "run_id": self.run_id, "meta": self.meta}


class ArtifactBuilder:
    """A staging folder for one artifact; nothing in it is visible until it is published."""

    def __init__(self, project_dir: Path, kind: str) -> None:
        self.kind = kind
        self.root = project_dir / "artifacts"
        self.dir = self.root / ".staging" / uuid.uuid4().hex / "data"
        self.dir.mkdir(parents=True)

    def discard(self) -> None:
        shutil.rmtree(self.dir.parent, ignore_errors=True)


def tree_sha256(folder: Path) -> tuple[str, int, int]:
    """sha256 over (relative path, file sha256) of every file, sorted; also bytes and files."""
    outer = hashlib.sha256()
    size = count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        rel = path.relative_to(folder).as_posix()
        outer.update(f"{rel}\0{digest.hexdigest()}\n".encode())
        size += path.stat().st_size
        count += 1
    return outer.hexdigest(), size, count


def publish(builder: ArtifactBuilder, meta: dict[str, Any] | None = None) -> ArtifactInfo:
    """Move a filled staging folder into the store; reuse an identical complete artifact."""
    sha, size, count = tree_sha256(builder.dir)
    final = builder.root / sha
    if (final / SIDECAR).exists():
        builder.discard()
        return _from_sidecar(final, created_new=False)
    if final.exists():  # debris of a crash between move and sidecar
        shutil.rmtree(final)
    final.mkdir(parents=True)
    os.replace(builder.dir, final / "data")
    builder.discard()
    sidecar = {"id": sha, "kind": builder.kind, "size_bytes": size, "file_count": count,
               "meta": meta or {}, "created_at": datetime.now(UTC).isoformat()}
    _write_json_atomic(final / SIDECAR, sidecar)
    return ArtifactInfo(sha, builder.kind, final / "data", size, count, meta or {})


def register(project: ProjectInfo, art: ArtifactInfo, run_id: str | None) -> None:
    """Record a published artifact in the database (idempotent)."""
    with session() as s:
        if s.get(Artifact, (project.id, art.id)) is None:
            s.add(Artifact(project_id=project.id, id=art.id, kind=art.kind, path=str(art.path),
                           size_bytes=art.size_bytes, file_count=art.file_count, run_id=run_id,
                           meta=art.meta))


def remove_unregistered(project: ProjectInfo, art: ArtifactInfo) -> None:
    """Delete a published artifact that no run ended up recording (its run failed)."""
    with session() as s:
        if s.get(Artifact, (project.id, art.id)) is None:
            shutil.rmtree(art.path.parent, ignore_errors=True)


def list_artifacts(project: ProjectInfo) -> list[ArtifactInfo]:
    with session() as s:
        rows = s.scalars(select(Artifact).where(Artifact.project_id == project.id)
                         .order_by(Artifact.created_at)).all()
    return [_from_row(r) for r in rows]


def get(project: ProjectInfo, id_or_prefix: str) -> ArtifactInfo:
    """An artifact by full id or unique prefix; it must be complete on disk."""
    with session() as s:
        rows = s.scalars(select(Artifact).where(Artifact.project_id == project.id,
                                                Artifact.id.startswith(id_or_prefix))).all()
    if len(rows) != 1 or not id_or_prefix:
        what = "is ambiguous" if rows else "matches nothing"
        raise NotFoundError("artifact_not_found",
                            f"artifact id {id_or_prefix!r} {what} in project {project.name!r}")
    art = _from_row(rows[0])
    if not (art.path.parent / SIDECAR).exists():
        raise NotFoundError("artifact_not_found", f"artifact {art.id} is missing from {art.path}")
    return art


def verify(art: ArtifactInfo) -> None:
    """Recompute the sha256 of an artifact's files; raise artifact_corrupt if it changed."""
    sha, _, _ = tree_sha256(art.path)
    if sha != art.id:
        raise BrewError("artifact_corrupt", f"artifact {art.id} now hashes to {sha}",
                        path=str(art.path))


def _from_row(r: Artifact) -> ArtifactInfo:
    return ArtifactInfo(r.id, r.kind, Path(r.path), r.size_bytes, r.file_count, dict(r.meta or {}),
                        r.run_id, created_new=False)


def _from_sidecar(folder: Path, *, created_new: bool) -> ArtifactInfo:
    side = json.loads((folder / SIDECAR).read_text())
    return ArtifactInfo(side["id"], side["kind"], folder / "data", side["size_bytes"],
                        side["file_count"], side.get("meta", {}), created_new=created_new)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
