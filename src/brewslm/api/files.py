"""REST routes for the files of an export (stage 10): list them with their sha256, and download
any one of them, streamed.

    GET /api/projects/{name}/exports/{export_id}/files          [{path, bytes, sha256, url}]
    GET /api/projects/{name}/exports/{export_id}/files/{path}   the file itself

`export_id` is the export artifact's id (or a unique prefix). A path that leaves the export's
folder (`..`, an absolute path, a link pointing out) is refused with 400
export_file_path_invalid; a file the export does not hold is a 404 export_file_not_found, an
unknown export a 404 artifact_not_found. The sha256 of a
file comes from the export's SHA256SUMS (written by the export stage), else it is computed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response

from brewslm import artifacts, project
from brewslm.artifacts import ArtifactInfo
from brewslm.errors import InputError, NotFoundError
from brewslm.project import ProjectInfo

SUMS_FILE = "SHA256SUMS"
CHUNK = 1 << 20


def add_routes(app: FastAPI, deps: list[Any]) -> None:
    """Add the export file routes; `deps` holds the token check."""

    @app.get("/api/projects/{name}/exports/{export_id}/files", dependencies=deps)
    def list_export_files(name: str, export_id: str) -> dict[str, Any]:
        """Every file of the export: its path inside the export, size, sha256, download URL."""
        info = project.get(name)
        art = export_artifact(info, export_id)
        return {"export_id": art.id, "files": export_files(info, art)}

    @app.get("/api/projects/{name}/exports/{export_id}/files/{path:path}", dependencies=deps,
             response_class=Response,
             responses={200: {"content": {"application/octet-stream": {}}}})
    def download_export_file(name: str, export_id: str, path: str) -> FileResponse:
        """One file of the export, streamed (400 for a path outside the export's folder)."""
        art = export_artifact(project.get(name), export_id)
        found = file_in(art.path, path)
        return FileResponse(found, filename=found.name, media_type="application/octet-stream")


def export_artifact(info: ProjectInfo, export_id: str) -> ArtifactInfo:
    """The project's export artifact with this id or unique prefix (404 when not an export)."""
    art = artifacts.get(info, export_id)
    if art.kind != "export":
        raise NotFoundError("artifact_not_found", f"artifact {art.id[:16]} is a {art.kind}, "
                            "not an export", artifact_id=art.id, kind=art.kind)
    return art


def file_in(folder: Path, relative: str) -> Path:
    """The file `relative` inside `folder`; refused if it resolves anywhere outside it."""
    root = folder.resolve()
    try:
        target = (root / relative).resolve() if "\0" not in relative else None
    except (OSError, ValueError, RuntimeError):
        target = None
    if target is None or target == root or not target.is_relative_to(root):
        raise InputError("export_file_path_invalid", f"{relative!r} is not a path inside the "
                         "export's folder", path=relative)
    if not _is_file(target):
        raise NotFoundError("export_file_not_found", f"the export has no file {relative!r}",
                            path=relative)
    return target


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, say
        return False


def export_files(info: ProjectInfo, art: ArtifactInfo) -> list[dict[str, Any]]:
    """Every file of the export, sorted by path, with its size, sha256 and download URL."""
    sums = read_sums(art.path / SUMS_FILE)
    base = f"/api/projects/{quote(info.name)}/exports/{art.id}/files/"
    out = []
    for path in sorted(p for p in art.path.rglob("*") if p.is_file()):
        rel = path.relative_to(art.path).as_posix()
        out.append({"path": rel, "bytes": path.stat().st_size,
                    "sha256": sums.get(rel) or sha256_of(path), "url": base + quote(rel)})
    return out


def read_sums(path: Path) -> dict[str, str]:
    """path -> sha256 from a `sha256sum`-style file (empty when there is none)."""
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            sums[name.lstrip("*")] = digest
    return sums


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
